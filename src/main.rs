//! Graft's executable: with no arguments it opens the app, otherwise it runs a CLI command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A desktop app cannot spend minutes benchmarking GPU kernel variants before the first
    // step: tune minimally unless the user asked otherwise. Set before any thread starts.
    if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal") };
    }
    match graft::cli::Cli::parse().command {
        None => graft::app::run(),
        Some(command) => graft::cli::run(command),
    }
}
