//! The window under egui_kittest: the app over a data folder, and waiting like a user.

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use graft::app::GraftApp;
use graft::app::state::{AppState, FolderState};
use graft::config::DevicePreference;

/// The app over `data`, with runs in `runs`: 32 px, batch 4, no augmentation, CPU, the
/// first-run hint dismissed.
pub fn app_on(data: &Path, runs: &Path) -> GraftApp {
    let mut state = AppState::default();
    let c = &mut state.project.config;
    c.data = data.to_path_buf();
    c.runs_dir = Some(runs.to_path_buf());
    c.input_size = Some(32);
    c.batch_size = 4;
    c.augment.enabled = false;
    c.device = DevicePreference::Cpu;
    // The first-run strip would push every page down; its own test shows it.
    state.preferences.hint_dismissed = true;
    GraftApp::new(state)
}

pub fn harness(app: GraftApp) -> Harness<'static, GraftApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut GraftApp| app.frame(ui), app)
}

/// Steps the UI until `done` holds, like a user waiting; fails after `limit`.
pub fn step_until(
    harness: &mut Harness<'static, GraftApp>,
    limit: Duration,
    what: &str,
    done: impl Fn(&GraftApp) -> bool,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut frames = Vec::new();
    while !done(harness.state()) {
        if start.elapsed() >= limit {
            let runs: Vec<_> = harness
                .state()
                .state
                .project
                .runs
                .iter()
                .map(|r| &r.status)
                .collect();
            panic!("timed out waiting for {what}; the runs: {runs:?}");
        }
        let t = Instant::now();
        harness.step();
        frames.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    frames
}

/// Waits for the folder scan and the layer list, then lets the grids settle (a grid's first
/// frame only measures, so its rows cannot be clicked yet).
pub fn wait_ready(h: &mut Harness<'static, GraftApp>) {
    step_until(h, Duration::from_secs(60), "folder and layers", |app| {
        matches!(app.state.live.folder, FolderState::Ready(_)) && app.state.live.layers.is_some()
    });
    h.run_steps(3);
}

/// Trains one short run in the window and waits for it to finish with a checkpoint.
pub fn train_one_run(h: &mut Harness<'static, GraftApp>) {
    h.get_by_label("▶ Start").click();
    step_until(h, Duration::from_secs(300), "the run to finish", |app| {
        !app.state.finished_runs().is_empty()
    });
}
