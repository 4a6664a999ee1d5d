//! Living in the app: the layout at small and large screens, keyboard shortcuts, the theme, and
//! a project that comes back whole.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TempDir;
use common::app::{app_on, harness, step_until, train_one_run, wait_ready};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use graft::app::actions::Action;
use graft::app::habits::Theme;
use graft::app::run_view::RunStatus;
use graft::app::state::{AppState, EvalState};
use graft::app::{ACCURACY_PLOT, GraftApp, LOSS_PLOT};

/// `classes` folders of `per_class` small flat-coloured images, each class its own colour.
fn coloured_classes(root: &Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let dir = root.join(format!("class{c:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let shade = (c * 25 + i * 3) as u32;
            let image = image::RgbImage::from_fn(40, 40, |x, y| {
                let channel = |v: u32| v.min(255) as u8;
                image::Rgb([
                    channel(shade),
                    channel(x * 6),
                    channel(255 - shade / 2 + y % 3),
                ])
            });
            image.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn every_confusion_cell_of_ten_classes_is_visible_from_720p_to_4k() {
    let data = TempDir::new("ui-layout");
    coloured_classes(data.path(), 10, 5);
    let runs = TempDir::new("ui-layout-runs");
    let mut app = app_on(data.path(), runs.path());
    app.state.project.config.epochs = 1;
    app.state.project.config.split.val_fraction = 0.4;
    let mut h = harness(app);
    wait_ready(&mut h);
    train_one_run(&mut h);
    h.get_by_label("Results").click();
    step_until(&mut h, Duration::from_secs(120), "the evaluation", |app| {
        matches!(
            app.state.live.results.evaluation,
            Some((_, EvalState::Ready(_)))
        )
    });
    for size in [egui::vec2(1280.0, 720.0), egui::vec2(3840.0, 2160.0)] {
        h.set_size(size);
        h.run_steps(4);
        let cells: Vec<egui::Rect> = h
            .query_all_by_label_contains(" as class")
            .map(|node| node.rect())
            .collect();
        assert_eq!(cells.len(), 100, "a 10×10 matrix at {size:?}");
        // Never cut off at the side; below the window only where the page scrolls (not at 4K).
        let tall_enough = size.y > 1000.0;
        for rect in &cells {
            assert!(
                rect.min.x >= 0.0 && rect.max.x <= size.x && (!tall_enough || rect.max.y <= size.y),
                "a cell at {rect:?} is outside the {size:?} window"
            );
        }
    }
    // The loss and accuracy plots show the same epochs.
    h.get_by_label("Train").click();
    h.run_steps(4);
    let x_range = |id: &str| {
        let memory = egui_plot::PlotMemory::load(&h.ctx, egui::Id::NULL.with(id)).expect("a plot");
        let bounds = memory.bounds();
        (bounds.min()[0], bounds.max()[0])
    };
    assert_eq!(x_range(LOSS_PLOT), x_range(ACCURACY_PLOT));
}

#[test]
fn space_starts_pauses_and_resumes_escape_stops_and_ctrl_s_saves() {
    let data = TempDir::new("ui-keys");
    common::demo_subset(data.path(), &["bird", "fruit"], 6);
    let runs = TempDir::new("ui-keys-runs");
    let mut app = app_on(data.path(), runs.path());
    app.state.project.config.epochs = 200;
    app.state.project.config.feature_cache.enabled = false;
    let project = runs.path().join("keys.graft.json");
    app.state.project_path = Some(project.clone());
    let mut h = harness(app);
    wait_ready(&mut h);

    h.key_press(egui::Key::Space);
    step_until(
        &mut h,
        Duration::from_secs(120),
        "training to start",
        |app| {
            app.state
                .project
                .runs
                .first()
                .is_some_and(|r| r.batches_seen > 0)
        },
    );
    h.key_press(egui::Key::Space);
    step_until(&mut h, Duration::from_secs(120), "the pause", |app| {
        app.state.active_status_paused() == Some(true)
    });
    h.key_press(egui::Key::Space);
    step_until(&mut h, Duration::from_secs(120), "the resume", |app| {
        app.state.active_status_paused() == Some(false)
    });
    h.key_press(egui::Key::Escape);
    step_until(&mut h, Duration::from_secs(120), "the stop", |app| {
        !app.state.is_training()
    });
    assert!(matches!(
        &h.state().state.project.runs[0].status,
        RunStatus::Finished(s) if s.cancelled
    ));

    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    step_until(&mut h, Duration::from_secs(30), "the save", |_| {
        project.is_file()
    });
}

#[test]
fn the_theme_and_a_dismissed_hint_survive_a_restart() {
    let data = TempDir::new("ui-theme");
    common::demo_subset(data.path(), &["bird", "fruit"], 3);
    let runs = TempDir::new("ui-theme-runs");
    let mut app = app_on(data.path(), runs.path());
    app.state.preferences.hint_dismissed = false;
    let mut h = harness(app);
    wait_ready(&mut h);
    assert!(h.query_by_label("Got it").is_some(), "no first-run hint");
    h.get_by_label("Got it").click();
    h.run_steps(2);
    assert!(h.query_by_label("Got it").is_none());
    h.state_mut().state.preferences.theme = Theme::Light;
    h.run_steps(2);
    assert_eq!(h.ctx.theme(), egui::Theme::Light);

    // What eframe saves on exit, read back by a new window.
    let saved = serde_json::to_string(&h.state().state).unwrap();
    let state: AppState = serde_json::from_str(&saved).unwrap();
    let mut again = harness(GraftApp::new(state));
    wait_ready(&mut again);
    assert_eq!(again.ctx.theme(), egui::Theme::Light);
    assert!(
        again.query_by_label("Got it").is_none(),
        "the hint came back"
    );
}

#[test]
fn a_saved_project_reopens_whole_and_a_moved_data_folder_is_asked_for() {
    let data = TempDir::new("ui-project");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 6);
    let runs = TempDir::new("ui-project-runs");
    let mut app = app_on(data.path(), runs.path());
    let c = &mut app.state.project.config;
    c.epochs = 2;
    c.seed = 11;
    c.optimizer.lr = 2e-3;
    c.freeze = graft::config::FreezePlan::parse("stem,block0,block1");
    let mut h = harness(app);
    wait_ready(&mut h);
    train_one_run(&mut h);
    let file = runs.path().join("round-trip.graft.json");
    let app = h.state_mut();
    app.dispatcher
        .handle(Action::SaveProjectTo(file.clone()), &mut app.state);
    step_until(&mut h, Duration::from_secs(30), "the save", |_| {
        file.is_file()
    });
    let before = h.state().state.project.clone();

    let mut fresh = harness(GraftApp::new(AppState::default()));
    fresh.run_steps(2);
    open(&mut fresh, &file);
    let after = &fresh.state().state.project;
    assert_eq!(after.config, before.config);
    assert_eq!(after.runs.len(), 1);
    // The same curves, to the last bit JSON keeps (serde_json parses floats to within an ulp).
    let close = |a: &[[f64; 2]], b: &[[f64; 2]]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(p, q)| {
                (p[0] - q[0]).abs() <= 1e-12 && (p[1] - q[1]).abs() <= 1e-12 * q[1].abs().max(1.0)
            })
    };
    let (a, b) = (&after.runs[0], &before.runs[0]);
    assert!(
        close(&a.val_loss, &b.val_loss),
        "{:?} vs {:?}",
        a.val_loss,
        b.val_loss
    );
    assert!(close(&a.batch_loss, &b.batch_loss), "the loss curve");
    assert!(
        close(&a.val_accuracy, &b.val_accuracy),
        "the accuracy curve"
    );
    assert_eq!(a.label, b.label);
    assert!(matches!(a.status, RunStatus::Finished(_)));

    // The data folder moves: opening says so and offers to locate it.
    let moved = data.path().with_extension("moved");
    std::fs::rename(data.path(), &moved).unwrap();
    let mut third = harness(GraftApp::new(AppState::default()));
    third.run_steps(2);
    open(&mut third, &file);
    third.run_steps(2);
    assert!(
        third.query_by_label_contains("is not there").is_some(),
        "no word about the missing data folder"
    );
    assert!(third.query_by_label("Locate the data folder…").is_some());
    std::fs::rename(&moved, data.path()).unwrap();
}

/// Opens `file` as Project → Open would, and waits for it.
fn open(h: &mut egui_kittest::Harness<'static, GraftApp>, file: &Path) {
    let app = h.state_mut();
    app.dispatcher
        .handle(Action::OpenProject(file.to_path_buf()), &mut app.state);
    step_until(h, Duration::from_secs(30), "the project", |app| {
        app.state.project_path.as_deref() == Some(file)
    });
    h.run_steps(2);
}
