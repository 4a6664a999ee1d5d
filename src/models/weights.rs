//! Loading PyTorch weight files into our modules, with a report a person can read.

use std::path::{Path, PathBuf};

use burn::store::{ApplyError, ModuleSnapshot, PytorchStore};
use serde::Serialize;

use super::Network;
use super::efficientnet_lite::KEY_REMAP;

/// Where the file's ImageNet classifier goes when it is not wanted: nowhere in our module, so it
/// shows up as "unused" and is expected there.
const DROPPED_CLASSIFIER: &str = "dropped_imagenet_classifier.";

/// What a weight load did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Tensors loaded.
    pub applied: usize,
    /// Module tensors the file did not provide (expected: the new head's).
    pub missing: Vec<String>,
    /// File tensors with no place in the module (expected: BatchNorm batch counters, the
    /// dropped ImageNet classifier).
    pub unused: Vec<String>,
}

/// A weight file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file is not there.
    #[error("weight file {path} does not exist")]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read as a PyTorch checkpoint.
    #[error("cannot read {path} as a PyTorch weight file: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        reason: String,
    },
    /// The file does not fit the architecture.
    #[error("{path} does not fit this architecture:\n{}", problems.join("\n"))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// One line per key: missing, unexpected, or of the wrong shape.
        problems: Vec<String>,
    },
}

fn is_expected_unused(key: &str) -> bool {
    key.ends_with("num_batches_tracked") || key.starts_with(DROPPED_CLASSIFIER)
}

fn is_expected_missing(key: &str, keep_classifier: bool) -> bool {
    // Module-owned training flags are not tensors in any PyTorch file.
    key.ends_with(".training") || (!keep_classifier && key.starts_with("head."))
}

/// Loads lukemelas-named EfficientNet-Lite weights into `network`.
pub(super) fn load_lite(
    network: &mut Network,
    path: &Path,
    keep_classifier: bool,
) -> Result<LoadReport, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let mut store = PytorchStore::from_file(path)
        .allow_partial(true)
        .validate(false);
    for (from, to) in KEY_REMAP {
        let to = if !keep_classifier && to.starts_with("head.fc.") {
            DROPPED_CLASSIFIER
        } else {
            to
        };
        store = store.with_key_remapping(from, to);
    }
    let result = network
        .load_from(&mut store)
        .map_err(|e| WeightsError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;

    let mut problems: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "  {path}: shape {:?} in the file, the model needs {:?}",
                found.as_slice(),
                expected.as_slice()
            ),
            other => format!("  {other}"),
        })
        .collect();
    let missing: Vec<String> = result.missing.iter().map(|(k, _)| k.clone()).collect();
    problems.extend(
        missing
            .iter()
            .filter(|k| !is_expected_missing(k, keep_classifier))
            .map(|k| format!("  {k}: missing from the file")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .filter(|k| !is_expected_unused(k))
            .map(|k| format!("  {k}: in the file but not in the model")),
    );
    if !problems.is_empty() {
        problems.sort();
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(LoadReport {
        applied: result.applied.len(),
        missing,
        unused: result.unused.clone(),
    })
}
