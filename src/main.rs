//! Graft's executable: with no arguments it opens the app, otherwise it runs a CLI command.

mod bench_cli;
mod cli;

use clap::Parser;

fn main() {
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
