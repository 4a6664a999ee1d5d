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
    /// What each layer group did this epoch, in layer-list order.
    #[serde(default, skip_serializing_if = "GroupTelemetry::is_empty")]
    pub groups: GroupTelemetry,
}

/// What one layer group's weights did in an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// ‖W − W₀‖ / ‖W₀‖ over the group's parameters, W₀ as the run started (exactly 0 for a
    /// group that never trained).
    pub weight_change: f64,
    /// Mean over the epoch's steps of the gradient's norm over the group's parameters (0 when
    /// frozen).
    pub grad_norm: f64,
}

/// Each layer group's [`GroupStats`], in layer-list order; a JSON object keyed by group name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupTelemetry(pub Vec<(String, GroupStats)>);

impl GroupTelemetry {
    /// Whether no group was measured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stats of the group called `name`.
    pub fn get(&self, name: &str) -> Option<&GroupStats> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

impl Serialize for GroupTelemetry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, stats) in &self.0 {
            map.serialize_entry(name, stats)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for GroupTelemetry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = GroupTelemetry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of layer groups")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut groups = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    groups.push(entry);
                }
                Ok(GroupTelemetry(groups))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
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
    /// What the decoded-image store held and decoded over the run.
    #[serde(default)]
    pub decoded_images: Option<crate::data::store::StoreStats>,
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
