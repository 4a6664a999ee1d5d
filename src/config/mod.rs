//! The one training configuration: the GUI edits it, the CLI builds it from flags, a run folder
//! and a saved project store it. Every field has a default, so old files keep loading.

pub mod curation;
pub mod rates;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::models::HeadConfig;
use crate::models::{ModelKind, NetworkSpec};
pub use crate::platform::device::DevicePreference;
pub use curation::{Curation, Decision, Relabel};
pub use rates::LayerRates;

/// How many MiB of decoded images a data set keeps in memory unless told otherwise: the demo set
/// fits several times over; 10 000 photos at Lite0's size (about 200 KB each) would not.
pub const DEFAULT_IMAGE_MEMORY_MIB: usize = 512;

/// Everything that decides what a training run does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The image folder: `root/<class>/**/*.png`, or `root/train/<class>` + `root/val/<class>`.
    #[serde(with = "crate::platform::paths::as_path")]
    pub data: PathBuf,
    /// How the folder is split and decoded.
    pub split: SplitConfig,
    /// Which network to start from.
    pub model: ModelKind,
    /// A weight file to load instead of the bundled or cached one.
    #[serde(with = "crate::platform::paths::as_opt_path")]
    pub weights: Option<PathBuf>,
    /// Start from random weights instead of the pre-trained ones.
    pub from_scratch: bool,
    /// Input side in pixels; `None` uses the size the model was trained on.
    pub input_size: Option<u32>,
    /// The new classifier head.
    pub head: HeadConfig,
    /// Which layer groups stay frozen in stage 1.
    pub freeze: FreezePlan,
    /// Optional stage 2: unfreeze more groups and fine-tune at a lower learning rate.
    pub fine_tune: Option<FineTuneConfig>,
    /// Optimiser and learning rate.
    pub optimizer: OptimizerConfig,
    /// Stage-1 epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed for the split, the shuffling, augmentation and the new head's initial weights.
    pub seed: u64,
    /// Stop when validation loss has not improved for this many epochs.
    pub early_stopping_patience: Option<usize>,
    /// Training-time augmentation.
    pub augment: AugmentConfig,
    /// Where the run trains.
    pub device: DevicePreference,
    /// Folder that receives one sub-folder per run; `None` uses the user's data folder.
    #[serde(with = "crate::platform::paths::as_opt_path")]
    pub runs_dir: Option<PathBuf>,
    /// Use at most this many images per class (a quick look at a big folder); `None` uses all.
    pub max_images_per_class: Option<usize>,
    /// Keeping the frozen layers' output instead of recomputing it every epoch.
    pub feature_cache: FeatureCacheConfig,
    /// Decoded images are kept in memory up to this many MiB; the others are decoded again
    /// each time a batch needs them (0: always decode).
    pub image_memory_mib: usize,
    /// How lopsided classes are evened out in the loss.
    pub balance: ClassBalance,
    /// Files left out or relabelled by the user, without touching the data folder.
    pub curation: Curation,
}

/// How training treats classes of different sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassBalance {
    /// The weighted loss when the largest class has at least [`ClassBalance::AUTO_RATIO`]
    /// times the training images of the smallest, every image the same otherwise. (On the demo
    /// set cut to 10:1, the weighted loss raised the mean per-class recall from 60 % to 67 %
    /// over three seeds, with the same accuracy.)
    #[default]
    Auto,
    /// Every image counts the same: large classes weigh more.
    Off,
    /// Each image's loss is weighted by `images / (classes × images of its class)`, so every
    /// class weighs the same in the loss.
    WeightedLoss,
}

impl ClassBalance {
    /// Each mode with its name in flags, advice and config files.
    pub const NAMES: [(&'static str, ClassBalance); 3] = [
        ("auto", ClassBalance::Auto),
        ("off", ClassBalance::Off),
        ("weighted-loss", ClassBalance::WeightedLoss),
    ];

    /// The mode's name, as `--balance` takes it.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, mode)| *mode == self)
            .map_or("auto", |(name, _)| name)
    }

    /// The class ratio from which [`ClassBalance::Auto`] weights the loss (and the data doctor
    /// warns).
    pub const AUTO_RATIO: f64 = 3.0;
}

/// Default [`FeatureCacheConfig::fit_passes`].
pub const DEFAULT_FIT_PASSES: usize = 30;

