//! `model.onnx`: every architecture of the zoo, written by Graft and run by tract (a runtime that
//! shares no code with Graft's network), gives Graft's probabilities; exports of 2- and
//! 200-class runs carry their metadata and self-check; an export folder is replaced whole or
//! not at all.

mod common;

use std::path::Path;
use std::time::Duration;

use burn::tensor::Device;
use common::TempDir;
use graft::config::{HeadConfig, TrainConfig};
use graft::models::mobilenet::MobileNetArch;
use graft::models::resnet::ResNetArch;
use graft::models::{Family, ModelKind, Network, NetworkSpec, load_weights};
use graft::platform::device::DevicePreference;
use graft::run::export::{EXPORT_FILES, ONNX_TOLERANCE, export_run, max_abs_diff};
use graft::run::onnx::runtime::{read_metadata, run_onnx};
use graft::run::onnx::{OnnxModel, write_onnx};
use graft::run::predict::{Predictor, softmax};
use graft::train::{self, TrainEvent};
use image::RgbImage;

/// Pictures with smooth colour gradients and noise, so every channel and position matters.
fn pictures(n: usize, side: u32, seed: u64) -> Vec<RgbImage> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let phase = (next() % 256) as u32;
            RgbImage::from_fn(side, side, |x, y| {
                let noise = (next() % 64) as u32;
                image::Rgb([
                    ((x * 255 / side + phase) % 256) as u8,
                    ((y * 255 / side + noise) % 256) as u8,
                    (((x + y) * 97 + i as u32 * 31 + noise) % 256) as u8,
                ])
            })
        })
        .collect()
}

/// Writes `network` as ONNX, runs it in tract on a few pictures and returns the largest
/// probability difference from Graft's own forward pass.
fn onnx_vs_graft(network: Network, kind: ModelKind, side: u32, dir: &Path) -> f32 {
    let device = Device::flex();
    let classes = network.head.fc.weight.dims()[1];
    let names: Vec<String> = (0..classes).map(|c| format!("class{c}")).collect();
    let predictor = Predictor::from_network(network, names, kind, side, &device);
    let path = dir.join(format!("{}-{side}.onnx", kind.name()));
    let model = OnnxModel {
        network: predictor.network(),
        input_size: side,
        normalization: predictor.normalization(),
        metadata: vec![("graft_version".into(), "test".into())],
    };
    write_onnx(&model, &path).unwrap();
    let crops = pictures(3, side, classes as u64);
    let logits = predictor.logits_of_crops(&crops).unwrap();
    let expected: Vec<Vec<f32>> = logits.iter().map(|l| softmax(l)).collect();
    let got = run_onnx(&path, &crops).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
    let diff = max_abs_diff(&expected, &got.probabilities);
    // Probabilities alone could agree by being nearly uniform: the logits must agree too,
    // relative to how far apart they are.
    let spread = logits
        .iter()
        .flatten()
        .fold(0f32, |m, l| m.max(l.abs()))
        .max(1e-3);
    let logit_diff = max_abs_diff(&logits, &got.logits);
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "{} at {side} px: {:.2} MB, largest probability difference {diff:e}, logits up to {spread:.3} differ by {logit_diff:e}",
        kind.name(),
        size as f64 / 1e6
    );
    assert!(
        logit_diff <= 1e-4 * spread,
        "{}: logits differ by {logit_diff:e}",
        kind.name()
    );
    diff
}

fn random_network(kind: ModelKind, classes: usize, head: HeadConfig) -> Network {
    let spec = NetworkSpec {
        kind,
        classes,
        head,
        input_size: kind.input_size(),
    };
    Network::new_seeded(&spec, &Device::flex(), 7)
}

