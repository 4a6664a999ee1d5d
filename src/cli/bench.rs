//! `graft bench`: runs the benchmarks in [`crate::train::bench`] and prints (and optionally saves) them.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{CliError, parse_model, report};
use crate::config::{DevicePreference, TrainConfig};
use crate::models::ModelKind;
use crate::platform::{assets, device, fsutil};
use crate::train::bench::{self, StepMode};

/// `graft bench` flags.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Image folder for the decode and time-to-accuracy benchmarks.
    #[arg(long, default_value_os_t = assets::demo_dataset())]
    data: PathBuf,
    /// Backends to time steps on: flex (CPU), wgpu (a GPU; on a software adapter the first
    /// step alone takes minutes).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    backends: Vec<String>,
    /// Models to time steps of.
    #[arg(long, value_delimiter = ',', value_parser = parse_model, default_value = "efficientnet-lite0,resnet18")]
    models: Vec<ModelKind>,
    /// Timed steps per configuration (after one untimed first step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Input side.
    #[arg(long, default_value_t = 224)]
    side: u32,
    /// Target validation accuracy for the time-to-accuracy runs.
    #[arg(long, default_value_t = 0.8)]
    target: f64,
    /// Skip the time-to-accuracy runs.
    #[arg(long)]
    skip_accuracy: bool,
    /// Also write everything, and the split used, as JSON here (bench/pytorch_baseline.py
    /// reads it to train on the same images).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    graft_version: &'static str,
    cores: usize,
    steps: Vec<bench::StepBench>,
    predict: Vec<bench::PredictBench>,
    decode: Option<bench::DecodeBench>,
    accuracy: Vec<bench::AccuracyBench>,
    split: Option<bench::Split>,
}

fn device_for(backend: &str) -> Result<(burn::tensor::Device, String), CliError> {
    match backend {
        "flex" | "cpu" => Ok((burn::tensor::Device::flex(), "flex (CPU)".to_string())),
        "wgpu" => {
            let picked = device::select(DevicePreference::Gpu);
            Ok((picked.device, picked.description))
        }
        other => Err(CliError::UnknownChoice {
            what: "backend",
            value: other.to_string(),
            choices: "flex, wgpu",
        }),
    }
}

