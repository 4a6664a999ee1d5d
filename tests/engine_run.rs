//! Whole training runs through the engine: the event stream, the run folder, cancel.

mod common;

use std::time::Duration;

use common::TempDir;
use graft::run::files;
use graft::run::predict::Predictor;
use graft::train::{self, TrainEvent};

fn collect(handle: &mut train::TrainHandle) -> Vec<TrainEvent> {
    let mut events = Vec::new();
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        let last = e.is_terminal();
        events.push(e);
        if last {
            break;
        }
    }
    events
}

/// A short name per event, to check the order.
fn tag(e: &TrainEvent) -> &'static str {
    match e {
        TrainEvent::Device { .. } => "device",
        TrainEvent::Scanning { .. } => "scanning",
        TrainEvent::Preparing { .. } => "preparing",
        TrainEvent::Downloading { .. } => "downloading",
        TrainEvent::DataReady(_) => "data",
        TrainEvent::Warning(_) => "warning",
        TrainEvent::Started(_) => "started",
        TrainEvent::StageStarted { .. } => "stage",
        TrainEvent::CompilingKernels => "kernels",
        TrainEvent::Batch(_) => "batch",
        TrainEvent::FittingHead { .. } => "fitting",
        TrainEvent::Epoch(_) => "epoch",
        TrainEvent::Checkpoint { .. } => "checkpoint",
        TrainEvent::Tested(_) => "tested",
        TrainEvent::Paused => "paused",
        TrainEvent::Resumed => "resumed",
        TrainEvent::Finished(_) => "finished",
        TrainEvent::Failed(_) => "failed",
        TrainEvent::LrPoint(_) => "lr point",
        TrainEvent::LrSwept(_) => "lr swept",
    }
}

