//! `graft eval`: a run's accuracy, per-class scores, confusion matrix and worst mistakes.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use super::parse_device;
use crate::platform::device::{self, DevicePreference};
use crate::run::eval::{evaluate_run, rescore_run};

/// `graft eval` flags.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run folder written by `graft train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Another image folder with the same classes (default: the run's validation split).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// How many mistakes to list.
    #[arg(long, default_value_t = 10)]
    pub mistakes: usize,
    /// Where to compute: cpu (the default, which needs no graphics), gpu or auto.
    #[arg(long, value_parser = parse_device, default_value = "cpu")]
    pub device: DevicePreference,
    /// Classify the validation images again instead of using the scores the run stored.
    #[arg(long)]
    pub rescore: bool,
}

/// Runs `graft eval`.
pub(super) fn run(args: &EvalArgs) -> Result<(), CliError> {
    let device = device::select(args.device).device;
    let evaluation = if args.rescore {
        rescore_run(&args.run, args.data.as_deref(), &device)?
    } else {
        evaluate_run(&args.run, args.data.as_deref(), &device)?
    };
    if let Some(epoch) = evaluation.stored_epoch {
        println!(
            "scores stored with the checkpoint (epoch {epoch}); --rescore classifies the images again"
        );
    }
    for s in &evaluation.skipped {
        println!("skipped {s}");
    }
    for w in &evaluation.warnings {
        println!("warning: {w}");
    }
    let m = &evaluation.metrics;
    let images: usize = m.per_class.iter().map(|c| c.support).sum();
    let right: usize = (0..m.classes.len()).map(|c| m.confusion[c][c]).sum();
    println!(
        "accuracy {}",
        crate::platform::interval::describe(right, images)
    );
    println!();
    println!(
        "{:<20} {:>9} {:>7} {:>7} {:>7}",
        "class", "precision", "recall", "f1", "support"
    );
    for c in &m.per_class {
        println!(
            "{:<20} {:>9.3} {:>7.3} {:>7.3} {:>7}",
            c.name, c.precision, c.recall, c.f1, c.support
        );
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted)");
    print!("{:<20}", "");
    for (i, _) in m.classes.iter().enumerate() {
        print!(" {:>6}", format!("[{i}]"));
    }
    println!();
    for (i, row) in m.confusion.iter().enumerate() {
        print!("{:<20}", format!("[{i}] {}", m.classes[i]));
        for n in row {
            print!(" {n:>6}");
        }
        println!();
    }
    println!();
    println!(
        "mistakes, worst first ({} in all):",
        evaluation.mistakes.len()
    );
    for k in evaluation.mistakes.iter().take(args.mistakes) {
        println!(
            "  {:>6.3}  true {:<12} predicted {:<12} ({:.1} %)  {}",
            k.loss,
            m.classes[k.truth],
            m.classes[k.predicted],
            k.confidence * 100.0,
            k.path.display()
        );
    }
    Ok(())
}
