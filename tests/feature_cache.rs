//! The frozen-prefix feature cache trains exactly like recomputing the frozen layers, in memory
//! and spilled to disk, and leaves no scratch file behind.

mod common;

use common::TempDir;
use graft::config::{FineTuneConfig, FreezePlan, TrainConfig};
use graft::train::EpochMetrics;

fn epochs(config: TrainConfig) -> Vec<EpochMetrics> {
    common::run_epochs(config)
}

fn assert_same(a: &[EpochMetrics], b: &[EpochMetrics], what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let d = (x.train_loss - y.train_loss).abs();
        assert!(
            d < 1e-4,
            "{what}: epoch {} train loss {} vs {}",
            x.epoch,
            x.train_loss,
            y.train_loss
        );
        let d = (x.val_loss.unwrap() - y.val_loss.unwrap()).abs();
        assert!(
            d < 1e-4,
            "{what}: epoch {} val loss differs by {d}",
            x.epoch
        );
        assert_eq!(x.val_accuracy, y.val_accuracy, "{what}: epoch {}", x.epoch);
    }
}

#[test]
fn cached_training_matches_recomputing_the_frozen_layers() {
    let data = TempDir::new("cache-data");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 8);
    let runs = TempDir::new("cache-runs");
    let mut base = common::small_config(data.path(), runs.path());
    base.epochs = 3;
    base.head.dropout = 0.0; // dropout draws differ with the batch's origin, not its values
    // The head fit needs the cache, so the run without one would not do it.
    base.feature_cache.fit_passes = 0;

    let mut plain = base.clone();
    plain.feature_cache.enabled = false;
    let reference = epochs(plain);

    // Head only: the pooled features are cached.
    let cached = epochs(base.clone());
    assert_same(&reference, &cached, "head only, in memory");

    // The same spilled to a file (a zero memory budget).
    let mut spilled = base.clone();
    spilled.feature_cache.memory_mib = 0;
    assert_same(&reference, &epochs(spilled), "head only, on disk");

    // A frozen prefix that ends mid-backbone: feature maps are cached.
    let mut partial = base.clone();
    partial.freeze = FreezePlan::Groups(["stem", "block0", "block1"].map(String::from).into());
    let mut partial_plain = partial.clone();
    partial_plain.feature_cache.enabled = false;
    assert_same(
        &epochs(partial_plain),
        &epochs(partial),
        "frozen prefix of 3 groups",
    );

    // Two stages: stage 2 unfreezes everything, so nothing is cached there.
    let mut two = base.clone();
    two.epochs = 1;
    two.fine_tune = Some(FineTuneConfig {
        epochs: 1,
        ..Default::default()
    });
    let mut two_plain = two.clone();
    two_plain.feature_cache.enabled = false;
    assert_same(&epochs(two_plain), &epochs(two), "two stages");

    // No scratch file is left in any run folder.
    let leftovers: Vec<_> = std::fs::read_dir(runs.path())
        .unwrap()
        .flat_map(|run| std::fs::read_dir(run.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("feature-cache"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn with_augmentation_each_cached_view_is_computed_once() {
    let data = TempDir::new("cache-views-data");
    common::demo_subset(data.path(), &["bird", "fruit"], 6);
    let runs = TempDir::new("cache-views-runs");
    let mut config = common::small_config(data.path(), runs.path());
    config.augment.enabled = true;
    config.feature_cache.augmented_views = 2;
    config.epochs = 5;
    let metrics = epochs(config);
    assert_eq!(metrics.len(), 5);
    // Epochs 1 and 2 compute views 0 and 1; epochs 3–5 only read them.
    eprintln!(
        "epoch seconds: {:?}",
        metrics.iter().map(|m| m.seconds).collect::<Vec<_>>()
    );
    assert!(metrics.iter().all(|m| m.train_loss.is_finite()));
    let cached: Vec<usize> = metrics.iter().map(|m| m.cached_images).collect();
    let train = cached[4];
    assert!(train > 0);
    assert_eq!(cached, [0, 0, train, train, train]);
}
