//! The data doctor: what a folder's images say about its labels, before any training. The frozen
//! backbone's features of every image ([`features`], cached), a linear head cross-validated on
//! them ([`linear`]), and from its out-of-fold probabilities: an accuracy with its 95 % interval
//! ([`crate::platform::interval`]), the images whose label is unlikely, near-duplicates ([`duplicates`]), images
//! far from every class and the class balance. Nothing is written into the data set.

pub mod curve;
pub mod duplicates;
pub mod features;
pub mod linear;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde::Serialize;

use crate::data::{self, DataError, Layout};
use crate::models::{ModelKind, WeightsError};
use crate::platform::fsutil::{InsideDataSet, file_state};
use features::{FeatureKey, FeaturePass, ImageFeatures};

/// Why the doctor could not examine a folder.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The folder cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The weights cannot be loaded.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// No pre-trained weights for the model.
    #[error("no pre-trained weights for {0} were found: pass --weights FILE")]
    NoWeights(&'static str),
    /// The feature cache would lie inside the data set.
    #[error(transparent)]
    InsideDataSet(#[from] InsideDataSet),
    /// Too few usable images to cross-validate.
    #[error("{0}")]
    TooFew(String),
    /// The device failed.
    #[error("the compute device failed: {0}")]
    Device(String),
}

/// How to examine a folder.
#[derive(Clone, Debug)]
pub struct DoctorOptions {
    /// The backbone whose features are used.
    pub model: ModelKind,
    /// Its weights; `None` finds the catalogue's.
    pub weights: Option<PathBuf>,
    /// Cross-validation folds.
    pub folds: usize,
    /// Seed of the folds.
    pub seed: u64,
}

impl DoctorOptions {
    /// The default options with `model` and its `weights` (as a training config names them).
    pub fn for_model(model: ModelKind, weights: Option<PathBuf>) -> Self {
        Self {
            model,
            weights,
            ..Self::default()
        }
    }
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            model: ModelKind::EfficientNetLite0,
            weights: None,
            folds: 5,
            seed: 0,
        }
    }
}

/// A cross-validated accuracy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CvAccuracy {
    /// Share of images whose out-of-fold prediction is their label.
    pub mean: f64,
    /// Its 95 % Wilson interval.
    pub ci95: [f64; 2],
    /// Folds.
    pub folds: usize,
}

/// An image whose label its out-of-fold prediction disputes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelIssue {
    /// Relative to the data root, `/`-separated.
    pub file: String,
    /// The file itself (the exact path, for thumbnails and decisions).
    #[serde(skip)]
    pub path: PathBuf,
    /// Its folder's class.
    pub given: String,
    /// The class the head predicts for it.
    pub suggested: String,
    /// 1 − the out-of-fold probability of the given class.
    pub score: f64,
}

/// Two files that are the same picture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Duplicate {
    /// The two files, relative to the data root.
    pub files: [String; 2],
    /// The two files themselves.
    #[serde(skip)]
    pub paths: [PathBuf; 2],
    /// Cosine similarity of their features.
    pub similarity: f64,
    /// `same-class`, `conflicting-labels` or `train-val-leak`.
    pub kind: &'static str,
}

/// An image far from every class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outlier {
    /// Relative to the data root.
    pub file: String,
    /// The file itself.
    #[serde(skip)]
    pub path: PathBuf,
    /// 1 − its cosine similarity to the nearest class centre.
    pub score: f64,
}

/// The largest and the smallest class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Imbalance {
    /// Class with the most images.
    pub largest: String,
    /// Class with the fewest.
    pub smallest: String,
    /// Their ratio.
    pub ratio: f64,
}

/// What the doctor found (the shape `graft doctor --json` writes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The folder examined.
    #[serde(skip)]
    pub root: PathBuf,
    /// Class names.
    pub classes: Vec<String>,
    /// Usable images.
    pub images: usize,
    /// The cross-validated accuracy of a linear head on the frozen features.
    pub cv_accuracy: CvAccuracy,
    /// Most suspicious first.
    pub label_issues: Vec<LabelIssue>,
    /// Most similar first.
    pub duplicates: Vec<Duplicate>,
    /// Farthest first.
    pub outliers: Vec<Outlier>,
    /// The class balance.
    pub imbalance: Imbalance,
    /// Files that could not be used, with why.
    #[serde(skip)]
    pub skipped: Vec<String>,
}

/// Label issues listed at most.
const MAX_LABEL_ISSUES: usize = 50;
/// Outliers listed at most.
const MAX_OUTLIERS: usize = 10;

