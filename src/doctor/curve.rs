//! "How much data do I need?": the accuracy of a linear head on the frozen pre-trained
//! backbone's features against the number of training images per class, over several seeds.
//! The features come from the doctor's cache, so the whole curve takes seconds.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde::Serialize;

use super::{DoctorError, DoctorOptions, features_of, linear};
use crate::data::rng::Rng;
use crate::platform::interval::wilson95;

/// Images per class the curve is measured at (then at every image).
pub const SIZES: [usize; 5] = [1, 2, 5, 10, 25];
/// Share of each class held out to score on (the same for every size within a seed).
pub const HELD_OUT: f64 = 0.3;

/// The curve at one size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Training images per class (at most; a smaller class gives all it has).
    pub per_class: usize,
    /// Whether this is every training image.
    pub all: bool,
    /// Mean accuracy over the seeds, in `[0, 1]`.
    pub accuracy: f64,
    /// 95 % Wilson interval of that accuracy on `tested` images.
    pub ci95: [f64; 2],
    /// The lowest and highest accuracy among the seeds.
    pub seed_range: [f64; 2],
    /// Held-out images scored per seed.
    pub tested: usize,
}

/// The whole curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curve {
    /// The data set.
    #[serde(with = "crate::platform::paths::as_path")]
    pub root: PathBuf,
    /// The backbone.
    pub model: String,
    /// Classes.
    pub classes: Vec<String>,
    /// Usable images.
    pub images: usize,
    /// Seeds averaged.
    pub seeds: usize,
    /// From the fewest images to all of them.
    pub points: Vec<CurvePoint>,
}

/// Measures the curve for `root` with `options`' backbone over `seeds` seeds.
pub fn data_efficiency(
    root: &Path,
    options: &DoctorOptions,
    seeds: usize,
    device: &Device,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Curve, DoctorError> {
    let ex = features_of(root, options, device, progress, cancel)?;
    let classes = ex.classes.len();
    let features: Vec<Vec<f32>> = ex.images.iter().map(|f| f.features.clone()).collect();
    let splits: Vec<Split> = (0..seeds.max(1) as u64)
        .map(|s| Split::draw(&ex.labels, classes, options.seed.wrapping_add(s)))
        .collect();
    let tested = splits.first().map_or(0, |s| s.test.len());
    if tested == 0 || classes < 2 {
        return Err(DoctorError::TooFew(format!(
            "{} has {} usable images in {classes} classes: the curve needs at least two classes with two images each",
            root.display(),
            ex.images.len()
        )));
    }
    let largest = splits[0].pools.iter().map(Vec::len).max().unwrap_or(0);
    let mut sizes: Vec<(usize, bool)> = SIZES
        .iter()
        .filter(|&&k| k < largest)
        .map(|&k| (k, false))
        .collect();
    sizes.push((largest, true));
    let points = sizes
        .into_iter()
        .map(|(per_class, all)| {
            let accuracies: Vec<f64> = splits
                .iter()
                .map(|split| {
                    let train = split.take(per_class);
                    let right = linear::held_out_correct(
                        &features,
                        &ex.labels,
                        &train,
                        &split.test,
                        classes,
                    );
                    right as f64 / split.test.len() as f64
                })
                .collect();
            point(per_class, all, &accuracies, tested)
        })
        .collect();
    Ok(Curve {
        root: ex.root.clone(),
        model: options.model.name().into(),
        classes: ex.classes.clone(),
        images: ex.images.len(),
        seeds: splits.len(),
        points,
    })
}

fn point(per_class: usize, all: bool, accuracies: &[f64], tested: usize) -> CurvePoint {
    let accuracy = accuracies.iter().sum::<f64>() / accuracies.len().max(1) as f64;
    let (lo, hi) = wilson95((accuracy * tested as f64).round() as usize, tested);
    let low = accuracies.iter().copied().fold(f64::INFINITY, f64::min);
    let high = accuracies.iter().copied().fold(0.0, f64::max);
    CurvePoint {
        per_class,
        all,
        accuracy,
        ci95: [lo, hi],
        seed_range: [low, high],
        tested,
    }
}

/// One seed's held-out images and, per class, the rest in a random order.
struct Split {
    test: Vec<usize>,
    pools: Vec<Vec<usize>>,
}

impl Split {
    fn draw(labels: &[usize], classes: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed, 23);
        let mut test = Vec::new();
        let mut pools = Vec::with_capacity(classes);
        for class in 0..classes {
            let mut members: Vec<usize> =
                (0..labels.len()).filter(|&i| labels[i] == class).collect();
            rng.shuffle(&mut members);
            let held = if members.len() >= 2 {
                ((members.len() as f64 * HELD_OUT).ceil() as usize).clamp(1, members.len() - 1)
            } else {
                0
            };
            test.extend_from_slice(&members[..held]);
            pools.push(members[held..].to_vec());
        }
        Self { test, pools }
    }

    /// The first `per_class` of each class's pool (all of a smaller one).
    fn take(&self, per_class: usize) -> Vec<usize> {
        self.pools
            .iter()
            .flat_map(|pool| pool.iter().take(per_class).copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_hold_out_a_share_of_every_class_and_repeat_with_the_seed() {
        let labels: Vec<usize> = (0..40).map(|i| i % 4).collect();
        let split = Split::draw(&labels, 4, 3);
        assert_eq!(split.test.len(), 4 * 3, "30 % of 10, rounded up, per class");
        assert!(split.pools.iter().all(|p| p.len() == 7));
        assert!(
            split.test.iter().all(|t| !split.take(7).contains(t)),
            "a test image trained on"
        );
        assert_eq!(split.take(2).len(), 8);
        assert_eq!(Split::draw(&labels, 4, 3).test, split.test);
        assert_ne!(Split::draw(&labels, 4, 4).test, split.test);
    }

    #[test]
    fn more_images_per_class_score_better_on_separable_features() {
        // Two noisy clusters: one image per class is a coin flip, twenty are nearly perfect.
        let mut rng = Rng::new(1, 1);
        let labels: Vec<usize> = (0..60).map(|i| i % 2).collect();
        let features: Vec<Vec<f32>> = labels
            .iter()
            .map(|&l| (0..8).map(|d| if d == 0 { l as f32 * 1.5 } else { 0.0 } + rng.uniform(-1.0, 1.0) as f32).collect())
            .collect();
        let accuracy = |per_class: usize| {
            (0..5)
                .map(|s| {
                    let split = Split::draw(&labels, 2, s);
                    linear::held_out_correct(
                        &features,
                        &labels,
                        &split.take(per_class),
                        &split.test,
                        2,
                    ) as f64
                        / split.test.len() as f64
                })
                .sum::<f64>()
                / 5.0
        };
        let (few, many) = (accuracy(1), accuracy(20));
        assert!(many > few, "1 per class: {few}, 20 per class: {many}");
        assert!(many > 0.7, "{many}");
    }
}