/// The frozen-prefix feature cache: when the first layer groups are frozen, their output for
/// each image is computed once and kept, and later epochs train only the layers after them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeatureCacheConfig {
    /// Use the cache whenever a stage starts with frozen groups.
    pub enabled: bool,
    /// With augmentation on: fixed views kept per image (the first is the plain centre crop,
    /// the others random crops and flips); epoch `e` trains on view `e mod views`.
    pub augmented_views: usize,
    /// Kept in memory up to this many MiB; beyond it the cache goes to a file in the run folder.
    pub memory_mib: usize,
    /// Right after the first pass (which caches every training image's centre crop), the head
    /// is fitted on those features for up to this many more passes, until its training loss
    /// falls by less than 1 % a pass: a useful model after one pass over the images (0: off).
    /// Not when a fine-tuning stage follows.
    pub fit_passes: usize,
}

impl Default for FeatureCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            augmented_views: 2,
            memory_mib: 2048,
            fit_passes: DEFAULT_FIT_PASSES,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            split: SplitConfig::default(),
            model: ModelKind::EfficientNetLite0,
            weights: None,
            from_scratch: false,
            feature_cache: FeatureCacheConfig::default(),
            image_memory_mib: DEFAULT_IMAGE_MEMORY_MIB,
            input_size: None,
            head: HeadConfig::default(),
            freeze: FreezePlan::AllButHead,
            fine_tune: None,
            optimizer: OptimizerConfig::default(),
            epochs: 5,
            batch_size: 16,
            seed: 42,
            early_stopping_patience: None,
            augment: AugmentConfig::default(),
            device: DevicePreference::Auto,
            runs_dir: None,
            max_images_per_class: None,
            balance: ClassBalance::Auto,
            curation: Curation::default(),
        }
    }
}

/// How a folder without `train/` and `val/` is split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SplitConfig {
    /// Fraction of each class held out for validation.
    pub val_fraction: f64,
    /// Fraction of each class held out as a test set: never used to pick the best epoch or to
    /// stop early, and scored once, at the end. A folder with a `test/` folder uses that.
    pub test_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            val_fraction: 0.2,
            test_fraction: 0.0,
        }
    }
}

/// Which layer groups are frozen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezePlan {
    /// Everything but the new head is frozen: the classic feature-extraction recipe.
    #[default]
    AllButHead,
    /// Nothing is frozen: fine-tune the whole network.
    Nothing,
    /// Exactly these groups (by name, as [`crate::models::LayerGroup::name`]) are frozen.
    Groups(BTreeSet<String>),
}

impl FreezePlan {
    /// For each group name, whether this plan freezes it.
    pub fn resolve(&self, group_names: &[String]) -> Vec<bool> {
        let last = group_names.len().saturating_sub(1);
        group_names
            .iter()
            .enumerate()
            .map(|(i, name)| match self {
                Self::AllButHead => i != last,
                Self::Nothing => false,
                Self::Groups(set) => set.contains(name),
            })
            .collect()
    }

    /// A short description for legends and tables. With the model's `group_names` it counts
    /// the frozen groups; without, it says only whether some are.
    pub fn describe(&self, group_names: Option<&[String]>) -> String {
        match (self, group_names) {
            (Self::AllButHead, _) => "all but head frozen".into(),
            (Self::Nothing, _) => "nothing frozen".into(),
            (Self::Groups(set), _) if set.is_empty() => "nothing frozen".into(),
            (Self::Groups(_), None) => "some groups frozen".into(),
            (Self::Groups(_), Some(names)) => {
                let frozen = self.resolve(names).into_iter().filter(|f| *f).count();
                if frozen == 0 {
                    "nothing frozen".into()
                } else {
                    format!("{frozen}/{} groups frozen", names.len())
                }
            }
        }
    }

    /// Parses the CLI form: `all-but-head`, `none`, or a comma-separated list of group names.
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "all-but-head" | "default" => Self::AllButHead,
            "none" | "nothing" => Self::Nothing,
            list => Self::Groups(
                list.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }
}

/// Stage 2 of the recipe: unfreeze and fine-tune at a lower learning rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FineTuneConfig {
    /// Epochs of stage 2.
    pub epochs: usize,
    /// Groups to unfreeze for stage 2 (by name); empty unfreezes everything.
    pub unfreeze: BTreeSet<String>,
    /// Stage-2 learning rate as a fraction of stage 1's (default: 10× lower).
    pub lr_factor: f64,
    /// Keep every BatchNorm layer on its pre-trained statistics while fine-tuning (Keras' advice
    /// for small data sets: batch statistics of a few images shift what the pre-trained layers
    /// see). Ignored from random weights.
    pub freeze_batch_norm: bool,
    /// How stage 2's rate is shared out among its thawed groups.
    pub layer_rates: LayerRates,
}

