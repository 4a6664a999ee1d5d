//! `graft doctor`: what a folder's images say about its labels, before any training.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::Args;

use super::{CliError, parse_device, parse_model};
use crate::doctor::{DoctorOptions, examine};
use crate::models::ModelKind;
use crate::platform::device::{self, DevicePreference};
use crate::platform::fsutil;

/// `graft doctor` flags.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The image folder.
    #[arg(long)]
    pub data: PathBuf,
    /// The backbone whose features are used.
    #[arg(long, value_parser = parse_model, default_value = "efficientnet-lite0")]
    pub model: ModelKind,
    /// A weight file instead of the catalogue's.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Also write the findings as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to compute: cpu (the default, which needs no graphics), gpu or auto.
    #[arg(long, value_parser = parse_device, default_value = "cpu")]
    pub device: DevicePreference,
}

/// Runs `graft doctor`.
pub(super) fn run(args: &DoctorArgs) -> Result<(), CliError> {
    if let Some(path) = &args.json {
        fsutil::ensure_outside(path, &args.data)?;
    }
    if args.folds < 2 {
        return Err(CliError::Usage("--folds must be at least 2"));
    }
    let device = device::select(args.device).device;
    let options = DoctorOptions {
        model: args.model,
        weights: args.weights.clone(),
        folds: args.folds,
        seed: 0,
    };
    let progress = |done: usize, total: usize| {
        eprint!("\rfeatures {done}/{total}");
        if done == total {
            eprintln!();
        }
    };
    let report = examine(
        &args.data,
        &options,
        &device,
        &progress,
        &AtomicBool::new(false),
    )?;
    for s in &report.skipped {
        println!("skipped {s}");
    }
    for line in report.describe() {
        println!("{line}");
    }
    if let Some(path) = &args.json {
        fsutil::write_json_atomic(path, &report).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
