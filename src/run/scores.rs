//! `validation.json`: the checkpoint's logits for every validation image, written by the run
//! when it saves the checkpoint, so that the Results page and `graft eval` on the run's own
//! split need not run the network over those images a second time.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::folder::{RunError, files};
use crate::platform::fsutil::write_json_atomic;
use crate::platform::paths::as_path;

/// One validation image's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredScore {
    /// Relative to the data set root.
    #[serde(with = "as_path")]
    pub file: PathBuf,
    /// Its class index.
    pub label: usize,
    /// The checkpoint's raw logits for it.
    pub logits: Vec<f32>,
}

/// The checkpoint's scores on the validation split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredScores {
    /// The checkpoint's epoch.
    pub epoch: usize,
    /// Every validation image, in the run's order.
    pub images: Vec<StoredScore>,
}

/// Where a run folder keeps its stored scores.
pub fn scores_path(run_dir: &Path) -> PathBuf {
    run_dir.join(files::VALIDATION)
}

/// Writes `scores` (atomically).
pub fn write_scores(run_dir: &Path, scores: &StoredScores) -> std::io::Result<()> {
    write_json_atomic(&scores_path(run_dir), scores)
}

/// Removes the stored scores, before the checkpoint they describe is replaced: a run that dies
/// between the two writes leaves none rather than another epoch's.
pub fn forget_scores(run_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(scores_path(run_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads a run's stored scores; `None` when it has none (an older run, or one without a
/// validation split).
pub fn read_scores(run_dir: &Path) -> Result<Option<StoredScores>, RunError> {
    let path = scores_path(run_dir);
    if !path.is_file() {
        return Ok(None);
    }
    super::folder::read_json(path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_read_back_as_written_and_can_be_forgotten() {
        let dir = std::env::temp_dir().join(format!("graft-scores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_scores(&dir).unwrap(), None);
        let scores = StoredScores {
            epoch: 3,
            images: vec![StoredScore {
                file: Path::new("cat").join("a.jpg"),
                label: 1,
                logits: vec![-0.5, 2.25],
            }],
        };
        write_scores(&dir, &scores).unwrap();
        assert_eq!(read_scores(&dir).unwrap(), Some(scores));
        forget_scores(&dir).unwrap();
        forget_scores(&dir).unwrap();
        assert_eq!(read_scores(&dir).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
