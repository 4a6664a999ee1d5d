//! How good a trained run is: accuracy, per-class precision/recall/F1, the confusion matrix and
//! the mistakes, on the run's own validation split or on another folder with the same classes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde::Serialize;

use super::folder::{read_manifest, read_record, read_run};
use super::predict::{PredictError, Predictor, TrainedRun, softmax};
use super::scores::read_scores;
use crate::config::TrainConfig;
use crate::data::batches::{View, make_batch};
use crate::data::manifest::{FolderChanges, Manifest, Part};
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
    #[serde(serialize_with = "crate::platform::paths::as_path::serialize")]
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
    /// What changed in the data set since training, in words.
    pub warnings: Vec<String>,
    /// The checkpoint's epoch when these are the scores the run stored with it; `None` when the
    /// images were classified now.
    pub stored_epoch: Option<usize>,
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
    let mut scored = Vec::with_capacity(samples.len());
    let indices: Vec<usize> = (0..samples.len()).collect();
    let mut rng = Rng::new(0, 0);
    let mut unreadable = Vec::new();
    for chunk in indices.chunks(16) {
        let mut chunk = chunk.to_vec();
        // A file that can no longer be read is reported and the rest of its batch scored.
        let batch = loop {
            match make_batch(samples, &chunk, side, &norm, &View::Eval, &mut rng) {
                Ok(batch) => break batch,
                Err(bad) => {
                    chunk.retain(|&i| samples[i].path != bad.path);
                    unreadable.push(bad);
                }
            }
        };
        if chunk.is_empty() {
            continue;
        }
        let n = batch.len();
        let logits = predictor.logits_from_pixels(batch.images, n)?;
        for (row, &i) in logits.into_iter().zip(&chunk) {
            scored.push((samples[i].path.clone(), samples[i].label, row));
        }
    }
    let mut evaluation = score_logits(predictor.classes(), scored);
    evaluation.skipped = unreadable.iter().map(ToString::to_string).collect();
    Ok(evaluation)
}

/// Scores images from their logits: `(file, true class, logits)` in the order given.
pub fn score_logits(classes: &[String], scored: Vec<(PathBuf, usize, Vec<f32>)>) -> Evaluation {
    let mut truths = Vec::with_capacity(scored.len());
    let mut predicted = Vec::with_capacity(scored.len());
    let mut predictions = Vec::with_capacity(scored.len());
    for (path, truth, row) in scored {
        let probs = softmax(&row);
        let (best, &confidence) = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        truths.push(truth);
        predicted.push(best);
        predictions.push(Prediction {
            path,
            truth,
            predicted: best,
            confidence,
            loss: -probs.get(truth).copied().unwrap_or(0.0).max(1e-12).ln(),
            logits: row,
        });
    }
    let mut mistakes: Vec<Mistake> = predictions
        .iter()
        .filter(|p| p.predicted != p.truth)
        .cloned()
        .collect();
    mistakes.sort_by(|a, b| b.loss.total_cmp(&a.loss));
    Evaluation {
        metrics: Metrics::from_predictions(classes, &truths, &predicted),
        predictions,
        mistakes,
        skipped: Vec::new(),
        warnings: Vec::new(),
        stored_epoch: None,
    }
}

/// The images an evaluation scores, and what a person should know about them.
#[derive(Clone, Debug)]
pub struct EvalSet {
    /// The images, labelled by the run's class order.
    pub samples: Vec<Sample>,
    /// Files that could not be used.
    pub skipped: Vec<data::SkippedFile>,
    /// What changed in the data set since training, in words.
    pub warnings: Vec<String>,
}

fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The images a run is evaluated on: its own validation split (the files `files.json` recorded,
/// compared with the folder as it is now), or every image of `folder`, labelled by the run's
/// class order.
pub fn eval_set(
    run_dir: &Path,
    config: &TrainConfig,
    classes: &[String],
    folder: Option<&Path>,
    input_size: u32,
) -> Result<EvalSet, EvalError> {
    let set = match folder {
        Some(folder) => other_folder(folder, classes, input_size)?,
        None => match read_manifest(run_dir).map_err(PredictError::from_run(run_dir))? {
            Some(manifest) => recorded_split(&manifest, config, classes, input_size)?,
            None => rebuilt_split(run_dir, config, input_size)?,
        },
    };
    if set.samples.is_empty() {
        return Err(EvalError::NoImages);
    }
    Ok(set)
}

/// The validation files the run recorded, less those gone since; the folder's changes named.
fn recorded_split(
    manifest: &Manifest,
    config: &TrainConfig,
    classes: &[String],
    input_size: u32,
) -> Result<EvalSet, EvalError> {
    let root = &config.data;
    let changes = changes_since(manifest, root)?;
    let files: Vec<(PathBuf, usize)> = manifest
        .validation(root)
        .into_iter()
        .filter(|(path, _)| !changes.removed.iter().any(|r| root.join(r) == *path))
        .filter_map(|(path, class)| Some((path, classes.iter().position(|c| *c == class)?)))
        .collect();
    let never = AtomicBool::new(false);
    let (samples, skipped) = data::load_samples(&files, input_size, decode_threads(), &never)?;
    Ok(EvalSet {
        samples,
        skipped,
        warnings: changes.describe(),
    })
}

/// What differs between the files the run read and `root` as it is now.
fn changes_since(manifest: &Manifest, root: &Path) -> Result<FolderChanges, EvalError> {
    let scan = data::scan_folder(root)?;
    let found: Vec<PathBuf> = scan.files.into_iter().map(|f| f.path).collect();
    Ok(manifest.changes(root, &found))
}

/// For a run from before `files.json`: the split rebuilt from the folder as it is now, with a
/// warning when its fingerprint differs from the one the run recorded.
fn rebuilt_split(
    run_dir: &Path,
    config: &TrainConfig,
    input_size: u32,
) -> Result<EvalSet, EvalError> {
    let dataset = prepare_for_eval(&config.data, config, false, input_size)?;
    let recorded = read_record(run_dir)
        .ok()
        .flatten()
        .and_then(|r| r.data)
        .map(|d| d.fingerprint);
    let mut warnings = Vec::new();
    if recorded.is_some_and(|f| f != dataset.fingerprint) {
        warnings.push(format!(
            "{} changed since this run trained on it (files added, removed or rewritten), and the run has no files.json to say which: the validation split is rebuilt from the folder as it is now and may hold images the run trained on",
            config.data.display()
        ));
    }
    Ok(EvalSet {
        samples: dataset.val,
        skipped: dataset.skipped,
        warnings,
    })
}

/// Every image of `folder`, labelled by the run's classes (which must include the folder's).
fn other_folder(folder: &Path, classes: &[String], input_size: u32) -> Result<EvalSet, EvalError> {
    let config = TrainConfig::default();
    let dataset = prepare_for_eval(folder, &config, true, input_size)?;
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
    let samples = dataset
        .train
        .into_iter()
        .chain(dataset.val)
        .map(|mut s| {
            let name = &dataset.classes[s.label];
            s.label = classes.iter().position(|c| c == name).unwrap_or(s.label);
            s
        })
        .collect();
    Ok(EvalSet {
        samples,
        skipped: dataset.skipped,
        warnings: Vec::new(),
    })
}

/// `root` decoded at `input_size`: split as `config` split it, or all of it (`whole`).
fn prepare_for_eval(
    root: &Path,
    config: &TrainConfig,
    whole: bool,
    input_size: u32,
) -> Result<data::Dataset, EvalError> {
    let never = AtomicBool::new(false);
    let options = if whole {
        PrepareOptions::whole(input_size, decode_threads())
    } else {
        PrepareOptions::of_config(config, input_size, decode_threads())
    };
    Ok(data::prepare(root, &options, &|_, _| {}, &never)?)
}

/// Evaluates the run in `run_dir` on its own validation split, or on `folder` (whose class
/// folders must be among the run's classes). On its own split, the scores the run stored with
/// its checkpoint are used when every validation file is as the run read it; otherwise, and
/// for another folder, the network classifies the images again.
pub fn evaluate_run(
    run_dir: &Path,
    folder: Option<&Path>,
    device: &Device,
) -> Result<Evaluation, EvalError> {
    if folder.is_none()
        && let Some(evaluation) = stored_evaluation(run_dir)?
    {
        return Ok(evaluation);
    }
    rescore_run(run_dir, folder, device)
}

/// [`evaluate_run`], always classifying the images with the checkpoint.
pub fn rescore_run(
    run_dir: &Path,
    folder: Option<&Path>,
    device: &Device,
) -> Result<Evaluation, EvalError> {
    let run = TrainedRun::open(run_dir, device)?;
    let predictor = &run.predictor;
    let settings = &run.settings;
    let set = eval_set(
        run_dir,
        &settings.config,
        &settings.classes,
        folder,
        predictor.input_size(),
    )?;
    let mut evaluation = evaluate_samples(predictor, &set.samples)?;
    let unreadable_now = std::mem::take(&mut evaluation.skipped);
    evaluation.skipped = set
        .skipped
        .iter()
        .map(ToString::to_string)
        .chain(unreadable_now)
        .collect();
    evaluation.warnings = set.warnings;
    Ok(evaluation)
}

/// The run's own split scored from `validation.json`; `None` when the run stored no scores, or
/// they no longer describe the validation files as they are (one removed or rewritten).
fn stored_evaluation(run_dir: &Path) -> Result<Option<Evaluation>, EvalError> {
    let from_run = PredictError::from_run(run_dir);
    let Some(stored) = read_scores(run_dir).map_err(&from_run)? else {
        return Ok(None);
    };
    let Some(manifest) = read_manifest(run_dir).map_err(&from_run)? else {
        return Ok(None);
    };
    let settings = read_run(run_dir).map_err(&from_run)?;
    let root = &settings.config.data;
    let classes = &settings.classes;
    let val: HashMap<&Path, usize> = manifest
        .files
        .iter()
        .filter(|e| e.part == Part::Val)
        .filter_map(|e| {
            let class = e.class.as_ref()?;
            Some((e.path.as_path(), classes.iter().position(|c| c == class)?))
        })
        .collect();
    let changes = changes_since(&manifest, root)?;
    let changed = changes.removed.iter().chain(&changes.modified);
    let matches = stored.images.len() == val.len()
        && stored.images.iter().all(|s| {
            val.get(s.file.as_path()) == Some(&s.label) && s.logits.len() == classes.len()
        });
    if !matches || changed.into_iter().any(|p| val.contains_key(p.as_path())) {
        return Ok(None);
    }
    let epoch = stored.epoch;
    let scored = stored
        .images
        .into_iter()
        .map(|s| (root.join(&s.file), s.label, s.logits))
        .collect();
    let mut evaluation = score_logits(classes, scored);
    evaluation.warnings = changes.describe();
    evaluation.stored_epoch = Some(epoch);
    Ok(Some(evaluation))
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
