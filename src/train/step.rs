//! One step's input and forward pass: images or cached activations in, logits and labels out.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::error::TrainError;
use super::feature_cache::FeatureCache;
use crate::data::Sample;
use crate::data::batches::{self, Batch, View};
use crate::models::{ModelKind, Network};

/// What one step starts from.
pub(super) enum Input {
    /// Preprocessed images.
    Images(Batch),
    /// Images whose frozen-prefix activations are cached: their indices.
    Cached(Vec<usize>),
}

/// How a pass over a sample list is cut into steps.
pub(super) struct Batches<'a> {
    pub samples: &'a [Sample],
    pub batch_size: usize,
    pub side: u32,
    pub kind: ModelKind,
}

impl Batches<'_> {
    /// The steps of one pass in `order`: cached indices, or images preprocessed as `view` on a
    /// background thread (an image that can no longer be read ends the pass with its error).
    pub fn inputs(
        &self,
        order: Vec<usize>,
        view: View,
        cached: bool,
    ) -> Box<dyn Iterator<Item = Result<Input, TrainError>>> {
        if cached {
            let chunks: Vec<Vec<usize>> = order
                .chunks(self.batch_size)
                .map(<[usize]>::to_vec)
                .collect();
            Box::new(chunks.into_iter().map(|c| Ok(Input::Cached(c))))
        } else {
            let rx = batches::stream(
                self.samples.to_vec(),
                order,
                self.batch_size,
                self.side,
                self.kind.normalization(),
                view,
            );
            Box::new(rx.into_iter().map(|batch| {
                batch
                    .map(Input::Images)
                    .map_err(TrainError::ImageUnreadable)
            }))
        }
    }
}

/// Logits and labels of one step: the whole network on images, or the groups after the cache's
/// boundary on cached (or just computed and cached) activations of `view`.
pub(super) fn forward(
    network: &Network,
    cache: Option<&mut FeatureCache>,
    input: Input,
    view: usize,
    samples: &[Sample],
    device: &Device,
) -> Result<(Tensor<2>, Tensor<1, Int>), TrainError> {
    Ok(match (input, cache) {
        (Input::Images(batch), None) => {
            let (x, y) = tensors(batch, device);
            (network.forward(x), y)
        }
        (Input::Images(batch), Some(cache)) => {
            let indices = batch.indices.clone();
            let (x, y) = tensors(batch, device);
            let features = cache.fill(network, x, view, &indices)?;
            (network.forward_after(features, cache.boundary), y)
        }
        (Input::Cached(indices), Some(cache)) => {
            let features = cache.read(view, &indices, device)?;
            let y = indices.iter().map(|&i| samples[i].label as i64).collect();
            (
                network.forward_after(features, cache.boundary),
                label_tensor(y, device),
            )
        }
        (Input::Cached(_), None) => {
            return Err(TrainError::Device("cached input without a cache".into()));
        }
    })
}

/// How many leading layer groups are frozen (at most the backbone's groups): the boundary of
/// the part that can be cached.
pub(super) fn frozen_prefix(frozen: &[bool], backbone_groups: usize) -> usize {
    frozen
        .iter()
        .take(backbone_groups)
        .take_while(|f| **f)
        .count()
}

pub(super) fn tensors(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.len();
    let s = batch.side as usize;
    let x = Tensor::<4>::from_data(TensorData::new(batch.images, [n, 3, s, s]), device);
    (x, label_tensor(batch.labels, device))
}

pub(super) fn label_tensor(labels: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = labels.len();
    Tensor::from_data(TensorData::new(labels, [n]), device)
}

pub(super) fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    t.try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|e| TrainError::Device(e.to_string()))
}

pub(super) fn scalar_int(t: Tensor<1, Int>) -> Result<i64, TrainError> {
    t.try_into_scalar::<i64>()
        .map_err(|e| TrainError::Device(e.to_string()))
}
