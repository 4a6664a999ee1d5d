//! `graft doctor`: what a folder's images say about its labels, before any training.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::Args;

use super::{CliError, parse_device, parse_model};
use crate::doctor::{DoctorOptions, examine};
use crate::models::ModelKind;
use crate::platform::device::{self, DevicePreference};
use crate::platform::fsutil;

/// What the commands that read a folder's backbone features share: the folder, the backbone,
/// where to compute and an optional JSON file.
#[derive(Args, Debug)]
pub struct FeatureArgs {
    /// The image folder.
    #[arg(long)]
    pub data: PathBuf,
    /// The backbone whose features are used.
    #[arg(long, value_parser = parse_model, default_value = "efficientnet-lite0")]
    pub model: ModelKind,
    /// A weight file instead of the catalogue's.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to compute: cpu (the default, which needs no graphics), gpu or auto.
    #[arg(long, value_parser = parse_device, default_value = "cpu")]
    pub device: DevicePreference,
}

impl FeatureArgs {
    /// Refuses a JSON file inside the data set; the device and the doctor's options.
    pub(super) fn prepare(&self) -> Result<(burn::tensor::Device, DoctorOptions), CliError> {
        if let Some(path) = &self.json {
            fsutil::ensure_outside(path, &self.data)?;
        }
        let device = device::select(self.device).device;
        Ok((
            device,
            DoctorOptions::for_model(self.model, self.weights.clone()),
        ))
    }

    /// Writes `value` to the JSON file, when one was asked for.
    pub(super) fn write_json(&self, value: &impl serde::Serialize) -> Result<(), CliError> {
        if let Some(path) = &self.json {
            fsutil::write_json_atomic(path, value).map_err(|source| CliError::Write {
                path: path.clone(),
                source,
            })?;
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// The features' progress on stderr.
pub(super) fn feature_progress(done: usize, total: usize) {
    eprint!("\rfeatures {done}/{total}");
    if done == total {
        eprintln!();
    }
}

/// `graft doctor` flags.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The folder, backbone, device and JSON file.
    #[command(flatten)]
    pub features: FeatureArgs,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
}

/// Runs `graft doctor`.
pub(super) fn run(args: &DoctorArgs) -> Result<(), CliError> {
    if args.folds < 2 {
        return Err(CliError::Usage("--folds must be at least 2"));
    }
    let (device, mut options) = args.features.prepare()?;
    options.folds = args.folds;
    let report = examine(
        &args.features.data,
        &options,
        &device,
        &feature_progress,
        &AtomicBool::new(false),
    )?;
    for s in &report.skipped {
        println!("skipped {s}");
    }
    for line in report.describe() {
        println!("{line}");
    }
    args.features.write_json(&report)
}
