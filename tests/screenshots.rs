//! Makes the README pictures in `screenshots/` from the real app, mid-training on the demo set.
//! Run with `cargo test --test screenshots -- --ignored` (renders through wgpu; lavapipe works).

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use graft::app::GraftApp;
use graft::app::state::{AppState, FolderState};

fn step_until(
    h: &mut Harness<'static, GraftApp>,
    limit: Duration,
    done: impl Fn(&GraftApp) -> bool,
) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < limit, "timed out");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn save(h: &mut Harness<'static, GraftApp>, name: &str, crop: Option<egui::Rect>) {
    let image = h.render().expect("render");
    let image = match crop {
        Some(r) => image::imageops::crop_imm(
            &image,
            r.min.x as u32,
            r.min.y as u32,
            r.width() as u32,
            r.height() as u32,
        )
        .to_image(),
        None => image,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("screenshots")
        .join(name);
    image.save(&path).expect("save screenshot");
    eprintln!("wrote {}", path.display());
}

#[test]
#[ignore = "makes the README screenshots; slow"]
fn make_readme_screenshots() {
    let runs = std::env::temp_dir().join("graft-screenshot-runs");
    let mut state = AppState::default();
    state.project.config.runs_dir = Some(runs);
    state.project.config.epochs = 3;
    state.preferences.hint_dismissed = true;
    let app = GraftApp::new(state);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .with_pixels_per_point(1.0)
        .build_ui_state(|ui, app: &mut GraftApp| app.frame(ui), app);
    step_until(&mut h, Duration::from_secs(120), |a| {
        matches!(a.state.live.folder, FolderState::Ready(_))
            && a.state.live.layers.is_some()
            && a.state.live.device.is_some()
    });

    // Run 1: the default recipe, head only.
    h.get_by_label("▶ Start").click();
    step_until(&mut h, Duration::from_secs(900), |a| {
        a.state.project.runs.first().is_some_and(|r| !r.is_active())
    });

    // Run 2: thaw the last blocks and train again; picture it mid-run.
    h.get_by_label("block13").click();
    h.run_steps(2);
    h.get_by_label("head_conv")
        .click_modifiers(egui::Modifiers::SHIFT);
    h.run_steps(2);
    h.get_by_label("▶ Start").click();
    step_until(&mut h, Duration::from_secs(900), |a| {
        a.state
            .project
            .runs
            .get(1)
            .is_some_and(|r| r.val_accuracy.len() >= 2)
    });
    h.run_steps(2);
    save(&mut h, "main_window.png", None);
    save(
        &mut h,
        "layers.png",
        Some(egui::Rect::from_min_max(
            egui::pos2(1076.0, 30.0),
            egui::pos2(1400.0, 620.0),
        )),
    );
    save(
        &mut h,
        "data_panel.png",
        Some(egui::Rect::from_min_max(
            egui::pos2(8.0, 30.0),
            egui::pos2(436.0, 780.0),
        )),
    );
    h.get_by_label("⏹ Stop").click();
    step_until(&mut h, Duration::from_secs(300), |a| !a.state.is_training());

    // After training: the Results page of the finished run, then all runs side by side.
    h.get_by_label("Results").click();
    step_until(&mut h, Duration::from_secs(300), |a| {
        matches!(
            a.state.live.results.evaluation,
            Some((_, graft::app::state::EvalState::Ready(_)))
        ) && a.state.live.thumbs.ready() >= 6
    });
    h.run_steps(4);
    save(&mut h, "results.png", None);
    h.get_by_label("Compare").click();
    h.run_steps(4);
    save(&mut h, "compare.png", None);
}
