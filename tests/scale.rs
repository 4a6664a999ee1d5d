//! Big folders in bounded memory: the decoded-image store keeps to its budget without changing
//! what training computes, and a scan or first pass can be cancelled.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{TempDir, run_with_summary, snapshot};
use graft::config::{DevicePreference, FreezePlan, TrainConfig};
use graft::data::{self, DataError, PrepareOptions};
use graft::models::ModelKind;
use graft::train::{self, EpochMetrics, TrainEvent};

/// `classes × per_class` small PNGs whose colour says their class, each with its own pattern.
fn generated_folder(root: &Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let dir = root.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let image = image::RgbImage::from_fn(24, 20, |x, y| {
                let wave = ((x * 7 + y * 3 + i as u32 * 13) % 64) as u8;
                let base = [(c * 90) as u8, 120 - (c * 40) as u8, 200 - (c * 60) as u8];
                image::Rgb(base.map(|b| b.saturating_add(wave)))
            });
            image.save(dir.join(format!("{i:04}.png"))).unwrap();
        }
    }
}

fn tiny_run(data: &Path, runs: &Path, image_memory_mib: usize) -> TrainConfig {
    let mut config = TrainConfig {
        data: data.to_path_buf(),
        runs_dir: Some(runs.to_path_buf()),
        model: ModelKind::TinyTest,
        input_size: Some(32),
        batch_size: 32,
        epochs: 2,
        // Every epoch decodes (no feature cache can stand in for the images).
        freeze: FreezePlan::Nothing,
        device: DevicePreference::Cpu,
        image_memory_mib,
        ..TrainConfig::default()
    };
    config.augment.enabled = true;
    config
}

#[test]
fn a_small_image_budget_is_kept_to_and_trains_to_the_same_losses_and_a_first_pass_cancels() {
    let data = TempDir::new("scale-data");
    generated_folder(data.path(), 3, 1000);
    let before = snapshot(data.path());
    let runs = TempDir::new("scale-runs");

    // 37 × 37 (the resize side for 32) × 3 bytes ≈ 4 KB an image: 1 MiB holds about 255 of 3000.
    let (bounded, bounded_summary) = run_with_summary(tiny_run(data.path(), runs.path(), 1));
    let (unbounded, unbounded_summary) = run_with_summary(tiny_run(data.path(), runs.path(), 512));

    let store = bounded_summary
        .decoded_images
        .expect("the run records its store");
    assert_eq!(store.budget_bytes, 1 << 20);
    assert!(store.peak_bytes <= store.budget_bytes, "{store:?}");
    assert!(
        store.kept_images > 100 && store.kept_images < 300,
        "{store:?}"
    );
    // Images outside the budget were decoded again in each epoch (train, then validation).
    assert!(store.decodes > 3000 + 2 * 2000, "{store:?}");
    let all = unbounded_summary.decoded_images.unwrap();
    assert_eq!(all.kept_images, 3000, "{all:?}");
    assert_eq!(all.decodes, 3000, "{all:?}");

    let losses = |epochs: &[EpochMetrics]| -> Vec<(f64, Option<f64>)> {
        epochs.iter().map(|m| (m.train_loss, m.val_loss)).collect()
    };
    assert_eq!(bounded.len(), 2);
    assert_eq!(losses(&bounded), losses(&unbounded));
    assert_eq!(before, snapshot(data.path()), "the data folder changed");
    a_run_cancelled_in_its_first_pass_leaves_no_scratch_file(data.path(), runs.path());
}

#[test]
fn cancelling_during_the_scan_or_the_decoding_stops_there() {
    let data = TempDir::new("scale-cancel");
    generated_folder(data.path(), 2, 1100);
    let before = snapshot(data.path());
    let options = PrepareOptions::whole(32, 2);
    for stop_at_scan in [true, false] {
        let cancel = AtomicBool::new(false);
        let reports = AtomicUsize::new(0);
        let progress = |done: usize, total: usize| {
            reports.fetch_add(1, Ordering::Relaxed);
            let scanning = total == 0;
            if scanning == stop_at_scan && (scanning || done >= 50) {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let outcome = data::prepare(data.path(), &options, &progress, &cancel);
        assert!(matches!(outcome, Err(DataError::Cancelled)), "{outcome:?}");
        // Stopped at once: one report from the scan, or a few more than 50 from the decoders.
        let reports = reports.load(Ordering::Relaxed);
        assert!(reports < 2 + 60, "{reports} reports after cancelling");
    }
    assert_eq!(before, snapshot(data.path()), "the data folder changed");
}

/// Cancels a run at its first batch (called from the one training test: runs beside each other
/// would draw from the device's shared random generator and change each other's numbers).
fn a_run_cancelled_in_its_first_pass_leaves_no_scratch_file(data: &Path, runs: &Path) {
    let before = snapshot(data);
    let mut config = tiny_run(data, runs, 1);
    // The frozen layers' output goes to a scratch file in the run folder.
    config.freeze = FreezePlan::AllButHead;
    config.feature_cache.memory_mib = 0;
    let mut handle = train::spawn(config, None);
    let summary = loop {
        match handle.next_timeout(Duration::from_secs(600)) {
            Some(TrainEvent::Batch(_)) => handle.cancel(),
            Some(TrainEvent::Finished(summary)) => break summary,
            Some(TrainEvent::Failed(why)) => panic!("run failed: {why}"),
            Some(_) => {}
            None => panic!("the run did not end"),
        }
    };
    assert!(summary.cancelled);
    let left: Vec<String> = std::fs::read_dir(&summary.run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter()
            .all(|name| !name.contains("feature-cache") && !name.contains("tmp")),
        "{left:?}"
    );
    assert_eq!(before, snapshot(data), "the data folder changed");
}
