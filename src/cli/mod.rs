//! The command line: one file per command, each reading the engine's results and printing them.
//! Every command returns a [`CliError`] on failure, and [`run`] prints it once.

mod bench;
mod clean;
mod curve;
mod doctor;
mod eval;
mod explain;
mod export;
mod layers;
mod lr_find;
mod predict;
mod train;

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;
use crate::models::{ModelKind, WeightsError};
use crate::platform::device::DevicePreference;
use crate::run::eval::EvalError;
use crate::run::export::ExportError;
use crate::run::predict::PredictError;

pub use bench::BenchArgs;
pub use clean::CleanArgs;
pub use curve::CurveArgs;
pub use doctor::DoctorArgs;
pub use eval::EvalArgs;
pub use explain::ExplainArgs;
pub use export::ExportArgs;
pub use layers::LayersArgs;
pub use lr_find::LrFindArgs;
pub use predict::PredictArgs;
pub use train::TrainArgs;

/// Graft: fine-tune a pre-trained image network on your own labelled folders.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// What to do; without a command the app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The sub-commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a new head (and optionally fine-tune) on an image folder.
    Train(Box<TrainArgs>),
    /// Classify images with a trained run, or with a model's own ImageNet classifier.
    Predict(PredictArgs),
    /// List a model's layer groups (the units that can be frozen).
    Layers(LayersArgs),
    /// Score a trained run: accuracy, per-class precision/recall/F1, confusion matrix, mistakes.
    Eval(EvalArgs),
    /// Write a run's weights (PyTorch names), labels and preprocessing to a folder, then check them.
    Export(ExportArgs),
    /// Measure training-step speed, time to accuracy, decoding speed and peak memory.
    Bench(BenchArgs),
    /// Find label issues, near-duplicates, outliers and imbalance, with a cross-validated accuracy.
    Doctor(DoctorArgs),
    /// Write a cleaned copy of a data set: a decisions file's exclusions and relabels applied.
    Clean(CleanArgs),
    /// Show where a trained run looks in images: class activation maps as overlays (and JSON).
    Explain(ExplainArgs),
    /// Sweep the learning rate for a data set and model, and suggest one.
    LrFind(Box<LrFindArgs>),
    /// How accuracy grows with the images per class (the frozen network, a linear head).
    Curve(CurveArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config file named by `--config` cannot be read.
    #[error("{}: {source}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not a Graft config.
    #[error("{}: {source}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A flag's value is not one of its choices.
    #[error("unknown {what} `{value}` ({choices})")]
    UnknownChoice {
        /// The flag, for people.
        what: &'static str,
        /// What was given.
        value: String,
        /// The choices, comma-separated.
        choices: &'static str,
    },
    /// `--class` names no class of the run.
    #[error("the run has no class `{name}`; its classes are {classes}")]
    UnknownClass {
        /// What was given.
        name: String,
        /// The run's classes, comma-separated.
        classes: String,
    },
    /// A flag combination that cannot work.
    #[error("{0}")]
    Usage(&'static str),
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A weight file cannot be used.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A run or model cannot be used for prediction.
    #[error(transparent)]
    Predict(#[from] PredictError),
    /// A run cannot be evaluated.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A run cannot be exported.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A training run failed; the engine's message says why.
    #[error("{0}")]
    Train(String),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A cleaned copy could not be written.
    #[error(transparent)]
    Clean(#[from] crate::data::cleaned::CleanError),
    /// The doctor could not examine the folder.
    #[error(transparent)]
    Doctor(#[from] crate::doctor::DoctorError),
    /// A file would be written into the data set.
    #[error(transparent)]
    InsideDataSet(#[from] crate::platform::fsutil::InsideDataSet),
    /// The paths given hold no image.
    #[error("no images found in {0}")]
    NoImages(String),
    /// Some items failed; each was reported where it failed.
    #[error("{0} of the items failed")]
    Reported(usize),
}

impl CliError {
    /// The process exit code: 2 for a command line that cannot work, 1 for a failure.
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::ConfigFile { .. }
            | Self::ConfigParse { .. }
            | Self::UnknownChoice { .. }
            | Self::Usage(_)
            | Self::UnknownClass { .. }
            | Self::Config(_)
            | Self::Weights(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Prints one error the way every command reports errors.
pub fn report(error: &dyn Display) {
    eprintln!("error: {error}");
}

/// Runs one command; prints its error, if any, once.
pub fn run(command: Command) -> ExitCode {
    let result = match &command {
        Command::Train(a) => train::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Layers(a) => layers::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Export(a) => export::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Clean(a) => clean::run(a),
        Command::Explain(a) => explain::run(a),
        Command::LrFind(a) => lr_find::run(a),
        Command::Curve(a) => curve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported(_)) => ExitCode::FAILURE,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

/// Parses a model name for clap, listing the known ones when it is not one.
pub fn parse_model(name: &str) -> Result<ModelKind, String> {
    ModelKind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown model `{name}`; choose one of {}", names.join(", "))
    })
}

/// The `--device` choices, by name.
const DEVICES: [(&str, DevicePreference); 3] = [
    ("auto", DevicePreference::Auto),
    ("cpu", DevicePreference::Cpu),
    ("gpu", DevicePreference::Gpu),
];

/// Parses `--device`: `cpu`, `gpu` or `auto`.
pub fn parse_device(name: &str) -> Result<DevicePreference, String> {
    DEVICES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| format!("unknown device `{name}`; choose cpu, gpu or auto"))
}

/// The image files named by `paths` (a folder stands for the images below it) and the
/// paths that could not be read, each in words; an error when there is neither.
fn image_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<String>), CliError> {
    let (images, errors) = crate::data::scan::expand_image_paths(paths);
    if images.is_empty() && errors.is_empty() {
        let given: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(CliError::NoImages(format!(
            "{} (looked for {} files)",
            given.join(", "),
            crate::data::scan::IMAGE_EXTENSIONS.join(", ")
        )));
    }
    Ok((images, errors))
}

/// A text progress bar of `width` characters.
fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    format!("{}{}", "#".repeat(filled), "-".repeat(width - filled))
}