impl FineTuneConfig {
    /// Which groups stay frozen in stage 2, given stage 1's plan: those frozen in stage 1 that
    /// `unfreeze` does not name (with `unfreeze` empty, none).
    pub fn frozen(&self, names: &[String], stage1_frozen: &[bool]) -> Vec<bool> {
        names
            .iter()
            .zip(stage1_frozen)
            .map(|(name, was_frozen)| {
                *was_frozen && !(self.unfreeze.is_empty() || self.unfreeze.contains(name))
            })
            .collect()
    }
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            unfreeze: BTreeSet::new(),
            lr_factor: 0.1,
            freeze_batch_norm: true,
            layer_rates: LayerRates::Same,
        }
    }
}

/// The optimiser family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam.
    Adam,
    /// Adam with decoupled weight decay.
    AdamW,
    /// SGD with momentum.
    Sgd,
}

/// The learning-rate schedule over a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate every step.
    Constant,
    /// Cosine decay from the rate to zero over the stage.
    Cosine,
}

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimizerConfig {
    /// Which optimiser.
    pub kind: OptimizerKind,
    /// Stage-1 learning rate.
    pub lr: f64,
    /// Weight decay (AdamW: decoupled; SGD and Adam: L2 penalty).
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// How the rate changes over a stage.
    pub schedule: LrSchedule,
    /// How stage 1's rate is shared out among its thawed groups.
    pub layer_rates: LayerRates,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::AdamW,
            lr: 3e-3,
            weight_decay: 1e-4,
            momentum: 0.9,
            schedule: LrSchedule::Cosine,
            layer_rates: LayerRates::Same,
        }
    }
}

/// Training-time augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Master switch: off trains on the same centre crop used for validation.
    pub enabled: bool,
    /// Random resized crop: the smallest fraction of the image area a crop may keep.
    pub min_crop_area: f64,
    /// Random horizontal flip.
    pub horizontal_flip: bool,
    /// Brightness jitter: each view's pixels times a factor in `[1 − b, 1 + b]` (0: off).
    pub brightness: f64,
    /// Contrast jitter: the distance from the mean grey times a factor in `[1 − c, 1 + c]`.
    pub contrast: f64,
    /// Saturation jitter: the distance from each pixel's grey times a factor in `[1 − s, 1 + s]`.
    pub saturation: f64,
    /// Rotation by an angle in `[−r, r]` degrees (0: off).
    pub rotation_degrees: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_crop_area: 0.35,
            horizontal_flip: true,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            rotation_degrees: 0.0,
        }
    }
}

impl AugmentConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.min_crop_area > 0.0 && self.min_crop_area <= 1.0,
            "augment.min_crop_area",
            "must be in (0, 1]",
        )?;
        for (field, value) in [
            ("augment.brightness", self.brightness),
            ("augment.contrast", self.contrast),
            ("augment.saturation", self.saturation),
        ] {
            check(
                (0.0..=1.0).contains(&value),
                field,
                format!("must be in [0, 1], got {value}"),
            )?;
        }
        let r = self.rotation_degrees;
        check(
            (0.0..=45.0).contains(&r),
            "augment.rotation_degrees",
            format!("must be between 0 and 45 degrees, got {r}"),
        )
    }
}

/// A configuration value that cannot work, with the field it concerns.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The field, as it is named in the config file.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn check(ok: bool, field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            field,
            reason: reason.into(),
        })
    }
}

impl TrainConfig {
    /// The folder that receives this config's run folders: `runs_dir`, or the user's default.
    pub fn runs_root(&self) -> PathBuf {
        self.runs_dir
            .clone()
            .unwrap_or_else(crate::platform::assets::default_runs_dir)
    }

