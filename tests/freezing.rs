//! Frozen groups keep every weight and BatchNorm statistic bit for bit; trained ones change.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use common::TempDir;
use graft::config::{DevicePreference, FreezePlan, HeadConfig, TrainConfig};
use graft::models::{ModelKind, Network, NetworkSpec};
use graft::train::{self, TrainEvent};

fn tensors(network: &Network) -> BTreeMap<String, Vec<u8>> {
    network
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec()))
        .collect()
}

/// The layer group a tensor path belongs to.
fn group_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["backbone", "Lite", "stem", ..] => "stem".into(),
        ["backbone", "Lite", "blocks", i, ..] => format!("block{i}"),
        ["backbone", "Lite", "head_conv", ..] => "head_conv".into(),
        ["head", ..] => "head".into(),
        _ => panic!("unexpected tensor path {path}"),
    }
}

#[test]
fn frozen_groups_are_bit_identical_and_trained_groups_change() {
    check_freezing(false);
}

#[test]
fn fine_tuning_keeps_batch_norm_statistics_by_default() {
    // Stage 2 unfreezes everything; BatchNorm stays on its ImageNet statistics.
    check_freezing(true);
}

/// Trains with `frozen` groups (and, with `fine_tune`, a second stage that unfreezes all) and
/// compares every tensor of the checkpoint with the pre-trained one.
fn check_freezing(fine_tune: bool) {
    let data = TempDir::new("freeze-data");
    common::demo_subset(data.path(), &["bird", "fruit"], 6);
    let runs = TempDir::new("freeze-runs");
    let frozen: BTreeSet<String> = std::iter::once("stem".to_string())
        .chain((0..10).map(|i| format!("block{i}")))
        .collect();
    let config = TrainConfig {
        data: data.path().to_path_buf(),
        runs_dir: Some(runs.path().to_path_buf()),
        input_size: Some(64),
        batch_size: 4,
        epochs: 1,
        freeze: FreezePlan::Groups(frozen.clone()),
        device: DevicePreference::Cpu,
        fine_tune: fine_tune.then(|| graft::config::FineTuneConfig {
            epochs: 1,
            ..Default::default()
        }),
        ..TrainConfig::default()
    };
    // Without validation images the checkpoint is the last epoch, so stage 2's changes are in it.
    let mut config = config;
    if fine_tune {
        config.split.val_fraction = 0.0;
    }

    let mut handle = train::spawn(config.clone(), None);
    let mut run_dir = None;
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        match e {
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            TrainEvent::Finished(s) => {
                run_dir = Some(s.run_dir);
                break;
            }
            _ => {}
        }
    }
    let run_dir = run_dir.expect("no Finished event");

    let device = Device::flex();
    let spec = NetworkSpec {
        kind: ModelKind::EfficientNetLite0,
        classes: 2,
        head: HeadConfig::default(),
        input_size: 64,
    };
    let weights = ModelKind::EfficientNetLite0.find_weights().unwrap();
    let (before, _) = Network::pretrained(&spec, &weights, false, None, &device).unwrap();
    let mut after = Network::new(&spec, &device);
    after
        .load_from(&mut SafetensorsStore::from_file(
            run_dir.join("model.safetensors"),
        ))
        .unwrap();

    let before = tensors(&before);
    let after = tensors(&after);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(
        before.keys().any(|k| k.ends_with("running_var")),
        "BatchNorm statistics are not in the checkpoint"
    );
    let (mut same, mut changed) = (0, 0);
    for (name, bytes) in &before {
        let group = group_of(name);
        if group == "head" {
            continue; // newly initialised: nothing to compare against
        }
        let batch_norm = name.contains(".bn");
        // Stage 1 trains the thawed groups (their BatchNorm too); stage 2 trains every
        // weight but keeps BatchNorm where stage 1 left it.
        let stays = if fine_tune {
            batch_norm && frozen.contains(&group)
        } else {
            frozen.contains(&group)
        };
        if stays {
            assert_eq!(bytes, &after[name], "frozen tensor {name} changed");
            same += 1;
        } else {
            assert_ne!(
                bytes, &after[name],
                "trainable tensor {name} did not change"
            );
            changed += 1;
        }
    }
    eprintln!("fine-tuned: {fine_tune}: {same} tensors identical, {changed} changed");
    assert!(same > 50 && changed > 15);
}
