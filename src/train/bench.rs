//! Benchmarks behind `graft bench`: training-step throughput per model, backend and freeze plan,
//! time to a target accuracy with the default recipe, decode and preprocessing throughput, and
//! peak memory. Nothing here is asserted by tests; it measures and reports.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::Serialize;

use super::telemetry::Telemetry;
use super::{TrainEvent, cross_entropy, optim, spawn};
use crate::config::{OptimizerConfig, TrainConfig};
use crate::data::batches::{View, make_batch};
use crate::data::rng::Rng;
use crate::data::{self, DataError, PrepareOptions};
use crate::models::{ModelKind, Network, NetworkSpec};
use crate::platform::memory::{peak_memory_mib, reset_peak_memory};
use crate::run::predict::Predictor;

/// Why a benchmark could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The device failed to compute or read back a value.
    #[error("the compute device failed: {0}")]
    Device(String),
    /// The image folder cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The timed run failed; the engine's message says why.
    #[error("{0}")]
    Run(String),
    /// The timed run's thread ended without a final event.
    #[error("the run ended without a result")]
    NoResult,
}

/// Which layers a step trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StepMode {
    /// Every layer.
    Full,
    /// Only the head; the backbone is frozen but still runs every step (no cache).
    HeadOnly,
}

/// Throughput of training steps on synthetic input.
#[derive(Clone, Debug, Serialize)]
pub struct StepBench {
    /// Model name.
    pub model: String,
    /// Backend description.
    pub backend: String,
    /// Which layers train.
    pub mode: StepMode,
    /// Images per step.
    pub batch: usize,
    /// Input side.
    pub side: u32,
    /// The first step (kernel compilation and autotuning on a GPU).
    pub first_step_seconds: f64,
    /// Mean of the timed steps after it.
    pub seconds_per_step: f64,
    /// `batch / seconds_per_step`.
    pub images_per_sec: f64,
    /// Of each step, the time the per-group telemetry took (gradient norms, and the weight
    /// change read at an epoch's end as if every step ended one).
    pub telemetry_seconds_per_step: f64,
    /// Peak resident memory during the benchmark.
    pub peak_memory_mib: Option<f64>,
}

/// Times `steps` training steps (after one untimed first step) of `kind` on `device`
/// (an autodiff device), with AdamW, on random images.
pub fn step_benchmark(
    kind: ModelKind,
    device: &Device,
    backend: &str,
    mode: StepMode,
    batch: usize,
    side: u32,
    steps: usize,
) -> Result<StepBench, BenchError> {
    reset_peak_memory();
    let spec = NetworkSpec {
        kind,
        classes: 10,
        head: Default::default(),
        input_size: side,
    };
    let mut network = Network::new_seeded(&spec, device, 1);
    let groups = network.backbone_groups() + 1;
    let frozen: Vec<bool> = (0..groups)
        .map(|g| mode == StepMode::HeadOnly && g + 1 < groups)
        .collect();
    network = network.with_frozen(&frozen);
    let mut optimizer = optim::build(&OptimizerConfig::default());
    let mut telemetry = Telemetry::start(
        &network,
        &network.layer_groups(side),
        &network.group_param_ids(),
    );
    let x = Tensor::<4>::random(
        [batch, 3, side as usize, side as usize],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), device);
    // Each step also says how long its telemetry took.
    let mut step = |network: Network| -> Result<(Network, Duration), BenchError> {
        let loss = cross_entropy(network.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        let measured = Instant::now();
        telemetry.record_step(&network, &grads);
        let telemetry_time = measured.elapsed();
        let network = optimizer.step(1e-3, network, grads);
        // Reading a value back waits for the device to finish the step.
        network
            .head
            .fc
            .bias
            .as_ref()
            .map(|b| b.val().sum().try_into_scalar::<f32>())
            .transpose()
            .map_err(|e| BenchError::Device(e.to_string()))?;
        Ok((network, telemetry_time))
    };
    let started = Instant::now();
    (network, _) = step(network)?;
    let first_step_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut telemetry_time = Duration::ZERO;
    for _ in 0..steps.max(1) {
        let spent;
        (network, spent) = step(network)?;
        telemetry_time += spent;
    }
    let seconds_per_step = started.elapsed().as_secs_f64() / steps.max(1) as f64;
    // An epoch's figures are read once at its end: counted here as if every timed step ended
    // an epoch, which overstates their cost.
    let measured = Instant::now();
    telemetry
        .end_epoch(&network)
        .map_err(|e| BenchError::Device(e.to_string()))?;
    let telemetry_seconds = telemetry_time.as_secs_f64() / steps.max(1) as f64
        + measured.elapsed().as_secs_f64() / steps.max(1) as f64;
    Ok(StepBench {
        model: kind.name().into(),
        backend: backend.into(),
        mode,
        batch,
        side,
        first_step_seconds,
        seconds_per_step,
        images_per_sec: batch as f64 / seconds_per_step,
        telemetry_seconds_per_step: telemetry_seconds,
        peak_memory_mib: peak_memory_mib(),
    })
}