/// `path` relative to `root`, `/`-separated, for people and JSON.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The usable images of a folder with their features.
struct Examined {
    root: PathBuf,
    classes: Vec<String>,
    images: Vec<ImageFeatures>,
    labels: Vec<usize>,
    in_val: Vec<bool>,
    layout: Layout,
    skipped: Vec<String>,
}

/// Scans `root` and computes (or reads back) the features of every image.
fn features_of(
    root: &Path,
    options: &DoctorOptions,
    device: &Device,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Examined, DoctorError> {
    let scan = data::scan_folder(root)?;
    let weights = match &options.weights {
        Some(w) => w.clone(),
        None => options
            .model
            .find_weights()
            .ok_or(DoctorError::NoWeights(options.model.name()))?,
    };
    let key = FeatureKey {
        model: options.model,
        weights: (weights.clone(), file_state(&weights)),
        input_size: options.model.input_size(),
    };
    let pass = FeaturePass {
        key,
        data_root: root,
        device,
        progress,
        cancel,
    };
    let paths: Vec<PathBuf> = scan.files.iter().map(|f| f.path.clone()).collect();
    let results = pass.run(&paths)?;
    if cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(DataError::Cancelled.into());
    }
    let mut out = Examined {
        root: root.to_path_buf(),
        classes: scan.classes.clone(),
        images: Vec::new(),
        labels: Vec::new(),
        in_val: Vec::new(),
        layout: scan.layout,
        skipped: scan.passed_over.iter().map(ToString::to_string).collect(),
    };
    for (file, result) in scan.files.iter().zip(results) {
        match result {
            Ok(f) => {
                out.images.push(f);
                out.labels.push(file.class);
                out.in_val.push(file.in_val_folder || file.in_test_folder);
            }
            Err(reason) => out
                .skipped
                .push(format!("{}: {reason}", file.path.display())),
        }
    }
    Ok(out)
}

