//! `graft predict`: the top classes of images, from a trained run or a model's own ImageNet
//! classifier.

use std::path::PathBuf;

use clap::Args;

use super::parse_device;
use super::{CliError, image_files, parse_model, report};
use crate::models::ModelKind;
use crate::platform::device::{self, DevicePreference};
use crate::run::predict::Predictor;

/// `graft predict` flags.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run folder written by `graft train`.
    #[arg(long, conflicts_with = "model")]
    pub run: Option<PathBuf>,
    /// Use this model's own ImageNet classifier instead of a run.
    #[arg(long, value_parser = parse_model)]
    pub model: Option<ModelKind>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Images to classify; a folder stands for every image below it.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Where to compute: cpu (the default, which needs no graphics), gpu or auto.
    #[arg(long, value_parser = parse_device, default_value = "cpu")]
    pub device: DevicePreference,
}

/// Runs `graft predict`; returns the process exit code.
pub(super) fn run(args: &PredictArgs) -> Result<(), CliError> {
    let device = device::select(args.device).device;
    let predictor = match (&args.run, args.model) {
        (Some(run), _) => Predictor::from_run(run, &device)?,
        (None, Some(model)) => Predictor::imagenet(model, None, &device)?,
        (None, None) => {
            return Err(CliError::Usage(
                "give --run DIR (a trained run) or --model NAME (ImageNet classes)",
            ));
        }
    };
    let (images, errors) = image_files(&args.images)?;
    let mut failures = errors.len();
    for e in errors {
        report(&e);
    }
    for path in &images {
        match predictor.top_k_file(path, args.top) {
            Ok(top) => {
                println!("{}", path.display());
                for (class, p) in top {
                    println!("  {:>6.2} %  {class}", p * 100.0);
                }
            }
            Err(e) => {
                report(&e);
                failures += 1;
            }
        }
    }
    if failures > 0 {
        Err(CliError::Reported(failures))
    } else {
        Ok(())
    }
}