#[test]
fn two_epochs_stream_every_event_in_order_and_leave_a_whole_run_folder() {
    let data = TempDir::new("two-epochs-data");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 8);
    let runs = TempDir::new("two-epochs-runs");
    let config = common::small_config(data.path(), runs.path());
    let mut handle = train::spawn(config, None);
    let events = collect(&mut handle);
    let tags: Vec<&str> = events.iter().map(tag).collect();
    if let Some(TrainEvent::Failed(m)) = events.last() {
        panic!("run failed: {m}");
    }

    // Order: device, scanning (the count of files found), preparing…, data, started, stage,
    // then per epoch batches → epoch (→ checkpoint), then finished.
    let mut compact: Vec<&str> = tags.clone();
    compact.dedup();
    // The head is fitted on the cached features after the first pass, before its validation.
    let expected_prefix = [
        "device",
        "scanning",
        "preparing",
        "data",
        "started",
        "stage",
        "batch",
        "fitting",
        "epoch",
    ];
    assert_eq!(&compact[..9], &expected_prefix, "event order: {compact:?}");
    assert_eq!(compact.iter().filter(|t| **t == "fitting").count(), 1);
    assert_eq!(compact.last(), Some(&"finished"));

    // 3 classes × 8 images, 20 % val → 2 val + 6 train per class → 18 train → 3 batches of 8.
    let batches: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Batch(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 6);
    assert!(batches.iter().all(|b| b.batches == 3 && b.loss.is_finite()));
    let epochs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Epoch(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[0].epoch, 1);
    assert_eq!(epochs[1].epoch, 2);
    assert!(
        epochs[1].train_loss < epochs[0].train_loss,
        "training loss did not fall: {} then {}",
        epochs[0].train_loss,
        epochs[1].train_loss
    );
    assert!(epochs.iter().all(|m| m.val_accuracy.is_some()));

    let TrainEvent::Finished(summary) = events.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(summary.epochs, 2);
    assert!(!summary.cancelled);
    let dir = &summary.run_dir;
    for name in [
        files::CONFIG,
        files::LABELS,
        files::METRICS,
        files::CHECKPOINT,
        files::RUN,
    ] {
        assert!(
            dir.join(name).is_file(),
            "{name} missing from the run folder"
        );
    }
    let metrics = std::fs::read_to_string(dir.join(files::METRICS)).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // The checkpoint predicts: the run's own labels come back, probabilities sum to one.
    let predictor = Predictor::from_run(dir, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(predictor.classes(), ["bird", "fruit", "vehicle"]);
    let image = std::fs::read_dir(data.path().join("fruit"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let top = predictor.top_k_file(&image, 3).unwrap();
    assert_eq!(top.len(), 3);
    let total: f32 = top.iter().map(|t| t.1).sum();
    assert!((total - 1.0).abs() < 1e-4);
}

#[test]
fn cancel_mid_epoch_stops_within_one_batch_and_keeps_the_checkpoint() {
    let data = TempDir::new("cancel-data");
    common::demo_subset(data.path(), &["bird", "bug"], 10);
    let runs = TempDir::new("cancel-runs");
    let mut config = common::small_config(data.path(), runs.path());
    config.batch_size = 2;
    config.epochs = 3;
    // Cached epochs take microseconds a step: the run would be over before the cancel lands.
    config.feature_cache.enabled = false;
    let mut handle = train::spawn(config, None);
    let mut after_cancel = 0;
    let mut cancelled = false;
    let mut finished = None;
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        match &e {
            TrainEvent::Batch(b) if cancelled => {
                after_cancel += 1;
                let _ = b;
            }
            TrainEvent::Batch(b) if b.epoch == 2 && b.batch == 2 => {
                handle.cancel();
                cancelled = true;
            }
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            TrainEvent::Finished(s) => {
                finished = Some(s.clone());
                break;
            }
            _ => {}
        }
    }
    let summary = finished.expect("no Finished event");
    assert!(summary.cancelled);
    assert!(after_cancel <= 1, "{after_cancel} batches ran after cancel");
    assert_eq!(summary.epochs, 1, "only epoch 1 completed");
    // Epoch 1's checkpoint is whole and loads.
    Predictor::from_run(&summary.run_dir, &burn::tensor::Device::flex()).unwrap();
}

#[test]
fn the_head_is_not_fitted_when_fine_tuning_follows() {
    let data = TempDir::new("fit-stage2-data");
    common::demo_subset(data.path(), &["bird", "bug"], 5);
    let runs = TempDir::new("fit-stage2-runs");
    let mut config = common::small_config(data.path(), runs.path());
    config.epochs = 1;
    config.fine_tune = Some(graft::config::FineTuneConfig {
        epochs: 1,
        ..Default::default()
    });
    let mut handle = train::spawn(config, None);
    let tags: Vec<&str> = collect(&mut handle).iter().map(tag).collect();
    assert_eq!(tags.last(), Some(&"finished"), "{tags:?}");
    assert!(!tags.contains(&"fitting"), "{tags:?}");
}

#[test]
fn cancel_during_the_head_fit_stops_it_and_leaves_no_half_written_file() {
    let data = TempDir::new("fit-cancel-data");
    common::demo_subset(data.path(), &["bird", "bug"], 10);
    let runs = TempDir::new("fit-cancel-runs");
    let config = common::small_config(data.path(), runs.path());
    // Lockstep: after each event the engine waits until this thread has handled it, so the
    // cancel sent on the first pass's last batch is seen by the head fit's first step.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let notify: train::Notify = std::sync::Arc::new(move || {
        let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(600));
    });
    let mut handle = train::spawn(config, Some(notify));
    let mut fit_passes = 0;
    let mut finished = None;
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        match &e {
            TrainEvent::Batch(b) if b.epoch == 1 && b.batch == b.batches => handle.cancel(),
            TrainEvent::FittingHead { .. } => fit_passes += 1,
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            TrainEvent::Finished(s) => finished = Some(s.clone()),
            _ => {}
        }
        let _ = go.send(());
        if e.is_terminal() {
            break;
        }
    }
    let summary = finished.expect("no Finished event");
    assert!(summary.cancelled);
    assert_eq!(fit_passes, 0, "the fit went on after the cancel");
    assert_eq!(summary.epochs, 0, "the first epoch did not complete");
    assert_eq!(summary.best_epoch, None);
    // No checkpoint, no stored scores and no scratch or temp file: nothing half-written.
    let names: Vec<String> = std::fs::read_dir(&summary.run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for absent in [files::CHECKPOINT, files::VALIDATION] {
        assert!(!names.iter().any(|n| n == absent), "{names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| !n.contains("tmp") && !n.contains("cache")),
        "{names:?}"
    );
}

#[test]
fn pause_then_resume_continues_the_run() {
    let data = TempDir::new("pause-data");
    common::demo_subset(data.path(), &["bird", "bug"], 5);
    let runs = TempDir::new("pause-runs");
    let mut config = common::small_config(data.path(), runs.path());
    config.batch_size = 2;
    config.epochs = 1;
    let mut handle = train::spawn(config, None);
    let mut saw = Vec::new();
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        match &e {
            TrainEvent::Batch(b) if b.batch == 1 => handle.pause(),
            TrainEvent::Paused => handle.resume(),
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            _ => {}
        }
        let end = e.is_terminal();
        saw.push(tag(&e));
        if end {
            break;
        }
    }
    let paused = saw
        .iter()
        .position(|t| *t == "paused")
        .expect("no Paused event");
    assert_eq!(saw[paused + 1], "resumed");
    assert_eq!(saw.last(), Some(&"finished"));
}

