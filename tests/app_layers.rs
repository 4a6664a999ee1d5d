//! The layer list as an instrument, in the window: the stage-2 plan, per-group rates and the
//! telemetry bars of a run.

mod common;

use std::time::Duration;

use common::TempDir;
use common::app::{app_on, harness, step_until, wait_ready};
use eframe::egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use graft::config::{FineTuneConfig, LayerRates};

#[test]
fn thawing_from_a_row_for_stage_two_changes_the_stage_two_plan() {
    let data = TempDir::new("ui-stage2");
    common::demo_subset(data.path(), &["bird", "fruit"], 3);
    let runs = TempDir::new("ui-stage2-runs");
    let mut app = app_on(data.path(), runs.path());
    app.state.project.config.fine_tune = Some(FineTuneConfig::default());
    let mut h = harness(app);
    wait_ready(&mut h);
    // Unfreezing everything in stage 2 is the default: every row says so.
    let names = h.state().state.layer_names();
    assert_eq!(h.query_all_by_label("2 🔥").count(), names.len());

    h.get_by_label("block12").click();
    h.run_steps(2);
    h.get_by_label("Stage 2 thaws from here").click();
    h.run_steps(3);
    let unfreeze = &h
        .state()
        .state
        .project
        .config
        .fine_tune
        .as_ref()
        .unwrap()
        .unfreeze;
    let from = names.iter().position(|n| n == "block12").unwrap();
    let expected: std::collections::BTreeSet<String> = names[from..].iter().cloned().collect();
    assert_eq!(unfreeze, &expected);
    // block12 itself was thawed for stage 1 by the click; the rows before it stay frozen in
    // stage 2 where stage 1 froze them.
    let frozen_in_stage2 = h.query_all_by_label("2 ❄").count();
    let frozen_in_stage1 = h.state().state.frozen()[..from]
        .iter()
        .filter(|f| **f)
        .count();
    assert_eq!(frozen_in_stage2, frozen_in_stage1);
    assert!(frozen_in_stage2 > 0);
}

#[test]
fn a_range_shows_each_thawed_rows_rate_from_the_lowest_to_the_head() {
    let data = TempDir::new("ui-rates");
    common::demo_subset(data.path(), &["bird", "fruit"], 3);
    let runs = TempDir::new("ui-rates-runs");
    let mut h = harness(app_on(data.path(), runs.path()));
    wait_ready(&mut h);
    h.get_by_label("block14").click();
    h.run_steps(2);
    h.get_by_label("Unfreeze from here").click();
    h.run_steps(2);
    h.state_mut().state.project.config.optimizer.layer_rates =
        LayerRates::parse_range("1e-5:1e-3").unwrap();
    h.run_steps(3);
    // block14, block15, head_conv and head: 1e-5, 4.6e-5, 2.2e-4, 1e-3.
    for rate in ["1.0e-5", "4.6e-5", "2.2e-4", "1.0e-3"] {
        assert!(h.query_by_label(rate).is_some(), "no row shows {rate}");
    }
}

#[test]
fn telemetry_bars_appear_beside_the_layers_once_an_epoch_ends() {
    let data = TempDir::new("ui-telemetry");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 6);
    let runs = TempDir::new("ui-telemetry-runs");
    let mut app = app_on(data.path(), runs.path());
    app.state.project.config.epochs = 2;
    let mut h = harness(app);
    wait_ready(&mut h);
    let bars_before = h.query_all_by_role(Role::ProgressIndicator).count();
    h.get_by_label("▶ Start").click();
    step_until(&mut h, Duration::from_secs(300), "a first epoch", |app| {
        app.state
            .project
            .runs
            .first()
            .is_some_and(|r| !r.epochs.is_empty())
    });
    h.run_steps(3);
    let groups = h.state().state.layer_names().len();
    let bars = h.query_all_by_role(Role::ProgressIndicator).count();
    assert!(
        bars >= bars_before + groups,
        "{bars} progress bars with {groups} layer groups (before the run: {bars_before})"
    );
    step_until(&mut h, Duration::from_secs(300), "the run to end", |app| {
        !app.state.is_training()
    });
}