#[test]
fn every_architecture_computes_in_tract_what_it_computes_in_graft() {
    let dir = TempDir::new("onnx-archs");
    let mut worst = Vec::new();
    // Random weights at small inputs; an odd size exercises TensorFlow's uneven padding.
    for (kind, side) in [
        (ModelKind::TinyTest, 37),
        (ModelKind::EfficientNetLite1, 64),
        (ModelKind::EfficientNetLite2, 64),
        (ModelKind::ResNet18, 64),
        (ModelKind::ResNet34, 64),
        (ModelKind::ResNet50, 64),
        (ModelKind::ResNet101, 64),
        (ModelKind::MobileNetV2, 64),
        (ModelKind::MobileNetV3Small, 64),
        (ModelKind::MobileNetV3Large, 64),
    ] {
        let network = random_network(kind, 5, HeadConfig::default());
        worst.push((kind.name(), onnx_vs_graft(network, kind, side, dir.path())));
    }
    // A head with a hidden layer.
    let hidden = HeadConfig {
        hidden: Some(16),
        ..HeadConfig::default()
    };
    let network = random_network(ModelKind::TinyTest, 3, hidden);
    worst.push((
        "tiny-test, hidden layer",
        onnx_vs_graft(network, ModelKind::TinyTest, 32, dir.path()),
    ));
    for (name, diff) in worst {
        assert!(diff <= ONNX_TOLERANCE, "{name}: {diff:e}");
    }
}

/// torchvision's random networks with random BatchNorm statistics (a wrongly folded
/// BatchNorm shows), and the bundled Lite0 weights at 224.
#[test]
fn trained_weights_and_batch_norm_statistics_survive_the_folding() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let dir = TempDir::new("onnx-weights");
    let device = Device::flex();
    let references = [
        (
            "resnet_basic_1111",
            ModelKind::ResNet18,
            Family::ResNet(ResNetArch {
                bottleneck: false,
                layers: [1, 1, 1, 1],
            }),
        ),
        (
            "resnet_bottleneck_1111",
            ModelKind::ResNet50,
            Family::ResNet(ResNetArch {
                bottleneck: true,
                layers: [1, 1, 1, 1],
            }),
        ),
        (
            "mobilenet_v2",
            ModelKind::MobileNetV2,
            Family::MobileNet(MobileNetArch::v2()),
        ),
        (
            "mobilenet_v3_small",
            ModelKind::MobileNetV3Small,
            Family::MobileNet(MobileNetArch::v3_small()),
        ),
    ];
    for (name, kind, family) in references {
        let mut network = Network::from_family(&family, 10, &HeadConfig::default(), &device);
        let file = fixtures.join("reference").join(format!("{name}.pth"));
        load_weights(&mut network, &family, &file, true).unwrap();
        let diff = onnx_vs_graft(network, kind, 96, dir.path());
        assert!(diff <= ONNX_TOLERANCE, "{name}: {diff:e}");
    }
    let kind = ModelKind::EfficientNetLite0;
    let spec = NetworkSpec {
        kind,
        classes: 1000,
        head: HeadConfig::default(),
        input_size: 224,
    };
    let weights = kind.find_weights().expect("the bundled Lite0 weights");
    let (network, _) = Network::pretrained(&spec, &weights, true, None, &device).unwrap();
    let diff = onnx_vs_graft(network, kind, 224, dir.path());
    assert!(diff <= ONNX_TOLERANCE, "lite0: {diff:e}");
}