/// `dest/<part>/<class>/` with images `range` of the demo's `source` class.
fn fill(
    dest: &std::path::Path,
    part: &str,
    class: &str,
    source: &str,
    range: std::ops::Range<usize>,
) {
    let mut files: Vec<_> = std::fs::read_dir(common::demo().join(source))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let dir = dest.join(part).join(class);
    std::fs::create_dir_all(&dir).unwrap();
    for f in &files[range] {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn a_test_folder_is_scored_once_at_the_end_and_never_chooses_the_checkpoint() {
    let data = TempDir::new("test-split");
    for class in ["bird", "fruit"] {
        fill(data.path(), "train", class, class, 0..8);
        fill(data.path(), "val", class, class, 8..11);
    }
    // The test set's labels are swapped: had it been trained on or used to choose the
    // checkpoint, it would show.
    fill(data.path(), "test", "bird", "fruit", 11..14);
    fill(data.path(), "test", "fruit", "bird", 11..14);
    let runs = TempDir::new("test-split-runs");
    let mut config = common::small_config(data.path(), runs.path());
    config.epochs = 3;
    config.balance = graft::config::ClassBalance::WeightedLoss;
    let events = common::run_to_end(config);
    let tags: Vec<&str> = events.iter().map(tag).collect();
    assert_eq!(
        tags.iter().filter(|t| **t == "tested").count(),
        1,
        "{tags:?}"
    );
    let tested_at = tags.iter().position(|t| *t == "tested").unwrap();
    let last_epoch = tags.iter().rposition(|t| *t == "epoch").unwrap();
    assert!(
        tested_at > last_epoch && tags[tested_at + 1] == "finished",
        "{tags:?}"
    );

    let data_summary = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::DataReady(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(data_summary.train_counts, [8, 8]);
    assert_eq!(data_summary.val_counts, [3, 3]);
    assert_eq!(data_summary.test_counts, [3, 3]);

    // The checkpoint is the epoch of the lowest validation loss.
    let epochs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Epoch(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    let best = epochs
        .iter()
        .min_by(|a, b| a.val_loss.unwrap().total_cmp(&b.val_loss.unwrap()))
        .unwrap();
    let TrainEvent::Finished(summary) = events.last().unwrap() else {
        panic!("{tags:?}")
    };
    assert_eq!(summary.best_epoch, Some(best.epoch));
    let test = summary.test.expect("a test score");
    assert_eq!(test.images, 6);
    assert!(
        test.accuracy() < best.val_accuracy.unwrap(),
        "swapped test labels score {} against {} on validation",
        test.accuracy(),
        best.val_accuracy.unwrap()
    );
    let manifest = std::fs::read_to_string(summary.run_dir.join("files.json")).unwrap();
    assert_eq!(manifest.matches("\"test\"").count(), 6, "{manifest}");
    for m in &epochs {
        let train = m.train_accuracy.expect("training accuracy per epoch");
        assert!((0.0..=1.0).contains(&train), "{train}");
    }
    let metrics = std::fs::read_to_string(summary.run_dir.join(files::METRICS)).unwrap();
    assert_eq!(metrics.matches("\"train_accuracy\":").count(), epochs.len());
}
