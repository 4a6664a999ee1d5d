//! Graft's executable: with no arguments it opens the app, otherwise it runs a CLI command.

mod bench_cli;
mod cli;

use clap::Parser;

fn main() {
    // A desktop app cannot spend minutes benchmarking GPU kernel variants before the first
    // step: tune minimally unless the user asked otherwise. Set before any thread starts.
    if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal") };
    }
    let args = cli::Cli::parse();
    let code = match &args.command {
        None => graft::app::run(),
        Some(cli::Command::Train(a)) => cli::train(a),
        Some(cli::Command::Predict(a)) => cli::predict(a),
        Some(cli::Command::Layers(a)) => cli::layers(a),
        Some(cli::Command::Eval(a)) => cli::eval(a),
        Some(cli::Command::Export(a)) => cli::export(a),
        Some(cli::Command::Bench(a)) => bench_cli::bench(a),
    };
    std::process::exit(code);
}
