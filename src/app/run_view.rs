//! One training run as the window shows it: curves, progress and status, folded from the
//! engine's events.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::run::{DataSummary, EpochMetrics, RunSummary};
use crate::train::TrainEvent;

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RunStatus {
    /// Finding images (`total` 0: `done` counts the files found so far), then decoding them.
    Preparing {
        /// Files decoded (or found).
        done: usize,
        /// Files in all (0 while the folder is being listed).
        total: usize,
    },
    /// Downloading pre-trained weights.
    Downloading {
        /// The file.
        file: String,
        /// Bytes so far.
        done: u64,
        /// Bytes in all, when known.
        total: Option<u64>,
    },
    /// Compiling GPU kernels before the first step.
    CompilingKernels,
    /// Training.
    Training,
    /// Paused by the user.
    Paused,
    /// Ended normally, early or by Stop.
    Finished(RunSummary),
    /// Failed with this message.
    Failed(String),
}

/// A run's curves and progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunView {
    /// Legend text: model and freeze plan.
    pub label: String,
    /// Shown on the plots.
    pub visible: bool,
    /// Training loss per batch: x = epochs done (fractional), y = loss.
    pub batch_loss: Vec<[f64; 2]>,
    /// Exponential moving average of `batch_loss`.
    pub smoothed_loss: Vec<[f64; 2]>,
    /// Validation loss per epoch.
    pub val_loss: Vec<[f64; 2]>,
    /// Validation accuracy per epoch, in percent.
    pub val_accuracy: Vec<[f64; 2]>,
    /// Training accuracy per epoch, in percent.
    pub train_accuracy: Vec<[f64; 2]>,
    /// Every epoch's metrics, for the advice when the run ends.
    pub epochs: Vec<EpochMetrics>,
    /// Current status.
    pub status: RunStatus,
    /// Epochs planned (both stages).
    pub total_epochs: usize,
    /// Latest epoch and batch seen.
    pub epoch: usize,
    /// Latest batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Recent throughput.
    pub images_per_sec: f64,
    /// What the progress bar adds, in words: the engine's estimate of the time left, or what
    /// it is doing between steps.
    pub progress_note: Option<String>,
    /// Batches seen so far.
    pub batches_seen: usize,
    /// The device, for people.
    pub device: String,
    /// The run's folder, once it exists.
    pub run_dir: Option<PathBuf>,
    /// Trainable parameters in the current stage.
    pub trainable_params: usize,
    /// Each layer group's rate in the current stage (0: frozen).
    pub rates: Vec<f64>,
    /// Warnings, in order.
    pub warnings: Vec<String>,
    /// The data as the run read it (its files left out among them).
    pub data: Option<DataSummary>,
    /// The settings it ran with (for Re-run).
    pub config: Option<TrainConfig>,
}

impl Default for RunView {
    fn default() -> Self {
        Self {
            label: String::new(),
            visible: true,
            batch_loss: Vec::new(),
            smoothed_loss: Vec::new(),
            val_loss: Vec::new(),
            val_accuracy: Vec::new(),
            train_accuracy: Vec::new(),
            epochs: Vec::new(),
            status: RunStatus::Preparing { done: 0, total: 0 },
            total_epochs: 0,
            epoch: 0,
            batch: 0,
            batches: 0,
            images_per_sec: 0.0,
            progress_note: None,
            batches_seen: 0,
            device: String::new(),
            run_dir: None,
            trainable_params: 0,
            rates: Vec::new(),
            warnings: Vec::new(),
            data: None,
            config: None,
        }
    }
}

/// Weight of the newest batch in the smoothed curve.
const SMOOTHING: f64 = 0.1;

impl RunView {
    /// A run about to start with `config`.
    pub fn new(label: String, config: TrainConfig) -> Self {
        Self {
            label,
            total_epochs: config.total_epochs(),
            config: Some(config),
            ..Self::default()
        }
    }

    /// The run's folder, once it finished with a best checkpoint in it.
    pub fn checkpoint_dir(&self) -> Option<&PathBuf> {
        match &self.status {
            RunStatus::Finished(s) if s.best_epoch.is_some() => Some(&s.run_dir),
            _ => None,
        }
    }

