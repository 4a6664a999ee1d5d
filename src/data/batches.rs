//! Batches of network input, assembled on a background thread so the training loop only waits
//! when augmentation is slower than a training step.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use image::RgbImage;

use super::preprocess::{eval_view, push_chw, train_view};
use super::rng::Rng;
use super::{DecodeError, Sample, SkippedFile};
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

/// Builds one batch from `indices` of `samples`; an image that can no longer be decoded comes
/// back as the error, with its file.
pub fn make_batch(
    samples: &[Sample],
    indices: &[usize],
    side: u32,
    norm: &Normalization,
    view: &View,
    rng: &mut Rng,
) -> Result<Batch, SkippedFile> {
    let pixels = load_images(samples, indices)?;
    let mut images = Vec::with_capacity(indices.len() * 3 * (side * side) as usize);
    let mut labels = Vec::with_capacity(indices.len());
    for (&i, base) in indices.iter().zip(&pixels) {
        let image = match view {
            View::Train { augment, .. } => train_view(base, side, augment, rng),
            View::Eval => eval_view(base, side),
        };
        push_chw(&image, norm, &mut images);
        labels.push(samples[i].label as i64);
    }
    Ok(Batch {
        images,
        labels,
        indices: indices.to_vec(),
        side,
    })
}

/// The pixels of `indices`, in order: those in memory as they are, the others decoded (on
/// worker threads when there are several).
fn load_images(samples: &[Sample], indices: &[usize]) -> Result<Vec<Arc<RgbImage>>, SkippedFile> {
    let kept: Vec<Option<Arc<RgbImage>>> =
        indices.iter().map(|&i| samples[i].image.kept()).collect();
    let missing: Vec<usize> = indices
        .iter()
        .zip(&kept)
        .filter(|(_, image)| image.is_none())
        .map(|(&i, _)| i)
        .collect();
    let mut decoded = decode_on_workers(samples, &missing)?;
    // Whatever no worker decoded is decoded here.
    indices
        .iter()
        .zip(kept)
        .map(|(&i, kept)| match kept.or_else(|| decoded.remove(&i)) {
            Some(image) => Ok(image),
            None => samples[i].load(),
        })
        .collect()
}

/// The images `missing` (indices into `samples`) decoded on one worker thread per core, by
/// index; nothing when one thread would do.
fn decode_on_workers(
    samples: &[Sample],
    missing: &[usize],
) -> Result<HashMap<usize, Arc<RgbImage>>, SkippedFile> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(missing.len());
    if threads <= 1 {
        return Ok(HashMap::new());
    }
    let per_thread = missing.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = missing
            .chunks(per_thread)
            .map(|chunk| {
                let worker = s.spawn(move || {
                    crate::platform::priority::lower_this_thread();
                    chunk
                        .iter()
                        .map(|&i| samples[i].load().map(|image| (i, image)))
                        .collect::<Result<Vec<_>, _>>()
                });
                (chunk, worker)
            })
            .collect();
        let mut out = HashMap::with_capacity(missing.len());
        for (chunk, worker) in workers {
            let loaded = worker.join().unwrap_or_else(|_| {
                Err(SkippedFile {
                    path: samples[chunk[0]].path.clone(),
                    reason: DecodeError::Io("decoder thread failed".into()),
                })
            })?;
            out.extend(loaded);
        }
        Ok(out)
    })
}

/// Streams the batches of one pass over `order` from a background thread; a batch that cannot
/// be made ends the stream with its error.
///
/// Dropping the receiver stops the thread after the batch in progress.
pub fn stream(
    samples: Vec<Sample>,
    order: Vec<usize>,
    batch_size: usize,
    side: u32,
    norm: Normalization,
    view: View,
) -> Receiver<Result<Batch, SkippedFile>> {
    let (tx, rx) = sync_channel(2);
    std::thread::spawn(move || {
        crate::platform::priority::lower_this_thread();
        let seed = match &view {
            View::Train { seed, .. } => *seed,
            View::Eval => 0,
        };
        let mut rng = Rng::new(seed, 3);
        for chunk in order.chunks(batch_size.max(1)) {
            let batch = make_batch(&samples, chunk, side, &norm, &view, &mut rng);
            let failed = batch.is_err();
            if tx.send(batch).is_err() || failed {
                break;
            }
        }
    });
    rx
}
