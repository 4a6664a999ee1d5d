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
    // `graft FOLDER` (a file manager's "Open with", the desktop entry's %F) opens the window
    // on that folder.
    let mut args = std::env::args_os().skip(1);
    if let (Some(first), None) = (args.next(), args.next()) {
        let path = std::path::PathBuf::from(first);
        if path.is_dir() {
            return graft::app::run(Some(path));
        }
    }
    match graft::cli::Cli::parse().command {
        None => graft::app::run(None),
        Some(command) => graft::cli::run(command),
    }
}
