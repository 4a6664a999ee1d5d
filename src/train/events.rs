//! What the training engine tells its caller, in order: every message of a run in one place.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::lr_find::{LrPoint, LrSweep};
use crate::models::LayerGroup;
use crate::platform::device::Backend;
use crate::run::{DataSummary, EpochMetrics, RunSummary, TestScore};

/// The model as the run trains it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's folder.
    pub run_dir: PathBuf,
    /// The model's name.
    pub model: String,
    /// Input side in pixels.
    pub input_size: u32,
    /// The layer groups, input to head.
    pub groups: Vec<LayerGroup>,
    /// Whether each group is frozen in stage 1.
    pub frozen: Vec<bool>,
    /// All parameters.
    pub total_params: usize,
    /// Parameters trained in stage 1.
    pub trainable_params: usize,
    /// Where the pre-trained weights came from (`None`: from scratch).
    pub weights: Option<PathBuf>,
}

/// One training step's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// 1 (head) or 2 (fine-tune).
    pub stage: u8,
    /// Epoch, counted from 1 across both stages.
    pub epoch: usize,
    /// Batch within the epoch, from 1.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// Training loss of this batch.
    pub loss: f64,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Throughput of this step (images per second, including waiting for data).
    pub images_per_sec: f64,
    /// Wall time of this step, including waiting for data.
    pub seconds: f64,
    /// Estimated seconds left in this stage (its steps and validation passes), each epoch
    /// priced by whether it runs on images or on cached features; `None` before any step was
    /// timed.
    #[serde(default)]
    pub seconds_left: Option<f64>,
    /// Epochs of later stages, not in `seconds_left` (their steps are not timed yet).
    #[serde(default)]
    pub later_epochs: usize,
}

impl BatchProgress {
    /// The time left, for people: "about 1 min 05 s left", naming the later stage's epochs
    /// that the estimate leaves out.
    pub fn time_left(&self) -> Option<String> {
        let text = format!("about {} left", human_seconds(self.seconds_left?));
        Some(match self.later_epochs {
            0 => text,
            1 => format!("{text} in this stage, then 1 fine-tuning epoch"),
            n => format!("{text} in this stage, then {n} fine-tuning epochs"),
        })
    }
}

/// `seconds` as "42 s", "3 min 07 s" or "1 h 05 min".
fn human_seconds(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s / 60 % 60),
    }
}

/// A message from the training thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TrainEvent {
    /// The device the run uses.
    Device {
        /// Which backend.
        backend: Backend,
        /// For people.
        description: String,
    },
    /// The folder is being listed: image files found so far.
    Scanning {
        /// Files found.
        found: usize,
    },
    /// Decoding progress.
    Preparing {
        /// Files decoded.
        done: usize,
        /// Files in all.
        total: usize,
    },
    /// Pre-trained weights are being downloaded.
    Downloading {
        /// The file.
        file: String,
        /// Bytes so far.
        done: u64,
        /// Bytes in all, when the server says.
        total: Option<u64>,
    },
    /// The data set is decoded and split.
    DataReady(DataSummary),
    /// Something the user should know that does not stop the run.
    Warning(String),
    /// The model is built and the run folder exists; training starts.
    Started(RunInfo),
    /// A stage begins.
    StageStarted {
        /// 1 or 2.
        stage: u8,
        /// Its epochs.
        epochs: usize,
        /// Its base learning rate (the head's).
        lr: f64,
        /// Each layer group's rate before the schedule (0: frozen), in [`RunInfo::groups`] order.
        rates: Vec<f64>,
        /// Parameters it trains.
        trainable_params: usize,
    },
    /// A stage's first step is about to run on a GPU, which first compiles (and tunes) its
    /// kernels: that step can take minutes, the ones after it do not.
    CompilingKernels,
    /// A step finished.
    Batch(BatchProgress),
    /// After the first pass, the head was fitted once more over the cached centre-crop
    /// features of every training image (up to `passes` times, until its loss stops falling).
    FittingHead {
        /// The epoch it belongs to.
        epoch: usize,
        /// This pass, from 1.
        pass: usize,
        /// The most passes it may take.
        passes: usize,
        /// Its mean training loss.
        loss: f64,
    },
    /// An epoch finished.
    Epoch(EpochMetrics),
    /// The best model so far was saved.
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Its epoch.
        epoch: usize,
    },
    /// The best checkpoint was scored on the test set (once, after training).
    Tested(TestScore),
    /// Paused at a batch boundary.
    Paused,
    /// Running again.
    Resumed,
    /// The run ended normally, early, or by the user's cancel.
    Finished(RunSummary),
    /// The run failed; the message says why.
    Failed(String),
    /// A step of a learning-rate sweep.
    LrPoint(LrPoint),
    /// A learning-rate sweep ended.
    LrSwept(LrSweep),
}

impl TrainEvent {
    /// Whether no event follows this one.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Finished(_) | Self::Failed(_) | Self::LrSwept(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(seconds_left: Option<f64>, later_epochs: usize) -> BatchProgress {
        BatchProgress {
            stage: 1,
            epoch: 1,
            batch: 1,
            batches: 2,
            loss: 1.0,
            lr: 1e-3,
            images_per_sec: 1.0,
            seconds: 1.0,
            seconds_left,
            later_epochs,
        }
    }

    #[test]
    fn time_left_reads_as_words_and_names_what_it_leaves_out() {
        assert_eq!(progress(None, 0).time_left(), None);
        assert_eq!(
            progress(Some(41.6), 0).time_left().unwrap(),
            "about 42 s left"
        );
        assert_eq!(
            progress(Some(187.0), 3).time_left().unwrap(),
            "about 3 min 07 s left in this stage, then 3 fine-tuning epochs"
        );
        assert_eq!(
            progress(Some(3900.0), 1).time_left().unwrap(),
            "about 1 h 05 min left in this stage, then 1 fine-tuning epoch"
        );
    }
}