/// Runs `graft bench`.
pub(super) fn run(args: &BenchArgs) -> Result<(), CliError> {
    if let Some(path) = &args.json {
        fsutil::ensure_outside(path, &args.data)?;
    }
    let steps = step_benchmarks(args)?;
    let predict = predict_benchmarks(args);
    let decode = decode_benchmark(args);
    let runs = std::env::temp_dir().join(format!("graft-bench-{}", std::process::id()));
    let config = TrainConfig {
        data: args.data.clone(),
        runs_dir: Some(runs.clone()),
        ..TrainConfig::default()
    };
    let split = bench::split_of(&config).ok();
    let accuracy = if args.skip_accuracy {
        Vec::new()
    } else {
        let results = accuracy_benchmarks(args, &config);
        let _ = std::fs::remove_dir_all(&runs);
        results
    };
    let report = Report {
        graft_version: env!("CARGO_PKG_VERSION"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        steps,
        predict,
        decode,
        accuracy,
        split,
    };
    if let Some(path) = &args.json {
        fsutil::write_json_atomic(path, &report).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

fn step_benchmarks(args: &BenchArgs) -> Result<Vec<bench::StepBench>, CliError> {
    println!(
        "training steps: batch {}, {} px, AdamW, synthetic images",
        args.batch, args.side
    );
    println!(
        "{:<20} {:<28} {:<10} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "model", "backend", "trains", "first step", "s/step", "img/s", "peak MiB", "telemetry"
    );
    let mut steps = Vec::new();
    for backend in &args.backends {
        let (device, description) = device_for(backend)?;
        let device = device.autodiff();
        for &kind in &args.models {
            for mode in [StepMode::Full, StepMode::HeadOnly] {
                let measured = bench::step_benchmark(
                    kind,
                    &device,
                    &description,
                    mode,
                    args.batch,
                    args.side,
                    args.steps,
                );
                match measured {
                    Ok(b) => {
                        println!(
                            "{:<20} {:<28} {:<10} {:>10.2} s {:>10.3} {:>10.1} {:>10} {:>8.2} %",
                            b.model,
                            b.backend,
                            format!("{:?}", b.mode),
                            b.first_step_seconds,
                            b.seconds_per_step,
                            b.images_per_sec,
                            mib(b.peak_memory_mib),
                            100.0 * b.telemetry_seconds_per_step / b.seconds_per_step
                        );
                        steps.push(b);
                    }
                    Err(e) => report(&format!("{} {mode:?} on {description}: {e}", kind.name())),
                }
            }
        }
    }
    Ok(steps)
}

/// Single-image latency on the CPU, of the first image of the data folder.
fn predict_benchmarks(args: &BenchArgs) -> Vec<bench::PredictBench> {
    let Some(image) = first_image(&args.data) else {
        report(&format!(
            "no image in {} to time predictions on",
            args.data.display()
        ));
        return Vec::new();
    };
    println!(
        "\nsingle-image predict (CPU, warm: decode → top 5), {}:",
        image.display()
    );
    let device = burn::tensor::Device::flex();
    let mut results = Vec::new();
    for &kind in &args.models {
        match bench::predict_benchmark(kind, &image, &device, PREDICT_RUNS) {
            Ok(p) => {
                println!(
                    "  {:<20} median {:>6.1} ms  min {:>6.1} ms  (first {:.1} ms, build {:.2} s)",
                    p.model,
                    p.median_seconds * 1e3,
                    p.min_seconds * 1e3,
                    p.first_seconds * 1e3,
                    p.load_seconds
                );
                results.push(p);
            }
            Err(e) => report(&format!("predict {}: {e}", kind.name())),
        }
    }
    results
}

/// Timed single-image predictions per model.
const PREDICT_RUNS: usize = 20;

/// The first image file under `folder`, in path order.
fn first_image(folder: &std::path::Path) -> Option<PathBuf> {
    let scan = crate::data::scan_folder(folder).ok()?;
    scan.files.into_iter().map(|f| f.path).min()
}

fn decode_benchmark(args: &BenchArgs) -> Option<bench::DecodeBench> {
    let side = ModelKind::EfficientNetLite0.input_size();
    match bench::decode_benchmark(&args.data, side) {
        Ok(d) => {
            println!(
                "\ndecode + resize: {} images, {:.0} img/s on {} threads; crop + flip + normalise: {:.0} img/s on one thread; peak {} MiB",
                d.images,
                d.decode_images_per_sec,
                d.threads,
                d.augment_images_per_sec,
                mib(d.peak_memory_mib)
            );
            Some(d)
        }
        Err(e) => {
            report(&format!("decode benchmark on {}: {e}", args.data.display()));
            None
        }
    }
}

fn accuracy_benchmarks(args: &BenchArgs, config: &TrainConfig) -> Vec<bench::AccuracyBench> {
    println!(
        "\ntime to {:.0} % validation accuracy, default recipe (Lite0, head only, {} epochs) on {}:",
        args.target * 100.0,
        config.epochs,
        args.data.display()
    );
    let mut uncached = config.clone();
    uncached.feature_cache.enabled = false;
    let mut results = Vec::new();
    for (label, config) in [
        ("default recipe, feature cache on", config.clone()),
        ("default recipe, feature cache off", uncached),
    ] {
        match bench::accuracy_benchmark(label, config, args.target) {
            Ok(a) => {
                let reached = a
                    .seconds_to_target
                    .map_or("not reached".into(), |s| format!("{s:.1} s"));
                let epochs: Vec<String> = a
                    .epochs
                    .iter()
                    .map(|e| format!("{:.0}s:{:.1}%", e.at_seconds, e.val_accuracy * 100.0))
                    .collect();
                println!(
                    "  {label:<36} target {reached:<12} first step {:>6.1} s  total {:>6.1} s  peak {} MiB  [{}]",
                    a.first_step_seconds.unwrap_or(f64::NAN),
                    a.total_seconds,
                    mib(a.peak_memory_mib),
                    epochs.join(" ")
                );
                results.push(a);
            }
            Err(e) => report(&format!("{label}: {e}")),
        }
    }
    results
}

fn mib(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.0}"))
}
