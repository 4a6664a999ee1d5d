//! The layer list as an instrument: what each group's weights do during a run, and the rate
//! finder.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TempDir;
use graft::config::{FreezePlan, LayerRates};
use graft::run::{EpochMetrics, files};
use graft::train::lr_find::SweepSettings;
use graft::train::{self, TrainEvent};

/// Trains `config` and returns its epochs as the events carried them and as metrics.jsonl
/// recorded them.
fn epochs_and_metrics(
    config: graft::config::TrainConfig,
) -> (Vec<EpochMetrics>, Vec<EpochMetrics>) {
    let (epochs, summary) = common::run_with_summary(config);
    let text = std::fs::read_to_string(summary.run_dir.join(files::METRICS)).unwrap();
    let recorded = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (epochs, recorded)
}

#[test]
fn frozen_groups_move_exactly_zero_and_thawed_ones_move() {
    let data = TempDir::new("telemetry-data");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 8);
    let runs = TempDir::new("telemetry-runs");
    let mut config = common::small_config(data.path(), runs.path());
    let frozen: BTreeSet<String> = ["stem", "block0", "block1", "block2", "block3", "block4"]
        .map(String::from)
        .into();
    config.freeze = FreezePlan::Groups(frozen.clone());
    // block10 thaws but is held still by its factor.
    config.optimizer.layer_rates =
        LayerRates::parse_factors("block10=0").expect("a valid factor list");
    let (epochs, recorded) = epochs_and_metrics(config);
    for (sent, kept) in epochs.iter().zip(&recorded) {
        let names = |e: &EpochMetrics| {
            e.groups
                .0
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(sent),
            names(kept),
            "events and metrics.jsonl disagree"
        );
        for ((_, a), (_, b)) in sent.groups.0.iter().zip(&kept.groups.0) {
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
            assert!(
                close(a.weight_change, b.weight_change) && close(a.grad_norm, b.grad_norm),
                "{a:?} vs {b:?}"
            );
        }
    }
    assert_eq!(epochs.len(), recorded.len());
    for epoch in &epochs {
        assert_eq!(epoch.groups.0.len(), 19, "Lite0 has 19 layer groups");
        for (name, stats) in &epoch.groups.0 {
            if frozen.contains(name) {
                assert_eq!(stats.weight_change, 0.0, "{name} is frozen");
                assert_eq!(stats.grad_norm, 0.0, "{name} is frozen");
            } else if name == "block10" {
                assert_eq!(stats.weight_change, 0.0, "{name} has factor 0");
                assert!(stats.grad_norm > 0.0, "{name} still gets gradients");
            } else {
                assert!(stats.weight_change > 0.0, "{name} did not move: {stats:?}");
                assert!(stats.grad_norm > 0.0, "{name} got no gradient");
            }
        }
    }
    // Change is measured from the run's start, so it grows.
    let head = |e: &EpochMetrics| e.groups.get("head").unwrap().weight_change;
    assert!(head(&epochs[1]) > head(&epochs[0]));
}

#[test]
fn the_rate_finder_sweeps_upwards_stops_on_divergence_and_suggests_a_rate() {
    let data = TempDir::new("lr-find-data");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 8);
    // The same pictures under two labels: no head fits them, so a high rate blows the loss up
    // (on separable features a head can reach a loss near 0 at any rate).
    let twin = data.path().join("bird-again");
    std::fs::create_dir_all(&twin).unwrap();
    for file in std::fs::read_dir(data.path().join("bird")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, twin.join(file.file_name().unwrap())).unwrap();
    }
    let runs = TempDir::new("lr-find-runs");
    let config = common::small_config(data.path(), runs.path());
    let settings = SweepSettings {
        start: 1e-5,
        end: 1e4,
        steps: 80,
    };
    let mut handle = train::spawn_lr_find(config, settings, None);
    let mut points = Vec::new();
    let sweep = loop {
        match handle.next_timeout(Duration::from_secs(600)) {
            Some(TrainEvent::LrPoint(p)) => points.push(p),
            Some(TrainEvent::LrSwept(sweep)) => break sweep,
            Some(TrainEvent::Failed(m)) => panic!("sweep failed: {m}"),
            Some(TrainEvent::Finished(_)) => panic!("a sweep is not a run"),
            Some(_) => {}
            None => panic!("the sweep did not end"),
        }
    };
    assert_eq!(points, sweep.points, "events and the result disagree");
    assert!(
        sweep.cached,
        "the frozen backbone's output is computed once"
    );
    assert!(
        sweep.points.windows(2).all(|w| w[1].lr > w[0].lr),
        "not monotone"
    );
    assert!(
        sweep.diverged,
        "a rate of 1e4 should blow the loss up: {:?}",
        sweep.points
    );
    assert!(sweep.points.len() < 80, "stopped at {}", sweep.points.len());
    let suggestion = sweep.suggestion.expect("a suggestion");
    assert!(suggestion > 1e-6 && suggestion < 1.0, "{suggestion:e}");
    // Nothing was written: no run folder, no scratch file.
    let left: Vec<_> = std::fs::read_dir(runs.path()).map_or(Vec::new(), |d| d.collect());
    assert!(left.is_empty(), "the sweep left {left:?}");
}
