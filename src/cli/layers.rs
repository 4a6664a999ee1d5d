//! `graft layers`: a model's layer groups, the units that can be frozen.

use clap::Args;

use super::{CliError, parse_model};
use crate::models::{ModelKind, describe_layers};

/// `graft layers` flags.
#[derive(Args, Debug)]
pub struct LayersArgs {
    /// The model.
    #[arg(long, value_parser = parse_model, default_value = "efficientnet-lite0")]
    pub model: ModelKind,
    /// Output classes of the new head.
    #[arg(long, default_value_t = 5)]
    pub classes: usize,
}

/// Runs `graft layers`.
pub(super) fn run(args: &LayersArgs) -> Result<(), CliError> {
    let groups = describe_layers(args.model, args.classes);
    let name = groups
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let what = groups
        .iter()
        .map(|g| g.description.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<name$} {:<what$} {:>10}  output",
        "group", "what", "params"
    );
    for g in groups {
        println!(
            "{:<name$} {:<what$} {:>10}  {}",
            g.name,
            g.description,
            g.params,
            g.output_shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×")
        );
    }
    Ok(())
}
