//! How good a trained run is: accuracy, per-class precision/recall/F1, the confusion matrix and
//! the mistakes, on the run's own validation split or on another folder with the same classes.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde::Serialize;

use super::predict::{PredictError, Predictor, TrainedRun, softmax};
use crate::config::TrainConfig;
use crate::data::batches::{View, make_batch};
use crate::data::rng::Rng;
use crate::data::{self, PrepareOptions, Sample};

/// One class's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// Of the images predicted as this class, the share that are.
    pub precision: f64,
    /// Of the images of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Images of this class.
    pub support: usize,
}

/// One image's prediction (a mistake when `predicted != truth`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The file.
    pub path: PathBuf,
    /// Its class index.
    pub truth: usize,
    /// The predicted class index.
    pub predicted: usize,
    /// Probability of the predicted class.
    pub confidence: f32,
    /// Cross-entropy loss of the true class.
    pub loss: f32,
    /// The raw logits.
    #[serde(skip)]
    pub logits: Vec<f32>,
}

/// A misclassified image.
pub type Mistake = Prediction;

/// Scores over a set of images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Class names.
    pub classes: Vec<String>,
    /// `confusion[truth][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Per class.
    pub per_class: Vec<ClassMetrics>,
    /// Share of images predicted right.
    pub accuracy: f64,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Metrics {
    /// Counts and scores from true and predicted class indices.
    pub fn from_predictions(classes: &[String], truths: &[usize], predicted: &[usize]) -> Self {
        let n = classes.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for (&t, &p) in truths.iter().zip(predicted) {
            confusion[t][p] += 1;
        }
        let per_class = (0..n)
            .map(|c| {
                let tp = confusion[c][c];
                let predicted_c: usize = (0..n).map(|t| confusion[t][c]).sum();
                let support: usize = confusion[c].iter().sum();
                let precision = ratio(tp, predicted_c);
                let recall = ratio(tp, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    name: classes[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let correct: usize = (0..n).map(|c| confusion[c][c]).sum();
        Self {
            classes: classes.to_vec(),
            confusion,
            per_class,
            accuracy: ratio(correct, truths.len()),
        }
    }
}

/// A run's evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// The scores.
    pub metrics: Metrics,
    /// Every image, in the order given.
    pub predictions: Vec<Prediction>,
    /// Misclassified images, highest loss first.
    pub mistakes: Vec<Mistake>,
    /// Files that could not be used, with the reason.
    pub skipped: Vec<String>,
}

/// Why a run could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The run could not be loaded.
    #[error(transparent)]
    Predict(#[from] PredictError),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// The other folder's classes do not match the run's.
    #[error("{folder} has classes the run was not trained on: {}", unknown.join(", "))]
    UnknownClasses {
        /// The folder.
        folder: PathBuf,
        /// Its classes the run does not know.
        unknown: Vec<String>,
    },
    /// Nothing to evaluate on.
    #[error("no images to evaluate on (the run has no validation split; pass a folder)")]
    NoImages,
}

/// Classifies `samples` and scores the result.
pub fn evaluate_samples(
    predictor: &Predictor,
    samples: &[Sample],
) -> Result<Evaluation, EvalError> {
    let side = predictor.input_size();
    let norm = predictor.normalization();
    let mut truths = Vec::new();
    let mut predicted = Vec::new();
    let mut predictions = Vec::with_capacity(samples.len());
    let indices: Vec<usize> = (0..samples.len()).collect();
    let mut rng = Rng::new(0, 0);
    for chunk in indices.chunks(16) {
        let batch = make_batch(samples, chunk, side, &norm, &View::Eval, &mut rng);
        let n = batch.len();
        let logits = predictor.logits_from_pixels(batch.images, n)?;
        for (row, &i) in logits.into_iter().zip(chunk) {
            let probs = softmax(&row);
            let (best, &confidence) = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap_or((0, &0.0));
            let truth = samples[i].label;
            truths.push(truth);
            predicted.push(best);
            predictions.push(Prediction {
                path: samples[i].path.clone(),
                truth,
                predicted: best,
                confidence,
                loss: -probs[truth].max(1e-12).ln(),
                logits: row,
            });
        }
    }
    let mut mistakes: Vec<Mistake> = predictions
        .iter()
        .filter(|p| p.predicted != p.truth)
        .cloned()
        .collect();
    mistakes.sort_by(|a, b| b.loss.total_cmp(&a.loss));
    Ok(Evaluation {
        metrics: Metrics::from_predictions(predictor.classes(), &truths, &predicted),
        predictions,
        mistakes,
        skipped: Vec::new(),
    })
}

/// The images a run is evaluated on: its own validation split (same folder, fraction, seed and
/// cap as in training), or every image of `folder`, labelled by the run's class order.
pub fn run_samples(
    config: &TrainConfig,
    classes: &[String],
    folder: Option<&Path>,
    input_size: u32,
) -> Result<(Vec<Sample>, Vec<data::SkippedFile>), EvalError> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let never = AtomicBool::new(false);
    let options = PrepareOptions {
        input_size,
        val_fraction: if folder.is_some() {
            0.0
        } else {
            config.split.val_fraction
        },
        seed: config.seed,
        max_images_per_class: if folder.is_some() {
            None
        } else {
            config.max_images_per_class
        },
        threads,
    };
    let root = folder.unwrap_or(&config.data);
    let dataset = data::prepare(root, &options, &|_, _| {}, &never)?;
    let samples: Vec<Sample> = match folder {
        None => dataset.val,
        Some(folder) => {
            let unknown: Vec<String> = dataset
                .classes
                .iter()
                .filter(|c| !classes.contains(c))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(EvalError::UnknownClasses {
                    folder: folder.to_path_buf(),
                    unknown,
                });
            }
            dataset
                .train
                .into_iter()
                .chain(dataset.val)
                .map(|mut s| {
                    let name = &dataset.classes[s.label];
                    s.label = classes.iter().position(|c| c == name).unwrap_or(s.label);
                    s
                })
                .collect()
        }
    };
    if samples.is_empty() {
        return Err(EvalError::NoImages);
    }
    Ok((samples, dataset.skipped))
}

/// Evaluates the run in `run_dir` on its own validation split, or on `folder` (whose class
/// folders must be among the run's classes).
pub fn evaluate_run(
    run_dir: &Path,
    folder: Option<&Path>,
    device: &Device,
) -> Result<Evaluation, EvalError> {
    let run = TrainedRun::open(run_dir, device)?;
    let predictor = &run.predictor;
    let settings = &run.settings;
    let (samples, skipped) = run_samples(
        &settings.config,
        &settings.classes,
        folder,
        predictor.input_size(),
    )?;
    let mut evaluation = evaluate_samples(predictor, &samples)?;
    evaluation.skipped = skipped
        .iter()
        .map(|s| format!("{}: {}", s.path.display(), s.reason))
        .collect();
    Ok(evaluation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_counted_confusion_and_scores() {
        let classes: Vec<String> = ["cat", "dog", "fox"].map(String::from).to_vec();
        // truth:     cat cat cat dog dog fox
        // predicted: cat cat dog dog cat fox
        let m = Metrics::from_predictions(&classes, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 0, 2]);
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![1, 1, 0], vec![0, 0, 1]]
        );
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // cat: predicted cat 3 times, 2 right → precision 2/3; 3 cats, 2 found → recall 2/3.
        assert!((m.per_class[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        // dog: predicted twice, 1 right → 1/2; 2 dogs, 1 found → 1/2; F1 1/2.
        assert!((m.per_class[1].f1 - 0.5).abs() < 1e-12);
        assert_eq!(m.per_class[2].support, 1);
        assert_eq!(m.per_class[2].f1, 1.0);
    }
}
