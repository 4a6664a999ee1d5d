//! `graft clean`: a cleaned copy of a data set, with a decisions file applied.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use super::train::read_decisions;
use crate::data::cleaned::export_cleaned;

/// `graft clean` flags.
#[derive(Args, Debug)]
pub struct CleanArgs {
    /// The image folder (only read).
    #[arg(long)]
    pub data: PathBuf,
    /// The decisions: a JSON file ({"exclude": [...], "relabel": [{"file", "class"}]}, paths
    /// relative to the data folder), or a saved Graft project.
    #[arg(long)]
    pub decisions: PathBuf,
    /// A new (or empty) folder outside the data folder for the copy.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `graft clean`.
pub(super) fn run(args: &CleanArgs) -> Result<(), CliError> {
    let curation = read_decisions(&args.decisions)?;
    let copy = export_cleaned(&args.data, &curation, &args.out)?;
    println!("{}", copy.describe());
    Ok(())
}
