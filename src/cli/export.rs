//! `graft export`: a run's weights, labels and preprocessing, written and checked.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use super::parse_device;
use crate::platform::device::{self, DevicePreference};
use crate::run::export::export_run;

/// `graft export` flags.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run folder written by `graft train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Folder to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Where to compute: cpu (the default, which needs no graphics), gpu or auto.
    #[arg(long, value_parser = parse_device, default_value = "cpu")]
    pub device: DevicePreference,
}

/// Runs `graft export`.
pub(super) fn run(args: &ExportArgs) -> Result<(), CliError> {
    let device = device::select(args.device).device;
    let r = export_run(&args.run, &args.out, &device)?;
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    println!(
        "parity on {} validation images: accuracy {:.2} % before, {:.2} % after reloading; largest logit difference {:e}",
        r.images,
        r.accuracy_before * 100.0,
        r.accuracy_after * 100.0,
        r.max_logit_diff
    );
    println!(
        "ONNX check: {} validation crops through model.onnx (tract): largest probability difference {:e}",
        r.onnx_check_images, r.onnx_max_probability_diff
    );
    Ok(())
}