/// Decoding and preprocessing throughput on a folder.
#[derive(Clone, Debug, Serialize)]
pub struct DecodeBench {
    /// Images decoded.
    pub images: usize,
    /// Decoder threads.
    pub threads: usize,
    /// Decode + resize of every file, images per second.
    pub decode_images_per_sec: f64,
    /// Random crop + flip + normalise of every decoded image, images per second (one thread).
    pub augment_images_per_sec: f64,
    /// Peak resident memory with the decoded set held.
    pub peak_memory_mib: Option<f64>,
}

/// Decodes every image in `folder` for `side` and times a training view of each.
pub fn decode_benchmark(folder: &Path, side: u32) -> Result<DecodeBench, BenchError> {
    reset_peak_memory();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let options = PrepareOptions::whole(side, threads);
    let started = Instant::now();
    let dataset = data::prepare(folder, &options, &|_, _| {}, &AtomicBool::new(false))?;
    let decode = started.elapsed().as_secs_f64();
    let samples = dataset.train;
    let indices: Vec<usize> = (0..samples.len()).collect();
    let view = View::Train {
        augment: Default::default(),
        seed: 1,
    };
    let mut rng = Rng::new(1, 1);
    let norm = ModelKind::EfficientNetLite0.normalization();
    let started = Instant::now();
    for chunk in indices.chunks(16) {
        let batch = make_batch(&samples, chunk, side, &norm, &view, &mut rng)
            .map_err(|bad| BenchError::Run(bad.to_string()))?;
        std::hint::black_box(batch);
    }
    let augment = started.elapsed().as_secs_f64();
    Ok(DecodeBench {
        images: samples.len(),
        threads,
        decode_images_per_sec: samples.len() as f64 / decode.max(1e-9),
        augment_images_per_sec: samples.len() as f64 / augment.max(1e-9),
        peak_memory_mib: peak_memory_mib(),
    })
}

/// How long `graft predict` takes for one image, once the model is loaded.
#[derive(Clone, Debug, Serialize)]
pub struct PredictBench {
    /// Model name.
    pub model: String,
    /// The image.
    #[serde(serialize_with = "crate::platform::paths::as_path::serialize")]
    pub image: std::path::PathBuf,
    /// Building the network (random weights: the time does not depend on their values).
    pub load_seconds: f64,
    /// The first prediction.
    pub first_seconds: f64,
    /// Median of the timed predictions after it: decode, resize, crop, normalise, forward,
    /// softmax and top 5, one image at a time.
    pub median_seconds: f64,
    /// The fastest of them.
    pub min_seconds: f64,
}

/// Times `runs` single-image predictions of `image` with `kind` at its own input size on
/// `device` (a non-autodiff device), after one untimed prediction.
pub fn predict_benchmark(
    kind: ModelKind,
    image: &Path,
    device: &Device,
    runs: usize,
) -> Result<PredictBench, BenchError> {
    let started = Instant::now();
    let side = kind.input_size();
    let spec = NetworkSpec {
        kind,
        classes: 1000,
        head: Default::default(),
        input_size: side,
    };
    let classes: Vec<String> = (0..spec.classes).map(|c| c.to_string()).collect();
    let network = Network::new_seeded(&spec, device, 1);
    let predictor = Predictor::from_network(network, classes, kind, side, device);
    let load_seconds = started.elapsed().as_secs_f64();
    let predict = || {
        let started = Instant::now();
        let top = predictor
            .top_k_file(image, 5)
            .map_err(|e| BenchError::Run(e.to_string()))?;
        std::hint::black_box(top);
        Ok::<f64, BenchError>(started.elapsed().as_secs_f64())
    };
    let first_seconds = predict()?;
    let mut times = (0..runs.max(1))
        .map(|_| predict())
        .collect::<Result<Vec<f64>, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(PredictBench {
        model: kind.name().into(),
        image: image.to_path_buf(),
        load_seconds,
        first_seconds,
        median_seconds: times[times.len() / 2],
        min_seconds: times[0],
    })
}

