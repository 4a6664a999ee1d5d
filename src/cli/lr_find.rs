//! `graft lr-find`: sweeps the learning rate for a data set, model and freeze plan and suggests
//! one, without training or writing a run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CliError, TrainArgs};
use crate::platform::fsutil::{ensure_outside, write_json_atomic};
use crate::train::lr_find::{LrSweep, SUGGESTION_RULE, SweepSettings};
use crate::train::{self, TrainEvent};

/// `graft lr-find` flags: the training flags say what is swept (data, model, freeze plan,
/// optimiser, batch size), these how.
#[derive(Args, Debug)]
pub struct LrFindArgs {
    /// The run the rate is for.
    #[command(flatten)]
    pub train: TrainArgs,
    /// The first step's rate.
    #[arg(long, default_value_t = SweepSettings::default().start)]
    pub start: f64,
    /// The last step's rate.
    #[arg(long, default_value_t = SweepSettings::default().end)]
    pub end: f64,
    /// Steps in the sweep.
    #[arg(long, default_value_t = SweepSettings::default().steps)]
    pub steps: usize,
    /// Write the sweep (every step's rate and loss, the suggestion) to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `graft lr-find`.
pub(super) fn run(args: &LrFindArgs) -> Result<(), CliError> {
    let config = args.train.to_config()?;
    if let Some(json) = &args.json {
        ensure_outside(json, &config.data)?;
    }
    let settings = SweepSettings {
        start: args.start,
        end: args.end,
        steps: args.steps,
    };
    let mut handle = train::spawn_lr_find(config.clone(), settings, None);
    let sweep = loop {
        let Some(event) = handle.next_timeout(Duration::from_millis(200)) else {
            if handle.is_ended() {
                return Err(CliError::Reported(1));
            }
            continue;
        };
        match event {
            TrainEvent::LrSwept(sweep) => break sweep,
            TrainEvent::Failed(message) => return Err(CliError::Train(message)),
            TrainEvent::Device { description, .. } => println!("device: {description}"),
            TrainEvent::Warning(w) => println!("warning: {w}"),
            TrainEvent::LrPoint(p) => eprint!("\rrate {:.1e}  loss {:.4}   ", p.lr, p.smoothed),
            _ => {}
        }
    };
    eprintln!();
    print_sweep(&sweep);
    match sweep.suggestion {
        Some(lr) => println!(
            "suggested rate: {lr:.1e} ({SUGGESTION_RULE})\n  graft train --data {} --lr {lr:.1e}",
            config.data.display()
        ),
        None => println!("no suggestion: the sweep was too short to show a minimum"),
    }
    if let Some(json) = &args.json {
        write_json_atomic(json, &sweep).map_err(|source| CliError::Write {
            path: json.clone(),
            source,
        })?;
    }
    Ok(())
}

/// About twelve rows of rate and smoothed loss, with a bar for the loss.
fn print_sweep(sweep: &LrSweep) {
    let how = if sweep.cached {
        "on the frozen layers' output, computed once"
    } else {
        "through the whole network"
    };
    println!(
        "{} steps over {} training images, {how}{}",
        sweep.points.len(),
        sweep.images,
        if sweep.diverged {
            "; stopped when the loss blew up"
        } else {
            ""
        }
    );
    let lowest = sweep
        .points
        .iter()
        .map(|p| p.smoothed)
        .fold(f64::INFINITY, f64::min);
    let highest = sweep.points.iter().map(|p| p.smoothed).fold(0.0, f64::max);
    let every = sweep.points.len().div_ceil(12).max(1);
    for p in sweep.points.iter().step_by(every) {
        let width = ((p.smoothed - lowest) / (highest - lowest).max(1e-12) * 40.0) as usize;
        println!(
            "  {:>8.1e}  {:>8.4}  {}",
            p.lr,
            p.smoothed,
            "#".repeat(width + 1)
        );
    }
}