/// Examines the images of `root`: see the module documentation.
pub fn examine(
    root: &Path,
    options: &DoctorOptions,
    device: &Device,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Report, DoctorError> {
    let ex = features_of(root, options, device, progress, cancel)?;
    let classes = ex.classes.len();
    let mut counts = vec![0usize; classes];
    for &l in &ex.labels {
        counts[l] += 1;
    }
    if counts.iter().filter(|c| **c > 0).count() < 2 || ex.images.len() < options.folds.max(2) {
        return Err(DoctorError::TooFew(format!(
            "{} has {} usable images in {} classes with images: the doctor needs at least two classes and {} images",
            root.display(),
            ex.images.len(),
            counts.iter().filter(|c| **c > 0).count(),
            options.folds.max(2)
        )));
    }
    let features: Vec<Vec<f32>> = ex.images.iter().map(|f| f.features.clone()).collect();
    let probabilities =
        linear::out_of_fold(&features, &ex.labels, classes, options.folds, options.seed);
    let right = probabilities
        .iter()
        .zip(&ex.labels)
        .filter(|(p, l)| argmax(p) == **l)
        .count();
    let (lo, hi) = crate::platform::interval::wilson95(right, ex.images.len());
    let units: Vec<Vec<f32>> = features.iter().map(|f| duplicates::unit(f)).collect();
    Ok(Report {
        root: ex.root.clone(),
        classes: ex.classes.clone(),
        images: ex.images.len(),
        cv_accuracy: CvAccuracy {
            mean: right as f64 / ex.images.len() as f64,
            ci95: [lo, hi],
            folds: options.folds,
        },
        label_issues: label_issues(&ex, &probabilities),
        duplicates: duplicates_of(&ex, &units),
        outliers: outliers(&ex, &units),
        imbalance: imbalance(&ex.classes, &counts),
        skipped: ex.skipped.clone(),
    })
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Images whose out-of-fold prediction is another class, least likely given label first
/// (confident learning's self-confidence ranking).
fn label_issues(ex: &Examined, probabilities: &[Vec<f32>]) -> Vec<LabelIssue> {
    let mut issues: Vec<LabelIssue> = probabilities
        .iter()
        .zip(&ex.labels)
        .zip(&ex.images)
        .filter(|((p, l), _)| !p.is_empty() && argmax(p) != **l)
        .map(|((p, l), f)| LabelIssue {
            file: relative(&ex.root, &f.path),
            path: f.path.clone(),
            given: ex.classes[*l].clone(),
            suggested: ex.classes[argmax(p)].clone(),
            score: 1.0 - f64::from(p[*l]),
        })
        .collect();
    issues.sort_by(|a, b| b.score.total_cmp(&a.score));
    issues.truncate(MAX_LABEL_ISSUES);
    issues
}

fn duplicates_of(ex: &Examined, units: &[Vec<f32>]) -> Vec<Duplicate> {
    let signatures: Vec<duplicates::Signature> = ex
        .images
        .iter()
        .zip(units)
        .map(|(f, unit)| duplicates::Signature {
            unit,
            dhash: f.dhash,
            colours: &f.colours,
        })
        .collect();
    duplicates::duplicate_pairs(&signatures)
        .into_iter()
        .map(|(i, j, similarity)| {
            let kind = if ex.labels[i] != ex.labels[j] {
                "conflicting-labels"
            } else if ex.layout.is_given() && ex.in_val[i] != ex.in_val[j] {
                "train-val-leak"
            } else {
                "same-class"
            };
            Duplicate {
                files: [
                    relative(&ex.root, &ex.images[i].path),
                    relative(&ex.root, &ex.images[j].path),
                ],
                paths: [ex.images[i].path.clone(), ex.images[j].path.clone()],
                similarity: f64::from(similarity),
                kind,
            }
        })
        .collect()
}

/// Images whose distance to the nearest class centre is far beyond the usual (over four median
/// absolute deviations above the median), farthest first.
fn outliers(ex: &Examined, units: &[Vec<f32>]) -> Vec<Outlier> {
    let dims = units.first().map_or(0, Vec::len);
    let mut centres = vec![vec![0f32; dims]; ex.classes.len()];
    for (u, &l) in units.iter().zip(&ex.labels) {
        for (c, x) in centres[l].iter_mut().zip(u) {
            *c += x;
        }
    }
    let centres: Vec<Vec<f32>> = centres.iter().map(|c| duplicates::unit(c)).collect();
    let distances: Vec<f32> = units
        .iter()
        .map(|u| {
            let nearest = centres
                .iter()
                .map(|c| duplicates::dot(u, c))
                .fold(f32::MIN, f32::max);
            1.0 - nearest
        })
        .collect();
    let median = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let mid = median(distances.clone());
    let mad = median(distances.iter().map(|d| (d - mid).abs()).collect()).max(1e-6);
    let mut out: Vec<Outlier> = distances
        .iter()
        .zip(&ex.images)
        .filter(|(d, _)| (**d - mid) / mad > 4.0)
        .map(|(d, f)| Outlier {
            file: relative(&ex.root, &f.path),
            path: f.path.clone(),
            score: f64::from(*d),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(MAX_OUTLIERS);
    out
}

fn imbalance(classes: &[String], counts: &[usize]) -> Imbalance {
    let with_images: Vec<usize> = (0..classes.len()).filter(|c| counts[*c] > 0).collect();
    let largest = with_images
        .iter()
        .copied()
        .max_by_key(|c| counts[*c])
        .unwrap_or(0);
    let smallest = with_images
        .iter()
        .copied()
        .min_by_key(|c| counts[*c])
        .unwrap_or(0);
    Imbalance {
        largest: classes.get(largest).cloned().unwrap_or_default(),
        smallest: classes.get(smallest).cloned().unwrap_or_default(),
        ratio: counts.get(largest).copied().unwrap_or(0) as f64
            / counts.get(smallest).copied().unwrap_or(1).max(1) as f64,
    }
}

impl Report {
    /// The findings in words, one line each, for the command line.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "cross-validated accuracy of a linear head on frozen features ({} folds): {}",
            self.cv_accuracy.folds,
            crate::platform::interval::describe_share(self.cv_accuracy.mean, self.images)
        )];
        if self.imbalance.ratio >= crate::config::ClassBalance::AUTO_RATIO {
            out.push(format!(
                "imbalance: `{}` has {:.1}× the images of `{}`",
                self.imbalance.largest, self.imbalance.ratio, self.imbalance.smallest
            ));
        }
        out.push(format!(
            "label issues ({}), most suspicious first:",
            self.label_issues.len()
        ));
        for i in &self.label_issues {
            out.push(format!(
                "  {:.2}  {}  labelled {}, looks like {}",
                i.score, i.file, i.given, i.suggested
            ));
        }
        out.push(format!("near-duplicates ({}):", self.duplicates.len()));
        for d in &self.duplicates {
            out.push(format!(
                "  {:.3}  {}  {}  ({})",
                d.similarity, d.files[0], d.files[1], d.kind
            ));
        }
        out.push(format!("far from every class ({}):", self.outliers.len()));
        for o in &self.outliers {
            out.push(format!("  {:.3}  {}", o.score, o.file));
        }
        out
    }
}
