//! Batches of network input, assembled on a background thread so the training loop only waits
//! when augmentation is slower than a training step.

use std::sync::mpsc::{Receiver, sync_channel};

use super::Sample;
use super::preprocess::{eval_view, push_chw, train_view};
use super::rng::Rng;
use crate::config::AugmentConfig;
use crate::models::Normalization;

/// Images as normalised NCHW floats, with their labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `len × 3 × side × side` floats.
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<i64>,
    /// Indices of the images in the sample list the batch was drawn from.
    pub indices: Vec<usize>,
    /// Image side.
    pub side: u32,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Which transform the images get.
#[derive(Clone, Debug)]
pub enum View {
    /// Random resized crop and flip (as configured), seeded per epoch.
    Train {
        /// Augmentation settings.
        augment: AugmentConfig,
        /// Seed for this pass.
        seed: u64,
    },
    /// The centre crop.
    Eval,
}

/// Builds one batch from `indices` of `samples`.
pub fn make_batch(
    samples: &[Sample],
    indices: &[usize],
    side: u32,
    norm: &Normalization,
    view: &View,
    rng: &mut Rng,
) -> Batch {
    let mut images = Vec::with_capacity(indices.len() * 3 * (side * side) as usize);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let sample = &samples[i];
        let image = match view {
            View::Train { augment, .. } => train_view(&sample.image, side, augment, rng),
            View::Eval => eval_view(&sample.image, side),
        };
        push_chw(&image, norm, &mut images);
        labels.push(sample.label as i64);
    }
    Batch {
        images,
        labels,
        indices: indices.to_vec(),
        side,
    }
}

/// Streams the batches of one pass over `order` from a background thread.
///
/// Dropping the receiver stops the thread after the batch in progress.
pub fn stream(
    samples: Vec<Sample>,
    order: Vec<usize>,
    batch_size: usize,
    side: u32,
    norm: Normalization,
    view: View,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(2);
    std::thread::spawn(move || {
        let seed = match &view {
            View::Train { seed, .. } => *seed,
            View::Eval => 0,
        };
        let mut rng = Rng::new(seed, 3);
        for chunk in order.chunks(batch_size.max(1)) {
            let batch = make_batch(&samples, chunk, side, &norm, &view, &mut rng);
            if tx.send(batch).is_err() {
                break;
            }
        }
    });
    rx
}
