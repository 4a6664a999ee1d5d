//! The same settings, data and seed give the same run (what Re-run relies on). A test binary of
//! its own: tests running beside it would draw from the device's shared random generator.

mod common;

use common::TempDir;
use graft::config::TrainConfig;
use graft::train::EpochMetrics;

fn epochs(config: TrainConfig) -> Vec<EpochMetrics> {
    common::run_epochs(config)
}

#[test]
fn the_same_config_trains_to_the_same_numbers() {
    let data = TempDir::new("repro-data");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 6);
    let runs = TempDir::new("repro-runs");
    let mut config = common::small_config(data.path(), runs.path());
    // Dropout, augmentation and a new random head all draw random numbers.
    config.augment.enabled = true;
    config.head.dropout = 0.3;
    config.epochs = 3;
    let mut scratch = config.clone();
    scratch.from_scratch = true;
    scratch.freeze = graft::config::FreezePlan::Nothing;
    scratch.epochs = 1;
    for config in [config, scratch] {
        let a = epochs(config.clone());
        let b = epochs(config);
        let key = |m: &EpochMetrics| (m.train_loss, m.val_loss, m.val_accuracy);
        assert_eq!(
            a.iter().map(key).collect::<Vec<_>>(),
            b.iter().map(key).collect::<Vec<_>>()
        );
    }
}