    /// The run's summary, once it finished.
    pub fn summary(&self) -> Option<&RunSummary> {
        match &self.status {
            RunStatus::Finished(s) => Some(s),
            _ => None,
        }
    }

    /// The last epoch on the x axis: planned or reached, at least 1.
    pub fn x_extent(&self) -> f64 {
        self.total_epochs.max(self.epoch).max(1) as f64
    }

    /// Whether the run is still going.
    pub fn is_active(&self) -> bool {
        matches!(
            self.status,
            RunStatus::Preparing { .. }
                | RunStatus::Downloading { .. }
                | RunStatus::CompilingKernels
                | RunStatus::Training
                | RunStatus::Paused
        )
    }

    /// Fraction of all planned batches done.
    pub fn fraction_done(&self) -> f32 {
        if self.batches == 0 || self.total_epochs == 0 {
            return 0.0;
        }
        let done = (self.epoch.saturating_sub(1) * self.batches + self.batch) as f32;
        (done / (self.total_epochs * self.batches) as f32).min(1.0)
    }

    /// Folds one engine event into the view.
    pub fn apply(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Device { description, .. } => self.device = description.clone(),
            TrainEvent::Scanning { found } => {
                self.status = RunStatus::Preparing {
                    done: *found,
                    total: 0,
                }
            }
            TrainEvent::Preparing { done, total } => {
                self.status = RunStatus::Preparing {
                    done: *done,
                    total: *total,
                }
            }
            TrainEvent::Downloading { file, done, total } => {
                self.status = RunStatus::Downloading {
                    file: file.clone(),
                    done: *done,
                    total: *total,
                }
            }
            TrainEvent::DataReady(summary) => self.data = Some(summary.clone()),
            TrainEvent::Warning(w) => self.warnings.push(w.clone()),
            TrainEvent::Started(info) => {
                self.run_dir = Some(info.run_dir.clone());
                self.trainable_params = info.trainable_params;
                self.status = RunStatus::Training;
            }
            TrainEvent::StageStarted {
                trainable_params,
                rates,
                ..
            } => {
                self.trainable_params = *trainable_params;
                self.rates = rates.clone();
            }
            TrainEvent::CompilingKernels => self.status = RunStatus::CompilingKernels,
            TrainEvent::FittingHead { pass, passes, .. } => {
                self.progress_note = Some(format!(
                    "fitting the head on the cached features (pass {pass}, at most {passes})"
                ));
            }
            TrainEvent::Batch(b) => {
                if self.status == RunStatus::CompilingKernels {
                    self.status = RunStatus::Training;
                }
                self.epoch = b.epoch;
                self.batch = b.batch;
                self.batches = b.batches;
                self.images_per_sec = b.images_per_sec;
                let x = (b.epoch - 1) as f64 + b.batch as f64 / b.batches.max(1) as f64;
                self.batch_loss.push([x, b.loss]);
                let smooth = match self.smoothed_loss.last() {
                    Some([_, prev]) => prev + SMOOTHING * (b.loss - prev),
                    None => b.loss,
                };
                self.smoothed_loss.push([x, smooth]);
                self.batches_seen += 1;
                self.progress_note = b.time_left();
            }
            TrainEvent::Epoch(m) => {
                let x = m.epoch as f64;
                if let Some(l) = m.val_loss {
                    self.val_loss.push([x, l]);
                }
                if let Some(a) = m.val_accuracy {
                    self.val_accuracy.push([x, a * 100.0]);
                }
                if let Some(a) = m.train_accuracy {
                    self.train_accuracy.push([x, a * 100.0]);
                }
                self.epochs.push(m.clone());
            }
            // The finished summary carries the test score.
            TrainEvent::Checkpoint { .. } | TrainEvent::Tested(_) => {}
            TrainEvent::Paused => self.status = RunStatus::Paused,
            TrainEvent::Resumed => self.status = RunStatus::Training,
            TrainEvent::Finished(s) => self.status = RunStatus::Finished(s.clone()),
            TrainEvent::Failed(m) => self.status = RunStatus::Failed(m.clone()),
            // A rate sweep is not a run.
            TrainEvent::LrPoint(_) | TrainEvent::LrSwept(_) => {}
        }
    }
}
