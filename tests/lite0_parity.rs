//! EfficientNet-Lite0 with the real weights against PyTorch's logits.

mod common;

use burn::tensor::Device;
use graft::data::decode::decode_file;
use graft::data::preprocess::push_chw;
use graft::models::ModelKind;
use graft::run::predict::Predictor;
use safetensors::SafeTensors;

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The reference: the 20 samples' pixels (RGB, 224×224), PyTorch's logits and the labels.
struct Reference {
    pixels: Vec<u8>,
    logits: Vec<f32>,
    labels: Vec<i64>,
}

fn reference(fixtures: &std::path::Path) -> Reference {
    let bytes =
        std::fs::read(fixtures.join("reference/efficientnet_lite0_imagenet.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let pixels = reference.tensor("pixels").unwrap();
    assert_eq!(pixels.shape(), [20, 224, 224, 3]);
    let labels = reference
        .tensor("labels")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Reference {
        pixels: pixels.data().to_vec(),
        logits: f32s(reference.tensor("logits").unwrap().data()),
        labels,
    }
}

/// The first `n` reference images through `predictor`: its logits, five images a batch.
fn logits_of_reference(predictor: &Predictor, reference: &Reference, n: usize) -> Vec<Vec<f32>> {
    let norm = ModelKind::EfficientNetLite0.normalization();
    let mut input = Vec::new();
    for img in reference.pixels.chunks_exact(224 * 224 * 3).take(n) {
        let rgb = image::RgbImage::from_raw(224, 224, img.to_vec()).unwrap();
        push_chw(&rgb, &norm, &mut input);
    }
    let mut ours = Vec::new();
    for chunk in input.chunks(5 * 3 * 224 * 224) {
        let images = chunk.len() / (3 * 224 * 224);
        ours.extend(
            predictor
                .logits_from_pixels(chunk.to_vec(), images)
                .unwrap(),
        );
    }
    ours
}

/// The largest difference between `ours` and the reference's logits.
fn max_logit_diff(ours: &[Vec<f32>], reference: &Reference) -> f32 {
    let mut max_diff = 0f32;
    for (i, row) in ours.iter().enumerate() {
        for (a, b) in row.iter().zip(&reference.logits[i * 1000..(i + 1) * 1000]) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    max_diff
}

#[test]
fn lite0_matches_pytorch_logits_and_preprocessing() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let reference = reference(&fixtures);
    let device = Device::flex();
    let kind = ModelKind::EfficientNetLite0;
    let predictor = Predictor::imagenet(kind, None, &device).unwrap();

    // 1. Same pixels in: logits within 1e-3 of PyTorch's.
    let ours = logits_of_reference(&predictor, &reference, 20);
    let max_diff = max_logit_diff(&ours, &reference);
    let mut correct = 0;
    let mut ref_top1 = Vec::new();
    for (i, row) in ours.iter().enumerate() {
        ref_top1.push(argmax(&reference.logits[i * 1000..(i + 1) * 1000]));
        if argmax(row) as i64 == reference.labels[i] {
            correct += 1;
        }
    }
    eprintln!("max |logit diff| = {max_diff:e}, top-1 correct {correct}/20");
    assert!(max_diff < 1e-3, "max logit difference {max_diff}");
    assert!(correct >= 18, "top-1 correct {correct}/20");

    // 2. Raw JPEG through Graft's own decoding and preprocessing: same top-1 as the reference.
    let mut samples: Vec<_> = std::fs::read_dir(fixtures.join("imagenet/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    samples.sort();
    assert_eq!(samples.len(), 20);
    let images: Vec<_> = samples.iter().map(|p| decode_file(p).unwrap()).collect();
    let logits = predictor.logits(&images).unwrap();
    let agree = logits
        .iter()
        .zip(&ref_top1)
        .filter(|(l, r)| argmax(l) == **r)
        .count();
    eprintln!("raw JPEG top-1 agreement with the reference: {agree}/20");
    assert!(agree >= 19, "top-1 agreement {agree}/20");
}

/// The same network on the wgpu backend (lavapipe in CI: most of its 2–3 minutes compile
/// shaders, so 5 images rather than 20).
#[test]
fn lite0_on_wgpu_matches_pytorch_logits() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    if graft::platform::device::list_adapters().is_empty() {
        panic!("no wgpu adapter: install a Vulkan driver (mesa-vulkan-drivers) to run this test");
    }
    let reference = reference(&fixtures);
    let compute = graft::platform::device::select(graft::platform::device::DevicePreference::Gpu);
    assert_eq!(compute.backend, graft::platform::device::Backend::Wgpu);
    let predictor =
        Predictor::imagenet(ModelKind::EfficientNetLite0, None, &compute.device).unwrap();
    let ours = logits_of_reference(&predictor, &reference, 5);
    let max_diff = max_logit_diff(&ours, &reference);
    eprintln!("{}: max |logit diff| = {max_diff:e}", compute.description);
    assert!(max_diff < 1e-3, "max logit difference {max_diff} on wgpu");
}
