//! The window, driven through egui_kittest over the real app state and dispatcher.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::TempDir;
use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use graft::app::GraftApp;
use graft::app::run_view::RunStatus;
use graft::app::state::{AppState, FolderState};
use graft::config::DevicePreference;

fn app_on(data: &Path, runs: &Path) -> GraftApp {
    let mut state = AppState::default();
    let c = &mut state.project.config;
    c.data = data.to_path_buf();
    c.runs_dir = Some(runs.to_path_buf());
    c.input_size = Some(32);
    c.batch_size = 4;
    c.augment.enabled = false;
    c.device = DevicePreference::Cpu;
    GraftApp::new(state)
}

fn harness(app: GraftApp) -> Harness<'static, GraftApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut GraftApp| app.frame(ui), app)
}

/// Steps the UI until `done` holds, like a user waiting; fails after `limit`.
fn step_until(
    harness: &mut Harness<'static, GraftApp>,
    limit: Duration,
    what: &str,
    done: impl Fn(&GraftApp) -> bool,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut frames = Vec::new();
    while !done(harness.state()) {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        let t = Instant::now();
        harness.step();
        frames.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    frames
}

/// A file dropped on the window, as the windowing layer would hand it to egui.
#[derive(Debug)]
struct DroppedPath(std::path::PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Waits for the folder scan and the layer list, then lets the grids settle (a grid's first
/// frame only measures, so its rows cannot be clicked yet).
fn wait_ready(h: &mut Harness<'static, GraftApp>) {
    step_until(h, Duration::from_secs(60), "folder and layers", |app| {
        matches!(app.state.live.folder, FolderState::Ready(_)) && app.state.live.layers.is_some()
    });
    h.run_steps(3);
}

#[test]
fn toggling_layers_changes_the_freeze_plan() {
    let data = TempDir::new("ui-layers");
    common::demo_subset(data.path(), &["bird", "fruit"], 3);
    let runs = TempDir::new("ui-layers-runs");
    let mut h = harness(app_on(data.path(), runs.path()));
    wait_ready(&mut h);
    let names = h.state().state.layer_names();
    let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(
        h.state().state.frozen()[idx("block3")],
        "default plan freezes block3"
    );

    h.get_by_label("block3").click();
    h.run_steps(2);
    let frozen = h.state().state.frozen();
    assert!(!frozen[idx("block3")], "click thawed block3");
    assert!(
        frozen[idx("block2")] && frozen[idx("block4")],
        "neighbours unchanged"
    );

    // Shift-click block6: block3..=block6 take block6's new state (thawed).
    h.get_by_label("block6")
        .click_modifiers(egui::Modifiers::SHIFT);
    h.run_steps(2);
    let frozen = h.state().state.frozen();
    for n in ["block3", "block4", "block5", "block6"] {
        assert!(
            !frozen[idx(n)],
            "{n} should be trainable after the shift-click"
        );
    }
    assert!(frozen[idx("block7")]);

    // The same near the end of the list, where the rows sit in the scrolled part.
    h.get_by_label("block13").click();
    h.run_steps(2);
    h.get_by_label("head_conv")
        .click_modifiers(egui::Modifiers::SHIFT);
    h.run_steps(2);
    let frozen = h.state().state.frozen();
    for n in ["block13", "block14", "block15", "head_conv"] {
        assert!(
            !frozen[idx(n)],
            "{n} should be trainable after the second shift-click"
        );
    }

    h.get_by_label("Unfreeze all").click();
    h.run_steps(2);
    assert!(h.state().state.frozen().iter().all(|f| !f));
    h.get_by_label("Freeze all but head").click();
    h.run_steps(2);
    let frozen = h.state().state.frozen();
    assert!(frozen[..frozen.len() - 1].iter().all(|f| *f) && !frozen[frozen.len() - 1]);
}

#[test]
fn start_shows_live_curve_points_and_stop_ends_the_run() {
    let data = TempDir::new("ui-train");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 6);
    let runs = TempDir::new("ui-train-runs");
    let mut app = app_on(data.path(), runs.path());
    app.state.project.config.epochs = 200; // long enough to be stopped
    let mut h = harness(app);
    wait_ready(&mut h);

    h.get_by_label("▶ Start").click();
    let frames = step_until(&mut h, Duration::from_secs(300), "curve points", |app| {
        app.state
            .project
            .runs
            .first()
            .is_some_and(|r| r.batch_loss.len() >= 5 && !r.val_accuracy.is_empty())
    });
    assert!(h.state().state.is_training());
    // Layer toggles are locked while training.
    assert!(
        h.query_by_label_contains("locked while a run trains")
            .is_some()
    );

    // The UI thread never waits on training: frame times while events stream.
    let mut sorted: Vec<f64> = frames.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let worst = sorted[sorted.len() - 1];
    let (app_mean, app_max) = h.state().frame_time_stats();
    eprintln!(
        "frames while training: {} frames, harness step median {median:.1} ms, worst {worst:.1} ms; \
         app UI work mean {:.2} ms, max {:.2} ms",
        sorted.len(),
        app_mean * 1e3,
        app_max * 1e3
    );

    h.get_by_label("⏹ Stop").click();
    step_until(&mut h, Duration::from_secs(120), "the run to stop", |app| {
        !app.state.is_training()
    });
    match &h.state().state.project.runs[0].status {
        RunStatus::Finished(s) => assert!(s.cancelled),
        other => panic!("expected a stopped run, got {other:?}"),
    }
    h.run_steps(2);
    assert!(h.query_by_label_contains("Stopped after").is_some());
}

#[test]
fn dropping_a_file_says_a_folder_is_expected() {
    let data = TempDir::new("ui-drop");
    common::demo_subset(data.path(), &["bird", "fruit"], 2);
    let runs = TempDir::new("ui-drop-runs");
    let mut h = harness(app_on(data.path(), runs.path()));
    wait_ready(&mut h);
    let notes = data.path().join("notes.txt");
    std::fs::write(&notes, "not a folder").unwrap();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(DroppedPath(notes)));
    h.run_steps(2);
    assert!(h.query_by_label_contains("Drop a folder").is_some());
    assert!(h.query_by_label_contains("notes.txt is a file").is_some());

    // An image is not a data set either, but the model shows what it sees in it.
    let image = data
        .path()
        .join("bird")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(DroppedPath(image)));
    step_until(
        &mut h,
        Duration::from_secs(60),
        "the ImageNet preview",
        |app| matches!(app.state.live.preview, Some((_, Ok(_)))),
    );
    h.run_steps(2);
    assert!(h.query_by_label_contains("ImageNet top-5").is_some());
    assert!(h.query_by_label_contains("That is an image").is_some());
    // The data set did not change.
    assert_eq!(h.state().state.project.config.data, data.path());
}

