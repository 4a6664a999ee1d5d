//! `graft curve`: how the frozen pre-trained network's accuracy grows with the images per class.

use std::sync::atomic::AtomicBool;

use clap::Args;

use super::CliError;
use super::doctor::{FeatureArgs, feature_progress};
use crate::doctor::curve::{HELD_OUT, data_efficiency};

/// `graft curve` flags.
#[derive(Args, Debug)]
pub struct CurveArgs {
    /// The folder, backbone, device and JSON file.
    #[command(flatten)]
    pub features: FeatureArgs,
    /// Seeds (random splits) averaged at every size.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
}

/// Runs `graft curve`.
pub(super) fn run(args: &CurveArgs) -> Result<(), CliError> {
    if args.seeds == 0 {
        return Err(CliError::Usage("--seeds must be at least 1"));
    }
    let (device, options) = args.features.prepare()?;
    let cancel = AtomicBool::new(false);
    let data = &args.features.data;
    let curve = data_efficiency(
        data,
        &options,
        args.seeds,
        &device,
        &feature_progress,
        &cancel,
    )?;
    println!(
        "{} with {} frozen, a linear head on its features; {} % of each class held out, {} seeds",
        curve.root.display(),
        curve.model,
        (HELD_OUT * 100.0).round(),
        curve.seeds
    );
    println!(
        "{:>16}  {:>9}  {:>17}  {:>15}",
        "images per class", "accuracy", "95 % interval", "seeds' range"
    );
    for p in &curve.points {
        let size = if p.all {
            format!("all ({})", p.per_class)
        } else {
            p.per_class.to_string()
        };
        println!(
            "{size:>16}  {:>7.1} %  {:>6.1} – {:>5.1} %  {:>5.1} – {:>5.1} %   on {} images",
            p.accuracy * 100.0,
            p.ci95[0] * 100.0,
            p.ci95[1] * 100.0,
            p.seed_range[0] * 100.0,
            p.seed_range[1] * 100.0,
            p.tested
        );
    }
    args.features.write_json(&curve)
}