    /// The three runs of a baseline comparison on this data, seed and recipe: pre-trained with
    /// all but the head frozen, the same then fine-tuned with everything unfrozen, and the same
    /// network trained from random weights. Each comes with a short name for legends.
    pub fn baselines(&self) -> [(&'static str, TrainConfig); 3] {
        let frozen = TrainConfig {
            from_scratch: false,
            freeze: FreezePlan::AllButHead,
            fine_tune: None,
            ..self.clone()
        };
        let fine_tuned = TrainConfig {
            fine_tune: Some(self.fine_tune.clone().unwrap_or_default()),
            ..frozen.clone()
        };
        let scratch = TrainConfig {
            from_scratch: true,
            weights: None,
            freeze: FreezePlan::Nothing,
            ..frozen.clone()
        };
        [
            ("pre-trained, frozen", frozen),
            ("pre-trained, fine-tuned", fine_tuned),
            ("from scratch", scratch),
        ]
    }

    /// The input side in pixels: the one set, or the one the model was trained at.
    pub fn effective_input_size(&self) -> u32 {
        self.input_size.unwrap_or(self.model.input_size())
    }

    /// Epochs of both stages.
    pub fn total_epochs(&self) -> usize {
        self.epochs + self.fine_tune.as_ref().map_or(0, |f| f.epochs)
    }

    /// The network these settings train, with a head of `classes` outputs.
    pub fn network_spec(&self, classes: usize) -> NetworkSpec {
        NetworkSpec {
            kind: self.model,
            classes,
            head: self.head.clone(),
            input_size: self.effective_input_size(),
        }
    }

    /// Checks every value a run depends on; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let lr = self.optimizer.lr;
        check(
            lr.is_finite() && lr > 0.0,
            "optimizer.lr",
            format!("must be a positive number, got {lr}"),
        )?;
        check(
            self.optimizer.weight_decay.is_finite() && self.optimizer.weight_decay >= 0.0,
            "optimizer.weight_decay",
            "must be zero or positive",
        )?;
        check(
            (0.0..1.0).contains(&self.optimizer.momentum),
            "optimizer.momentum",
            "must be in [0, 1)",
        )?;
        self.optimizer.layer_rates.check("optimizer.layer_rates")?;
        check(self.epochs >= 1, "epochs", "must be at least 1")?;
        check(
            (1..=4096).contains(&self.batch_size),
            "batch_size",
            "must be between 1 and 4096",
        )?;
        check(
            (0.0..0.9).contains(&self.split.val_fraction),
            "split.val_fraction",
            format!("must be in [0, 0.9), got {}", self.split.val_fraction),
        )?;
        check(
            (0.0..0.5).contains(&self.split.test_fraction),
            "split.test_fraction",
            format!("must be in [0, 0.5), got {}", self.split.test_fraction),
        )?;
        check(
            self.split.val_fraction + self.split.test_fraction < 0.9,
            "split.test_fraction",
            "validation and test fractions together must leave at least 10 % to train on",
        )?;
        check(
            (0.0..1.0).contains(&self.head.dropout),
            "head.dropout",
            "must be in [0, 1)",
        )?;
        check(
            self.head.hidden != Some(0),
            "head.hidden",
            "must be at least 1 when set",
        )?;
        if let Some(size) = self.input_size {
            check(
                (16..=1024).contains(&size),
                "input_size",
                format!("must be between 16 and 1024 pixels, got {size}"),
            )?;
        }
        self.augment.validate()?;
        if let Some(ft) = &self.fine_tune {
            check(
                ft.lr_factor.is_finite() && ft.lr_factor > 0.0,
                "fine_tune.lr_factor",
                "must be a positive number",
            )?;
            ft.layer_rates.check("fine_tune.layer_rates")?;
        }
        check(
            self.max_images_per_class != Some(0),
            "max_images_per_class",
            "must be at least 1 when set",
        )?;
        check(
            (1..=64).contains(&self.feature_cache.augmented_views),
            "feature_cache.augmented_views",
            "must be between 1 and 64",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_differ_only_in_what_transfer_learning_changes() {
        let base = TrainConfig {
            seed: 7,
            epochs: 4,
            freeze: FreezePlan::Nothing,
            ..TrainConfig::default()
        };
        let [(_, frozen), (_, tuned), (_, scratch)] = base.baselines();
        assert_eq!(frozen.freeze, FreezePlan::AllButHead);
        assert!(frozen.fine_tune.is_none() && !frozen.from_scratch);
        assert!(tuned.fine_tune.is_some() && !tuned.from_scratch);
        assert!(scratch.from_scratch && scratch.freeze == FreezePlan::Nothing);
        for c in [&frozen, &tuned, &scratch] {
            assert_eq!((c.seed, c.epochs, &c.data), (7, 4, &base.data));
            assert!(c.validate().is_ok());
        }
    }

    #[test]
    fn default_is_valid_and_round_trips_through_json() {
        let config = TrainConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: TrainConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn missing_fields_take_defaults() {
        let config: TrainConfig = serde_json::from_str(r#"{"epochs": 9}"#).unwrap();
        assert_eq!(config.epochs, 9);
        assert_eq!(config.batch_size, TrainConfig::default().batch_size);
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut config = TrainConfig::default();
        config.optimizer.lr = -1.0;
        assert_eq!(config.validate().unwrap_err().field, "optimizer.lr");
        let mut config = TrainConfig::default();
        config.split.val_fraction = 0.95;
        assert_eq!(config.validate().unwrap_err().field, "split.val_fraction");
    }

    #[test]
    fn freeze_plans_resolve_by_name() {
        let names: Vec<String> = ["stem", "block0", "head"].map(String::from).to_vec();
        assert_eq!(FreezePlan::AllButHead.resolve(&names), [true, true, false]);
        assert_eq!(FreezePlan::Nothing.resolve(&names), [false, false, false]);
        assert_eq!(
            FreezePlan::parse("stem, head").resolve(&names),
            [true, false, true]
        );
    }
}