#[test]
fn a_training_failure_shows_in_the_window() {
    let data = TempDir::new("ui-fail");
    common::demo_subset(data.path(), &["bird"], 3);
    let runs = TempDir::new("ui-fail-runs");
    let mut h = harness(app_on(data.path(), runs.path()));
    wait_ready(&mut h);
    h.get_by_label("▶ Start").click();
    step_until(&mut h, Duration::from_secs(120), "the failure", |app| {
        app.state
            .project
            .runs
            .first()
            .is_some_and(|r| matches!(r.status, RunStatus::Failed(_)))
    });
    h.run_steps(2);
    assert!(h.query_by_label_contains("Training failed").is_some());
}

#[test]
fn thumbnails_decode_only_what_is_on_screen_even_with_ten_thousand_images() {
    let data = TempDir::new("ui-thumbs");
    let source = common::demo()
        .join("fruit")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for class in ["apples", "pears"] {
        let dir = data.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..5000 {
            let link = dir.join(format!("img_{i:05}.png"));
            if std::fs::hard_link(&source, &link).is_err() {
                std::fs::copy(&source, &link).unwrap();
            }
        }
    }
    let runs = TempDir::new("ui-thumbs-runs");
    let mut h = harness(app_on(data.path(), runs.path()));
    wait_ready(&mut h);
    step_until(&mut h, Duration::from_secs(60), "thumbnails", |app| {
        app.state.live.thumbs.ready() >= 6
    });
    // Scroll through the grid while thumbnails stream in; time each frame.
    h.get_by_label("img_00000.png").hover();
    let mut frames = Vec::new();
    for _ in 0..40 {
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -300.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(10));
    }
    frames.sort_by(f64::total_cmp);
    eprintln!(
        "10 000 images, scrolling: median frame {:.1} ms, worst {:.1} ms; {} thumbnails requested, {} ready",
        frames[frames.len() / 2],
        frames[frames.len() - 1],
        h.state().state.live.thumbs.by_path.len(),
        h.state().state.live.thumbs.ready()
    );
    let requested = h.state().state.live.thumbs.by_path.len();
    assert!(requested > 6, "scrolling asked for more rows");
    assert!(
        requested < 1000,
        "{requested} thumbnails requested: the grid is not virtualised"
    );
}
