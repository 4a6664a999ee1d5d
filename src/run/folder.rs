//! A run's folder: `config.json`, `labels.json`, `metrics.jsonl`, `model.safetensors` (the best
//! checkpoint), `validation.json` (its scores) and `run.json` (data summary and outcome). Every file is written atomically.

use std::path::{Path, PathBuf};

use super::records::{EpochMetrics, RunRecord};
use crate::config::TrainConfig;
use crate::data::manifest::Manifest;
use crate::platform::fsutil::{InsideDataSet, ensure_outside, write_atomic, write_json_atomic};

/// File names inside a run folder.
pub mod files {
    /// The resolved training config.
    pub const CONFIG: &str = "config.json";
    /// The class names, in output order.
    pub const LABELS: &str = "labels.json";
    /// One JSON object per epoch.
    pub const METRICS: &str = "metrics.jsonl";
    /// The best model's weights.
    pub const CHECKPOINT: &str = "model.safetensors";
    /// Data summary, device and outcome.
    pub const RUN: &str = "run.json";
    /// Every file of the data set as the run read it, with its split.
    pub const FILES: &str = "files.json";
    /// The checkpoint's logits for the validation images.
    pub const VALIDATION: &str = "validation.json";
}

/// Why a run folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// It would lie inside the data set.
    #[error(transparent)]
    InsideDataSet(#[from] InsideDataSet),
    /// The file system refused.
    #[error("cannot create a run folder under {}: {source}", parent.display())]
    Io {
        /// The folder it was to be made in.
        parent: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// An open run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
    metrics: Vec<EpochMetrics>,
}

/// `YYYYMMDD-HHMMSS` in UTC for a Unix time.
fn timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl RunDir {
    /// Creates a new, uniquely named run folder under `parent`, which must lie outside
    /// `data_root` (checked before anything is created).
    pub fn create(parent: &Path, model: &str, data_root: &Path) -> Result<Self, CreateError> {
        ensure_outside(parent, data_root)?;
        let io = |source| CreateError::Io {
            parent: parent.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(parent).map_err(io)?;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let stem = format!("{}-{model}", timestamp(unix));
        for n in 0..1000 {
            let name = if n == 0 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let path = parent.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(Self {
                        path,
                        metrics: Vec::new(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other("no free run folder name")))
    }

    /// Writes the config and the labels.
    pub fn write_start(&self, config: &TrainConfig, classes: &[String]) -> std::io::Result<()> {
        write_json_atomic(&self.path.join(files::CONFIG), config)?;
        write_json_atomic(&self.path.join(files::LABELS), &classes)
    }

    /// Appends an epoch to `metrics.jsonl` (rewritten whole, atomically).
    pub fn push_metrics(&mut self, metrics: &EpochMetrics) -> std::io::Result<()> {
        self.metrics.push(metrics.clone());
        let mut text = String::new();
        for m in &self.metrics {
            text.push_str(&serde_json::to_string(m).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        write_atomic(&self.path.join(files::METRICS), text.as_bytes())
    }

    /// Writes `files.json`.
    pub fn write_manifest(&self, manifest: &Manifest) -> std::io::Result<()> {
        write_json_atomic(&self.path.join(files::FILES), manifest)
    }

    /// Writes `run.json`.
    pub fn write_record(&self, record: &RunRecord) -> std::io::Result<()> {
        write_json_atomic(&self.path.join(files::RUN), record)
    }

    /// Where the checkpoint goes.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join(files::CHECKPOINT)
    }
}

/// A run folder that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file of the run could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        source: std::io::Error,
    },
    /// A file of the run is not what Graft wrote.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The run saved no checkpoint.
    #[error("{} is missing (the run saved no checkpoint)", path.display())]
    NoCheckpoint {
        /// Where the checkpoint should be.
        path: PathBuf,
    },
    /// The checkpoint does not load into the run's network.
    #[error("{}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: PathBuf) -> Result<T, RunError> {
    let bytes = std::fs::read(&path).map_err(|source| RunError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::Parse { path, source })
}

/// What a run folder says about its run: the settings it trained with and its classes.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The resolved training config.
    pub config: TrainConfig,
    /// The class names, in output order.
    pub classes: Vec<String>,
}

/// Reads a run folder's `files.json`; `None` for a run made before Graft wrote one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, RunError> {
    let path = dir.join(files::FILES);
    if !path.exists() {
        return Ok(None);
    }
    read_json(path).map(Some)
}

/// Reads a run folder's `run.json`; `None` when it has none.
pub fn read_record(dir: &Path) -> Result<Option<super::records::RunRecord>, RunError> {
    let path = dir.join(files::RUN);
    if !path.exists() {
        return Ok(None);
    }
    read_json(path).map(Some)
}

/// Reads a run folder's config and labels.
pub fn read_run(dir: &Path) -> Result<RunSettings, RunError> {
    Ok(RunSettings {
        config: read_json(dir.join(files::CONFIG))?,
        classes: read_json(dir.join(files::LABELS))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_795_833_045), "20261128-023045");
    }
}