/// One epoch of a timed run.
#[derive(Clone, Debug, Serialize)]
pub struct EpochPoint {
    /// Epoch number.
    pub epoch: usize,
    /// Seconds from the start of the run to the end of the epoch.
    pub at_seconds: f64,
    /// Validation accuracy after it.
    pub val_accuracy: f64,
}

/// A whole run timed against a target accuracy.
#[derive(Clone, Debug, Serialize)]
pub struct AccuracyBench {
    /// What was run.
    pub label: String,
    /// The target validation accuracy.
    pub target: f64,
    /// Seconds from the start until an epoch first reached the target.
    pub seconds_to_target: Option<f64>,
    /// Seconds from the start until the first training step finished.
    pub first_step_seconds: Option<f64>,
    /// Each epoch.
    pub epochs: Vec<EpochPoint>,
    /// Wall time of the whole run.
    pub total_seconds: f64,
    /// Peak resident memory during the run.
    pub peak_memory_mib: Option<f64>,
}

/// Trains `config` and times it against `target` validation accuracy.
pub fn accuracy_benchmark(
    label: &str,
    config: TrainConfig,
    target: f64,
) -> Result<AccuracyBench, BenchError> {
    reset_peak_memory();
    let started = Instant::now();
    let mut handle = spawn(config, None);
    let mut bench = AccuracyBench {
        label: label.into(),
        target,
        seconds_to_target: None,
        first_step_seconds: None,
        epochs: Vec::new(),
        total_seconds: 0.0,
        peak_memory_mib: None,
    };
    loop {
        let Some(event) = handle.next_timeout(Duration::from_millis(500)) else {
            if handle.is_ended() {
                return Err(BenchError::NoResult);
            }
            continue;
        };
        let now = started.elapsed().as_secs_f64();
        match event {
            TrainEvent::Batch(_) if bench.first_step_seconds.is_none() => {
                bench.first_step_seconds = Some(now);
            }
            TrainEvent::Epoch(m) => {
                let accuracy = m.val_accuracy.unwrap_or(0.0);
                if accuracy >= target && bench.seconds_to_target.is_none() {
                    bench.seconds_to_target = Some(now);
                }
                bench.epochs.push(EpochPoint {
                    epoch: m.epoch,
                    at_seconds: now,
                    val_accuracy: accuracy,
                });
            }
            TrainEvent::Finished(_) => break,
            TrainEvent::Failed(m) => return Err(BenchError::Run(m)),
            _ => {}
        }
    }
    bench.total_seconds = started.elapsed().as_secs_f64();
    bench.peak_memory_mib = peak_memory_mib();
    Ok(bench)
}

/// The split a default run makes of `folder` (so another tool can train on the same images).
#[derive(Clone, Debug, Serialize)]
pub struct Split {
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Training files and labels.
    pub train: Vec<(String, usize)>,
    /// Validation files and labels.
    pub val: Vec<(String, usize)>,
}

/// The split `config` makes of its folder.
pub fn split_of(config: &TrainConfig) -> Result<Split, BenchError> {
    let options = PrepareOptions::of_config(config, 32, 2);
    let dataset = data::prepare(&config.data, &options, &|_, _| {}, &AtomicBool::new(false))?;
    let list = |samples: &[data::Sample]| {
        samples
            .iter()
            .map(|s| (s.path.display().to_string(), s.label))
            .collect()
    };
    Ok(Split {
        classes: dataset.classes.clone(),
        train: list(&dataset.train),
        val: list(&dataset.val),
    })
}