/// A folder of `classes` classes with `per_class` 12-pixel pictures each.
fn tiny_data_set(root: &Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let dir = root.join(format!("c{c:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, picture) in pictures(per_class, 12, c as u64 + 1).iter().enumerate() {
            picture.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

fn train_tiny(data: &Path, runs: &Path) -> std::path::PathBuf {
    let config = TrainConfig {
        data: data.to_path_buf(),
        runs_dir: Some(runs.to_path_buf()),
        model: ModelKind::TinyTest,
        input_size: Some(32),
        batch_size: 16,
        epochs: 1,
        device: DevicePreference::Cpu,
        ..TrainConfig::default()
    };
    let mut handle = train::spawn(config, None);
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        match e {
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            TrainEvent::Finished(s) => return s.run_dir,
            _ => {}
        }
    }
    panic!("no Finished event");
}

fn check_file(dir: &Path) -> (Vec<usize>, Vec<usize>) {
    let bytes = std::fs::read(dir.join("check.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let crops = st.tensor("crops").unwrap();
    assert_eq!(crops.dtype(), safetensors::Dtype::U8);
    let probabilities = st.tensor("probabilities").unwrap();
    (crops.shape().to_vec(), probabilities.shape().to_vec())
}

#[test]
fn two_and_two_hundred_class_runs_export_and_check() {
    let device = Device::flex();
    for (classes, per_class) in [(2, 10), (200, 5)] {
        let data = TempDir::new("onnx-data");
        tiny_data_set(data.path(), classes, per_class);
        let runs = TempDir::new("onnx-runs");
        let run_dir = train_tiny(data.path(), runs.path());
        let out = TempDir::new("onnx-export");
        let report = export_run(&run_dir, out.path(), &device).unwrap();
        eprintln!(
            "{classes} classes: ONNX check on {} crops, largest probability difference {:e}",
            report.onnx_check_images, report.onnx_max_probability_diff
        );
        assert!(report.onnx_max_probability_diff <= ONNX_TOLERANCE);
        let (crops, probabilities) = check_file(out.path());
        assert_eq!(crops, [report.onnx_check_images, 32, 32, 3]);
        assert_eq!(probabilities, [report.onnx_check_images, classes]);

        let onnx = out.path().join("model.onnx");
        let metadata: std::collections::HashMap<String, String> =
            read_metadata(&onnx).unwrap().into_iter().collect();
        let names: Vec<String> = serde_json::from_str(&metadata["classes"]).unwrap();
        assert_eq!(names.len(), classes);
        assert_eq!(names[0], "c000");
        let pre: serde_json::Value = serde_json::from_str(&metadata["preprocessing"]).unwrap();
        assert_eq!(pre["input_size"], 32);
        assert_eq!(metadata["graft_version"], env!("CARGO_PKG_VERSION"));
        assert!(!metadata["run"].is_empty());

        let crops = pictures(2, 32, 9);
        assert_eq!(run_onnx(&onnx, &crops).unwrap().probabilities.len(), 2);
    }
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_export_folder_is_replaced_whole_or_left_alone() {
    let device = Device::flex();
    let holder = TempDir::new("onnx-replace-data");
    let data = holder.path().join("photos");
    tiny_data_set(&data, 2, 10);
    let runs = TempDir::new("onnx-replace-runs");
    let run_dir = train_tiny(&data, runs.path());
    let parent = TempDir::new("onnx-replace-out");
    let out = parent.path().join("export");

    // A first export, then an old file planted as if from an earlier version: a second export
    // replaces the folder whole, so the planted content is gone.
    export_run(&run_dir, &out, &device).unwrap();
    std::fs::write(out.join("predict.py"), b"old").unwrap();
    export_run(&run_dir, &out, &device).unwrap();
    let names: Vec<String> = listing(&out).into_iter().map(|(n, _)| n).collect();
    let mut expected: Vec<String> = EXPORT_FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    assert_ne!(std::fs::read(out.join("predict.py")).unwrap(), b"old");
    // Nothing left beside it.
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);

    // A folder holding anything else is refused and left byte for byte as it was.
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let before = listing(&out);
    let err = export_run(&run_dir, &out, &device).unwrap_err().to_string();
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(listing(&out), before);
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);

    // Inside the data set: refused before anything is created.
    let before = common::snapshot(holder.path());
    let inside = data.join("c000").join("export");
    assert!(export_run(&run_dir, &inside, &device).is_err());
    // And a folder that holds the data set is never replaced.
    let err = export_run(&run_dir, holder.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds the data set"), "{err}");
    assert_eq!(common::snapshot(holder.path()), before);
}
