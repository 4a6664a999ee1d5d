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

#[test]
fn lite0_matches_pytorch_logits_and_preprocessing() {
    let Some(fixtures) = common::fixtures() else {
        eprintln!("skipped: ../shared/fixtures is not here");
        return;
    };
    let bytes =
        std::fs::read(fixtures.join("reference/efficientnet_lite0_imagenet.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let pixels = reference.tensor("pixels").unwrap();
    assert_eq!(pixels.shape(), [20, 224, 224, 3]);
    let ref_logits = f32s(reference.tensor("logits").unwrap().data());
    let labels: Vec<i64> = reference
        .tensor("labels")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();

    let device = Device::flex();
    let kind = ModelKind::EfficientNetLite0;
    let predictor = Predictor::imagenet(kind, None, &device).unwrap();

    // 1. Same pixels in: logits within 1e-3 of PyTorch's.
    let mut input = Vec::new();
    for img in pixels.data().chunks_exact(224 * 224 * 3) {
        let rgb = image::RgbImage::from_raw(224, 224, img.to_vec()).unwrap();
        push_chw(&rgb, &kind.normalization(), &mut input);
    }
    let mut ours = Vec::new();
    for chunk in input.chunks(5 * 3 * 224 * 224) {
        ours.extend(predictor.logits_from_pixels(chunk.to_vec(), 5).unwrap());
    }
    let mut max_diff = 0f32;
    let mut correct = 0;
    let mut ref_top1 = Vec::new();
    for (i, row) in ours.iter().enumerate() {
        let r = &ref_logits[i * 1000..(i + 1) * 1000];
        for (a, b) in row.iter().zip(r) {
            max_diff = max_diff.max((a - b).abs());
        }
        ref_top1.push(argmax(r));
        if argmax(row) as i64 == labels[i] {
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
