//! The torchvision architectures: parity with PyTorch's logits on the reference networks, the
//! full-size key maps, architecture detection, and clear errors for files that do not fit.

mod common;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use common::TempDir;
use graft::config::HeadConfig;
use graft::models::mobilenet::MobileNetArch;
use graft::models::resnet::ResNetArch;
use graft::models::{
    Family, ModelKind, Network, NetworkSpec, WeightsError, detect_kind, load_weights,
};
use safetensors::SafeTensors;

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The reference networks: file stem and shape.
fn references() -> Vec<(&'static str, Family)> {
    vec![
        (
            "resnet_basic_1111",
            Family::ResNet(ResNetArch {
                bottleneck: false,
                layers: [1, 1, 1, 1],
            }),
        ),
        (
            "resnet_bottleneck_1111",
            Family::ResNet(ResNetArch {
                bottleneck: true,
                layers: [1, 1, 1, 1],
            }),
        ),
        ("mobilenet_v2", Family::MobileNet(MobileNetArch::v2())),
        (
            "mobilenet_v3_small",
            Family::MobileNet(MobileNetArch::v3_small()),
        ),
    ]
}

fn max_diff_against_reference(reference: &Path, weights: &Path, family: &Family) -> f32 {
    let device = Device::flex();
    let mut network = Network::from_family(family, 10, &HeadConfig::default(), &device);
    let started = std::time::Instant::now();
    let report = load_weights(&mut network, family, weights, true)
        .unwrap_or_else(|e| panic!("{}: {e}", weights.display()));
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let bytes = std::fs::read(reference).unwrap();
    let io = SafeTensors::deserialize(&bytes).unwrap();
    let input = io.tensor("input").unwrap();
    assert_eq!(input.shape(), [2, 3, 96, 96]);
    let expected = f32s(io.tensor("logits").unwrap().data());
    let x = Tensor::<4>::from_data(TensorData::new(f32s(input.data()), [2, 3, 96, 96]), &device);
    let logits: Vec<f32> = network.forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(logits.len(), expected.len());
    let diff = logits
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "{}: {} tensors loaded in {load_ms:.0} ms, max |logit diff| {diff:e}",
        weights.file_name().unwrap().to_string_lossy(),
        report.applied
    );
    diff
}

#[test]
fn reference_networks_match_pytorch_logits() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let dir = fixtures.join("reference");
    for (name, family) in references() {
        let io = dir.join(format!("{name}_io.safetensors"));
        let mut files = vec![dir.join(format!("{name}.pth"))];
        if name == "resnet_basic_1111" {
            files.push(dir.join(format!("{name}.safetensors")));
        }
        for file in files {
            let diff = max_diff_against_reference(&io, &file, &family);
            assert!(diff < 1e-4, "{}: max |diff| {diff}", file.display());
        }
    }
}

/// The key lists in `reference/keys/` of the architectures Graft supports.
const TORCHVISION_KEYS: [(&str, ModelKind); 7] = [
    ("resnet18", ModelKind::ResNet18),
    ("resnet34", ModelKind::ResNet34),
    ("resnet50", ModelKind::ResNet50),
    ("resnet101", ModelKind::ResNet101),
    ("mobilenet_v2", ModelKind::MobileNetV2),
    ("mobilenet_v3_small", ModelKind::MobileNetV3Small),
    ("mobilenet_v3_large", ModelKind::MobileNetV3Large),
];

/// Writes a safetensors file with zeros under the names and shapes of a torchvision key list.
fn zeros_like_keys(keys: &Path, out: &Path) {
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(keys).unwrap()).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = json
        .into_iter()
        .map(|(name, shape)| {
            let shape: Vec<usize> = serde_json::from_value(shape).unwrap();
            let n: usize = shape.iter().product();
            (name, shape, vec![0u8; n * 4])
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, out).unwrap();
}

#[test]
fn full_size_models_map_onto_torchvision_names_exactly() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let tmp = TempDir::new("zoo-keys");
    let device = Device::flex();
    for (file, kind) in TORCHVISION_KEYS {
        let weights = tmp.path().join(format!("{file}.safetensors"));
        zeros_like_keys(
            &fixtures.join(format!("reference/keys/{file}.json")),
            &weights,
        );
        assert_eq!(detect_kind(&weights).unwrap(), kind, "{file}");
        let spec = NetworkSpec {
            kind,
            classes: 1000,
            head: HeadConfig::default(),
            input_size: 224,
        };
        // Every name and shape in the file has its place, and every tensor of ours is there.
        let (_, report) = Network::pretrained(&spec, &weights, true, None, &device)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            report
                .unused
                .iter()
                .all(|k| k.ends_with("num_batches_tracked")),
            "{file}: {:?}",
            report.unused
        );
        assert!(
            report.missing.iter().all(|k| k.ends_with(".training")),
            "{file}: {:?}",
            report.missing
        );
        std::fs::remove_file(&weights).unwrap();
    }
}

