//! What a run folder records: the data as trained on, each epoch's metrics, the outcome. The
//! training engine streams them as events; `run.json` and `metrics.jsonl` keep them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{Layout, SkippedFile};

/// The data set as the run sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// The folder.
    #[serde(with = "crate::platform::paths::as_path")]
    pub root: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// Class names (only classes with images).
    pub classes: Vec<String>,
    /// Training images per class.
    pub train_counts: Vec<usize>,
    /// Validation images per class.
    pub val_counts: Vec<usize>,
    /// Test images per class (empty without a test set).
    #[serde(default)]
    pub test_counts: Vec<usize>,
    /// Files the user's decisions left out, relative to the root.
    #[serde(default, with = "crate::platform::paths::as_paths")]
    pub excluded: Vec<PathBuf>,
    /// Files the user's decisions moved to another class.
    #[serde(default)]
    pub relabelled: usize,
    /// Files left out, with reasons.
    pub skipped: Vec<SkippedFile>,
    /// Class folders without a usable image.
    pub empty_classes: Vec<String>,
    /// Fingerprint of the files (paths, sizes, modification times): the same value means the
    /// same data.
    pub fingerprint: String,
}

/// One epoch's metrics; also one line of the run's `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1 or 2.
    pub stage: u8,
    /// Epoch, from 1 across both stages.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Share of the epoch's training images the model classified right as it stepped (with
    /// augmentation, on the augmented views), in `[0, 1]`.
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    /// Mean validation loss (`None` without a validation set).
    pub val_loss: Option<f64>,
    /// Validation accuracy in `[0, 1]`.
    pub val_accuracy: Option<f64>,
    /// Training images per second over the epoch.
    pub images_per_sec: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Training images whose frozen layers' output came from the feature cache this epoch.
    #[serde(default)]
    pub cached_images: usize,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's folder.
    #[serde(with = "crate::platform::paths::as_path")]
    pub run_dir: PathBuf,
    /// Epochs completed.
    pub epochs: usize,
    /// The epoch of the saved checkpoint.
    pub best_epoch: Option<usize>,
    /// Its validation loss.
    pub best_val_loss: Option<f64>,
    /// Its validation accuracy.
    pub best_val_accuracy: Option<f64>,
    /// The best checkpoint's score on the test set, computed once after training.
    #[serde(default)]
    pub test: Option<TestScore>,
    /// Stopped by the user.
    pub cancelled: bool,
    /// Stopped because validation loss stopped improving.
    pub early_stopped: bool,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// The test set's verdict on a run's best checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestScore {
    /// Test images classified right.
    pub correct: usize,
    /// Test images in all.
    pub images: usize,
    /// Mean cross-entropy on them.
    pub loss: f64,
}

impl TestScore {
    /// The share right, in `[0, 1]`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.images.max(1) as f64
    }

    /// "87.5 % (95 % CI 80.1–92.4 %, 120 images)".
    pub fn describe(&self) -> String {
        crate::platform::interval::describe(self.correct, self.images)
    }
}

/// `run.json`: what a run was trained on and how it ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    /// Graft's version.
    pub graft_version: String,
    /// The device, for people.
    pub device: String,
    /// Input side.
    pub input_size: u32,
    /// The data as trained on.
    pub data: Option<DataSummary>,
    /// The outcome (absent while running).
    pub summary: Option<RunSummary>,
}
