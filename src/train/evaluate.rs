//! Validation loss and accuracy, on images or on the feature cache.

use burn::tensor::Device;

use super::error::TrainError;
use super::feature_cache::FeatureCache;
use super::loss::cross_entropy;
use super::step::{Batches, forward, scalar, scalar_int};
use crate::data::Sample;
use crate::data::batches::View;
use crate::models::{ModelKind, Network};

/// Mean loss and accuracy over a set of images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValidationScore {
    /// Mean cross-entropy loss (NaN without images).
    pub loss: f64,
    /// Share of images classified right, in `[0, 1]` (NaN without images).
    pub accuracy: f64,
    /// Images classified right.
    pub correct: usize,
}

/// Validation loss and accuracy of `network` on `samples` (centre crops).
pub fn evaluate(
    network: &Network,
    samples: &[Sample],
    side: u32,
    kind: ModelKind,
    batch_size: usize,
    device: &Device,
) -> Result<ValidationScore, TrainError> {
    let batches = Batches {
        samples,
        batch_size,
        side,
        kind,
    };
    evaluate_with(network, None, &batches, device).map(|pass| pass.score)
}

/// A validation pass: its score and each image's logits, in sample order.
pub(super) struct ValidationPass {
    pub score: ValidationScore,
    pub logits: Vec<Vec<f32>>,
}

/// [`evaluate`], with the frozen groups' output taken from (and first put into) `cache`, and
/// every image's logits.
pub(super) fn evaluate_with(
    network: &Network,
    mut cache: Option<&mut FeatureCache>,
    batches: &Batches,
    device: &Device,
) -> Result<ValidationPass, TrainError> {
    let samples = batches.samples;
    if samples.is_empty() {
        let score = ValidationScore {
            loss: f64::NAN,
            accuracy: f64::NAN,
            correct: 0,
        };
        return Ok(ValidationPass {
            score,
            logits: Vec::new(),
        });
    }
    let order: Vec<usize> = (0..samples.len()).collect();
    let cached = cache.as_ref().is_some_and(|c| c.has_view(0));
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let mut rows = Vec::with_capacity(samples.len());
    for input in batches.inputs(order, View::Eval, cached) {
        let (logits, y) = forward(network, cache.as_deref_mut(), input?, 0, samples, device)?;
        let [n, classes] = logits.dims();
        let values = logits
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| TrainError::Device(e.to_string()))?;
        rows.extend(values.chunks(classes.max(1)).map(<[f32]>::to_vec));
        let loss = cross_entropy(logits.clone(), y.clone());
        let hits = logits.argmax(1).reshape([n]).equal(y).int().sum();
        loss_sum += scalar(loss)? * n as f64;
        correct += scalar_int(hits)? as usize;
    }
    let score = ValidationScore {
        loss: loss_sum / samples.len() as f64,
        accuracy: correct as f64 / samples.len() as f64,
        correct,
    };
    Ok(ValidationPass {
        score,
        logits: rows,
    })
}