#[test]
fn files_that_do_not_fit_say_which_keys_and_shapes() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let device = Device::flex();
    let tmp = TempDir::new("zoo-bad");
    // A ResNet file loaded as a MobileNetV2: a mismatch report, not a panic.
    let resnet = fixtures.join("reference/resnet_basic_1111.pth");
    let spec = NetworkSpec {
        kind: ModelKind::MobileNetV2,
        classes: 10,
        head: HeadConfig::default(),
        input_size: 96,
    };
    match Network::pretrained(&spec, &resnet, true, None, &device) {
        Err(WeightsError::Mismatch { problems, .. }) => {
            let text = problems.join("\n");
            assert!(text.contains("missing from the file"), "{text}");
            assert!(text.contains("in the file but not in the model"), "{text}");
        }
        other => panic!("expected a mismatch, got {:?}", other.map(|(_, r)| r)),
    }
    // ResNet-18's names loaded as ResNet-34: the blocks it lacks are listed, then counted.
    let r18 = tmp.path().join("r18.safetensors");
    zeros_like_keys(&fixtures.join("reference/keys/resnet18.json"), &r18);
    let spec34 = NetworkSpec {
        kind: ModelKind::ResNet34,
        ..spec.clone()
    };
    match Network::pretrained(&spec34, &r18, false, None, &device) {
        Err(WeightsError::Mismatch { problems, .. }) => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("layer1.2.conv1.weight: missing")),
                "{problems:?}"
            );
            assert!(problems.iter().any(|p| p.contains("more missing")));
        }
        other => panic!("expected a mismatch, got {:?}", other.map(|(_, r)| r)),
    }
    // A shape that differs: ImageNet's 1000-class classifier kept for a 10-class model.
    let spec18 = NetworkSpec {
        kind: ModelKind::ResNet18,
        ..spec.clone()
    };
    match Network::pretrained(&spec18, &r18, true, None, &device) {
        Err(WeightsError::Mismatch { problems, .. }) => assert!(
            problems
                .iter()
                .any(|p| p.contains("head.fc.weight: shape [512, 1000] in the file")),
            "{problems:?}"
        ),
        other => panic!("expected a mismatch, got {:?}", other.map(|(_, r)| r)),
    }
    // Without the classifier the same file loads.
    assert!(Network::pretrained(&spec18, &r18, false, None, &device).is_ok());
    // Not a weight file at all, and a truncated one.
    let junk = tmp.path().join("junk.pth");
    std::fs::write(&junk, b"hello, not a checkpoint").unwrap();
    let err = Network::pretrained(&spec, &junk, false, None, &device).unwrap_err();
    assert!(matches!(err, WeightsError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("junk.pth"));
    let truncated = tmp.path().join("truncated.pth");
    let bytes = std::fs::read(&resnet).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = Network::pretrained(&spec, &truncated, false, None, &device).unwrap_err();
    assert!(err.to_string().contains("truncated.pth"), "{err}");
    // A file of an architecture Graft does not list.
    let err = detect_kind(&resnet).unwrap_err();
    assert!(
        matches!(err, WeightsError::UnknownArchitecture { .. }),
        "{err}"
    );
    // The bundled Lite0 is recognised.
    if let Some(lite) = ModelKind::EfficientNetLite0.find_weights() {
        assert_eq!(detect_kind(&lite).unwrap(), ModelKind::EfficientNetLite0);
    }
}

#[test]
fn exported_weights_carry_exactly_the_torchvision_names_and_shapes() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let tmp = TempDir::new("zoo-export");
    let device = Device::flex();
    for (file, kind) in TORCHVISION_KEYS {
        let spec = NetworkSpec {
            kind,
            classes: 1000,
            head: HeadConfig::default(),
            input_size: 224,
        };
        let network = Network::new(&spec, &device);
        let out = tmp.path().join(format!("{file}.safetensors"));
        graft::run::export::save_pytorch_named(&network, kind, &out).unwrap();
        let written: std::collections::BTreeMap<String, Vec<usize>> =
            graft::models::file_tensors(&out)
                .unwrap()
                .into_iter()
                .collect();
        let json: std::collections::BTreeMap<String, Vec<usize>> = serde_json::from_slice(
            &std::fs::read(fixtures.join(format!("reference/keys/{file}.json"))).unwrap(),
        )
        .unwrap();
        // PyTorch fills in BatchNorm's batch counters when they are absent.
        let torchvision: std::collections::BTreeMap<String, Vec<usize>> = json
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        assert_eq!(written, torchvision, "{file}");
        std::fs::remove_file(&out).unwrap();
    }
}

/// Resident memory of this process now, in MiB (Linux).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

#[test]
#[ignore = "measures; run with --ignored --nocapture"]
fn load_time_and_peak_memory_of_each_weight_file() {
    let Some(fixtures) = common::fixtures() else {
        return;
    };
    let device = Device::flex();
    let mut files: Vec<(std::path::PathBuf, Family)> = [
        ModelKind::EfficientNetLite0,
        ModelKind::EfficientNetLite1,
        ModelKind::EfficientNetLite2,
    ]
    .into_iter()
    .map(|k| {
        (
            fixtures
                .join("weights")
                .join(k.weights_file_name().unwrap()),
            k.family(),
        )
    })
    .collect();
    for (name, family) in references() {
        files.push((fixtures.join(format!("reference/{name}.pth")), family));
    }
    files.push((
        fixtures.join("reference/resnet_basic_1111.safetensors"),
        references()[0].1.clone(),
    ));
    for (file, family) in files {
        let classes = if matches!(family, Family::Lite(_)) {
            1000
        } else {
            10
        };
        let mut network = Network::from_family(&family, classes, &HeadConfig::default(), &device);
        graft::platform::memory::reset_peak_memory();
        let before = rss_mib().unwrap_or(0.0);
        let started = std::time::Instant::now();
        load_weights(&mut network, &family, &file, true).unwrap();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let peak = graft::platform::memory::peak_memory_mib().unwrap_or(0.0);
        let size = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
        eprintln!(
            "{:<40} {size:>6.1} MB  load {ms:>6.0} ms  peak +{:>5.0} MiB over the built model",
            file.file_name().unwrap().to_string_lossy(),
            peak - before
        );
        drop(network);
    }
}
