//! Why a training run stops with an error.

use std::path::{Path, PathBuf};

use super::feature_cache::CacheError;
use crate::config::ConfigError;
use crate::data::{DataError, SkippedFile};
use crate::models::WeightsError;
use crate::models::download::DownloadError;

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data set cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The weights cannot be loaded.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// No pre-trained weights were found.
    #[error(
        "no pre-trained weights for {model}: looked for {file} in {searched}; pass a weight file or train from scratch"
    )]
    NoWeights {
        /// The model.
        model: &'static str,
        /// The file name looked for.
        file: String,
        /// The folders searched.
        searched: String,
    },
    /// Every group is frozen.
    #[error(
        "every layer group is frozen, so there is nothing to train: unfreeze at least the head"
    )]
    NothingToTrain,
    /// No training image.
    #[error("no training images left after the split")]
    NoTrainingImages,
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, batch {batch}: the learning rate ({lr:e}) is probably too high"
    )]
    NonFiniteLoss {
        /// The value.
        value: f64,
        /// Epoch.
        epoch: usize,
        /// Batch.
        batch: usize,
        /// Learning rate of that step.
        lr: f64,
    },
    /// The run folder could not be made.
    #[error(transparent)]
    CreateRun(#[from] crate::run::folder::CreateError),
    /// The run folder could not be written.
    #[error("cannot write the run folder {path}: {reason}")]
    RunFolder {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The pre-trained weights could not be downloaded.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The feature cache could not keep or give back the frozen layers' output.
    #[error(transparent)]
    FeatureCache(#[from] CacheError),
    /// An image that was read when the run started could not be read again.
    #[error(
        "cannot read {} again: {} (it could be read when the run started: was it changed, moved or deleted?)",
        .0.path.display(), .0.reason
    )]
    ImageUnreadable(SkippedFile),
    /// The device failed to compute or read back a value.
    #[error("the compute device failed: {0}")]
    Device(String),
}

pub(super) fn folder_error(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::RunFolder {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
