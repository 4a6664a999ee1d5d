//! The training loop itself, run on the engine's thread.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::events::{BatchProgress, DataSummary, EpochMetrics, RunInfo, RunSummary, TrainEvent};
use super::feature_cache::FeatureCache;
use super::loss::cross_entropy;
use super::{Control, EventSink, optim};
use crate::config::{ConfigError, TrainConfig};
use crate::data::batches::{self, Batch, View};
use crate::data::rng::Rng;
use crate::data::{self, DataError, Dataset, PrepareOptions, Sample};
use crate::device;
use crate::models::{ModelKind, Network, NetworkSpec, WeightsError, trainable_param_count};
use crate::run_dir::{RunDir, RunRecord};

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data set cannot be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The weights cannot be loaded.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// No pre-trained weights were found.
    #[error(
        "no pre-trained weights for {model}: looked for {file} in {searched}; pass a weight file or train from scratch"
    )]
    NoWeights {
        /// The model.
        model: &'static str,
        /// The file name looked for.
        file: String,
        /// The folders searched.
        searched: String,
    },
    /// Every group is frozen.
    #[error(
        "every layer group is frozen, so there is nothing to train: unfreeze at least the head"
    )]
    NothingToTrain,
    /// No training image.
    #[error("no training images left after the split")]
    NoTrainingImages,
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {value} at epoch {epoch}, batch {batch}: the learning rate ({lr:e}) is probably too high"
    )]
    NonFiniteLoss {
        /// The value.
        value: f64,
        /// Epoch.
        epoch: usize,
        /// Batch.
        batch: usize,
        /// Learning rate of that step.
        lr: f64,
    },
    /// The run folder could not be written.
    #[error("cannot write the run folder {path}: {reason}")]
    RunFolder {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The pre-trained weights could not be downloaded.
    #[error("{0}")]
    Download(String),
    /// The device failed to compute or read back a value.
    #[error("the compute device failed: {0}")]
    Device(String),
}

fn folder_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::RunFolder {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Validation loss and accuracy of `network` on `samples` (centre crops).
pub fn evaluate(
    network: &Network,
    samples: &[Sample],
    side: u32,
    kind: ModelKind,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, f64), TrainError> {
    evaluate_with(network, None, samples, side, kind, batch_size, device)
}

/// [`evaluate`], with the frozen groups' output taken from (and first put into) `cache`.
fn evaluate_with(
    network: &Network,
    mut cache: Option<&mut FeatureCache>,
    samples: &[Sample],
    side: u32,
    kind: ModelKind,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, f64), TrainError> {
    if samples.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let order: Vec<usize> = (0..samples.len()).collect();
    let cached = cache.as_ref().is_some_and(|c| c.has_view(0));
    let batches = Batches {
        samples,
        batch_size,
        side,
        kind,
    };
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    for input in batches.inputs(order, View::Eval, cached) {
        let (logits, y) = forward(network, cache.as_deref_mut(), input, 0, samples, device)?;
        let n = y.dims()[0];
        let loss = cross_entropy(logits.clone(), y.clone());
        let hits = logits.argmax(1).reshape([n]).equal(y).int().sum();
        loss_sum += scalar(loss)? * n as f64;
        correct += scalar_int(hits)? as usize;
    }
    Ok((
        loss_sum / samples.len() as f64,
        correct as f64 / samples.len() as f64,
    ))
}

/// What one step starts from.
enum Input {
    /// Preprocessed images.
    Images(Batch),
    /// Images whose frozen-prefix activations are cached: their indices.
    Cached(Vec<usize>),
}

/// How a pass over a sample list is cut into steps.
struct Batches<'a> {
    samples: &'a [Sample],
    batch_size: usize,
    side: u32,
    kind: ModelKind,
}

impl Batches<'_> {
    /// The steps of one pass in `order`: cached indices, or images preprocessed as `view` on a
    /// background thread.
    fn inputs(
        &self,
        order: Vec<usize>,
        view: View,
        cached: bool,
    ) -> Box<dyn Iterator<Item = Input>> {
        if cached {
            let chunks: Vec<Vec<usize>> = order
                .chunks(self.batch_size)
                .map(<[usize]>::to_vec)
                .collect();
            Box::new(chunks.into_iter().map(Input::Cached))
        } else {
            let rx = batches::stream(
                self.samples.to_vec(),
                order,
                self.batch_size,
                self.side,
                self.kind.normalization(),
                view,
            );
            Box::new(rx.into_iter().map(Input::Images))
        }
    }
}

/// Logits and labels of one step: the whole network on images, or the groups after the cache's
/// boundary on cached (or just computed and cached) activations of `view`.
fn forward(
    network: &Network,
    cache: Option<&mut FeatureCache>,
    input: Input,
    view: usize,
    samples: &[Sample],
    device: &Device,
) -> Result<(Tensor<2>, Tensor<1, Int>), TrainError> {
    Ok(match (input, cache) {
        (Input::Images(batch), None) => {
            let (x, y) = tensors(batch, device);
            (network.forward(x), y)
        }
        (Input::Images(batch), Some(cache)) => {
            let indices = batch.indices.clone();
            let (x, y) = tensors(batch, device);
            let features = cache
                .fill(network, x, view, &indices)
                .map_err(TrainError::Device)?;
            (network.forward_after(features, cache.boundary), y)
        }
        (Input::Cached(indices), Some(cache)) => {
            let features = cache
                .read(view, &indices, device)
                .map_err(TrainError::Device)?;
            let y = indices.iter().map(|&i| samples[i].label as i64).collect();
            (
                network.forward_after(features, cache.boundary),
                label_tensor(y, device),
            )
        }
        (Input::Cached(_), None) => {
            return Err(TrainError::Device("cached input without a cache".into()));
        }
    })
}

/// How many leading layer groups are frozen (at most the backbone's groups): the boundary of
/// the part that can be cached.
fn frozen_prefix(frozen: &[bool], backbone_groups: usize) -> usize {
    frozen
        .iter()
        .take(backbone_groups)
        .take_while(|f| **f)
        .count()
}

fn tensors(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.len();
    let s = batch.side as usize;
    let x = Tensor::<4>::from_data(TensorData::new(batch.images, [n, 3, s, s]), device);
    (x, label_tensor(batch.labels, device))
}

fn label_tensor(labels: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = labels.len();
    Tensor::from_data(TensorData::new(labels, [n]), device)
}

fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    t.try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

fn scalar_int(t: Tensor<1, Int>) -> Result<i64, TrainError> {
    t.try_into_scalar::<i64>()
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

fn summarize(dataset: &Dataset) -> DataSummary {
    let count = |samples: &[Sample]| {
        let mut counts = vec![0; dataset.classes.len()];
        for s in samples {
            counts[s.label] += 1;
        }
        counts
    };
    DataSummary {
        root: dataset.root.clone(),
        layout: dataset.layout,
        classes: dataset.classes.clone(),
        train_counts: count(&dataset.train),
        val_counts: count(&dataset.val),
        skipped: dataset.skipped.clone(),
        empty_classes: dataset.empty_classes.clone(),
        fingerprint: dataset.fingerprint.clone(),
    }
}

/// The pre-trained weight file for `config`: the one it names, one already here, or one
/// downloaded now from the catalogue (with progress events).
fn weights_path(
    config: &TrainConfig,
    control: &Control,
    events: &EventSink,
) -> Result<PathBuf, TrainError> {
    if let Some(path) = &config.weights {
        return Ok(path.clone());
    }
    let no_weights = || TrainError::NoWeights {
        model: config.model.name(),
        file: config.model.weights_file_name().unwrap_or_default().into(),
        searched: crate::assets::weight_search_dirs()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let entry = crate::models::zoo::entry(config.model).ok_or_else(no_weights)?;
    let last = std::sync::atomic::AtomicU64::new(0);
    let progress = |done: u64, total: Option<u64>| {
        // About one event per percent (or per MB when the size is unknown).
        let step = total.map_or(1 << 20, |t| (t / 100).max(1));
        let at_end = total == Some(done);
        if at_end || done >= last.load(std::sync::atomic::Ordering::Relaxed) + step {
            last.store(done, std::sync::atomic::Ordering::Relaxed);
            events.send(TrainEvent::Downloading {
                file: entry.file_name.to_string(),
                done,
                total,
            });
        }
    };
    // Found here (bundled or cached) or downloaded; without an address, it must be picked.
    crate::models::download::ensure(entry, &progress, control.cancel_flag()).map_err(|e| match e {
        crate::models::download::DownloadError::NoUrl(_) => no_weights(),
        e => TrainError::Download(e.to_string()),
    })
}

/// Builds the network the config asks for: the pre-trained backbone in `weights` (or random
/// weights without one) and a new head.
fn build_network(
    config: &TrainConfig,
    classes: usize,
    input_size: u32,
    device: &Device,
    weights: Option<&Path>,
) -> Result<Network, TrainError> {
    let spec = NetworkSpec {
        kind: config.model,
        classes,
        head: config.head.clone(),
        input_size,
    };
    Ok(match weights {
        Some(path) => Network::pretrained(&spec, path, false, Some(config.seed), device)?.0,
        None => Network::new_seeded(&spec, device, config.seed),
    })
}

/// State carried from epoch to epoch.
struct Progress {
    epoch: usize,
    best: Option<(usize, f64, f64)>,
    since_best: usize,
    cancelled: bool,
    early_stopped: bool,
}

/// Everything a stage needs that does not change between stages.
struct Context<'a> {
    config: &'a TrainConfig,
    control: &'a Control,
    events: &'a EventSink,
    dataset: &'a Dataset,
    device: Device,
    run: RunDir,
    input_size: u32,
    backend: device::Backend,
}

/// What one stage trains.
struct StagePlan<'a> {
    /// 1 or 2.
    stage: u8,
    epochs: usize,
    /// Base learning rate.
    lr: f64,
    /// Which groups are frozen.
    frozen: &'a [bool],
}

impl Context<'_> {
    /// One stage of `epochs` epochs at base rate `lr`. Returns the trained network.
    fn stage(
        &mut self,
        plan: StagePlan,
        mut network: Network,
        mut optimizer: ModuleOptimizer,
        progress: &mut Progress,
    ) -> Result<Network, TrainError> {
        let StagePlan {
            stage,
            epochs,
            lr,
            frozen,
        } = plan;
        let config = self.config;
        let train = &self.dataset.train;
        let batches_per_epoch = train.len().div_ceil(config.batch_size);
        let total_steps = epochs * batches_per_epoch;
        let kind = config.model;
        let views = if config.augment.enabled {
            config.feature_cache.augmented_views
        } else {
            1
        };
        let boundary = frozen_prefix(frozen, network.backbone_groups());
        let memory = config.feature_cache.memory_mib << 20;
        let spill = |name: &str| {
            self.run
                .path
                .join(format!("feature-cache-stage{stage}-{name}.bin"))
        };
        let mut cache = (config.feature_cache.enabled && boundary > 0)
            .then(|| FeatureCache::new(boundary, train.len(), views, memory, spill("train")));
        let mut val_cache = (config.feature_cache.enabled && boundary > 0)
            .then(|| FeatureCache::new(boundary, self.dataset.val.len(), 1, memory, spill("val")));
        let mut shuffle = Rng::new(config.seed, 5 + stage as u64);
        for stage_epoch in 0..epochs {
            progress.epoch += 1;
            let epoch = progress.epoch;
            let started = Instant::now();
            let mut order: Vec<usize> = (0..train.len()).collect();
            shuffle.shuffle(&mut order);
            // With the cache, epoch e trains on view e mod V; a view is computed the first time.
            let view_index = stage_epoch % views;
            let view = match &cache {
                Some(_) if view_index == 0 => View::Eval,
                Some(_) => View::Train {
                    augment: config.augment.clone(),
                    seed: config.seed.wrapping_add(view_index as u64 * 7919),
                },
                None => View::Train {
                    augment: config.augment.clone(),
                    seed: config.seed.wrapping_add(epoch as u64 * 7919),
                },
            };
            let from_cache = cache.as_ref().is_some_and(|c| c.has_view(view_index));
            let batches = Batches {
                samples: train,
                batch_size: config.batch_size,
                side: self.input_size,
                kind,
            };
            let inputs = batches.inputs(order, view, from_cache);
            let mut loss_sum = 0.0;
            let mut seen = 0usize;
            let mut step_start = Instant::now();
            for (b, input) in inputs.enumerate() {
                let events = self.events;
                self.control.wait_while_paused(
                    || events.send(TrainEvent::Paused),
                    || events.send(TrainEvent::Resumed),
                );
                if self.control.is_cancelled() {
                    progress.cancelled = true;
                    progress.epoch -= 1;
                    return Ok(network);
                }
                let step = stage_epoch * batches_per_epoch + b;
                if step == 0 && self.backend == device::Backend::Wgpu {
                    self.events.send(TrainEvent::CompilingKernels);
                }
                let step_lr = optim::lr_at(config.optimizer.schedule, lr, step, total_steps);
                let (logits, y) = forward(
                    &network,
                    cache.as_mut(),
                    input,
                    view_index,
                    train,
                    &self.device,
                )?;
                let n = y.dims()[0];
                let loss = cross_entropy(logits, y);
                let value = scalar(loss.clone())?;
                if !value.is_finite() {
                    return Err(TrainError::NonFiniteLoss {
                        value,
                        epoch,
                        batch: b + 1,
                        lr: step_lr,
                    });
                }
                let grads = GradientsParams::from_grads(loss.backward(), &network);
                network = optimizer.step(step_lr, network, grads);
                loss_sum += value * n as f64;
                seen += n;
                let now = Instant::now();
                let secs = now.duration_since(step_start).as_secs_f64();
                step_start = now;
                self.events.send(TrainEvent::Batch(BatchProgress {
                    stage,
                    epoch,
                    batch: b + 1,
                    batches: batches_per_epoch,
                    loss: value,
                    lr: step_lr,
                    images_per_sec: n as f64 / secs.max(1e-9),
                    seconds: secs,
                }));
            }
            let train_secs = started.elapsed().as_secs_f64();
            let eval_device = self.device.clone().without_autodiff();
            let (val_loss, val_accuracy) = evaluate_with(
                &network.valid(),
                val_cache.as_mut(),
                &self.dataset.val,
                self.input_size,
                kind,
                config.batch_size,
                &eval_device,
            )?;
            let has_val = !self.dataset.val.is_empty();
            let metrics = EpochMetrics {
                stage,
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                val_loss: has_val.then_some(val_loss),
                val_accuracy: has_val.then_some(val_accuracy),
                images_per_sec: seen as f64 / train_secs.max(1e-9),
                seconds: started.elapsed().as_secs_f64(),
                cached_images: if from_cache { seen } else { 0 },
            };
            self.run
                .push_metrics(&metrics)
                .map_err(folder_error(&self.run.path))?;
            self.events.send(TrainEvent::Epoch(metrics));

            // Without a validation set the latest epoch counts as the best.
            let score = if has_val { val_loss } else { -(epoch as f64) };
            let improved = progress.best.is_none_or(|(_, best, _)| score < best);
            if improved {
                progress.best = Some((epoch, score, val_accuracy));
                progress.since_best = 0;
                let path = self.run.checkpoint_path();
                save_checkpoint(&network.valid(), &path)?;
                self.events.send(TrainEvent::Checkpoint { path, epoch });
            } else {
                progress.since_best += 1;
                if config
                    .early_stopping_patience
                    .is_some_and(|p| progress.since_best >= p)
                {
                    progress.early_stopped = true;
                    return Ok(network);
                }
            }
        }
        Ok(network)
    }
}

/// Saves the network's weights (written to a scratch file and renamed by the store).
pub fn save_checkpoint(network: &Network, path: &std::path::Path) -> Result<(), TrainError> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    network
        .save_into(&mut store)
        .map_err(|e| TrainError::RunFolder {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Runs a whole training run on the calling thread, reporting through `events`.
pub fn run(
    config: &TrainConfig,
    control: &Control,
    events: &EventSink,
) -> Result<RunSummary, TrainError> {
    let started = Instant::now();
    config.validate()?;
    let compute = device::select(config.device);
    events.send(TrainEvent::Device {
        backend: compute.backend,
        description: compute.description.clone(),
    });

    let input_size = config.input_size.unwrap_or(config.model.input_size());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let last_report = std::sync::atomic::AtomicUsize::new(0);
    let progress = |done: usize, total: usize| {
        // About a hundred updates at most, and the last one always.
        let step = (total / 100).max(1);
        if done == total || done >= last_report.load(std::sync::atomic::Ordering::Relaxed) + step {
            last_report.store(done, std::sync::atomic::Ordering::Relaxed);
            events.send(TrainEvent::Preparing { done, total });
        }
    };
    let dataset = data::prepare(
        &config.data,
        &PrepareOptions {
            input_size,
            val_fraction: config.split.val_fraction,
            seed: config.seed,
            max_images_per_class: config.max_images_per_class,
            threads,
        },
        &progress,
        control.cancel_flag(),
    )?;
    let summary = summarize(&dataset);
    events.send(TrainEvent::DataReady(summary.clone()));
    for skipped in &dataset.skipped {
        events.send(TrainEvent::Warning(format!(
            "skipped {}: {}",
            skipped.path.display(),
            skipped.reason
        )));
    }
    for class in &dataset.empty_classes {
        events.send(TrainEvent::Warning(format!(
            "class folder `{class}` has no usable image and is left out"
        )));
    }
    if dataset.train.is_empty() {
        return Err(TrainError::NoTrainingImages);
    }
    if dataset.val.is_empty() {
        events.send(TrainEvent::Warning(
            "no validation images: the checkpoint is simply the last epoch".into(),
        ));
    }

    let device = compute.device.clone().autodiff();
    let weights = if config.from_scratch || config.model.weights_file_name().is_none() {
        None
    } else {
        Some(weights_path(config, control, events)?)
    };
    let network = build_network(
        config,
        dataset.classes.len(),
        input_size,
        &device,
        weights.as_deref(),
    )?;
    let groups = network.layer_groups(input_size);
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let frozen = config.freeze.resolve(&names);
    if frozen.iter().all(|f| *f) {
        return Err(TrainError::NothingToTrain);
    }
    if config.from_scratch
        && frozen.iter().any(|f| *f)
        && config.model.weights_file_name().is_some()
    {
        events.send(TrainEvent::Warning(format!(
            "{} of {} layer groups are frozen but start from random weights: they will stay random. Unfreeze everything to train from scratch.",
            frozen.iter().filter(|f| **f).count(),
            frozen.len()
        )));
    }
    let network = network.with_frozen(&frozen);
    let total_params: usize = groups.iter().map(|g| g.params).sum();
    let stage1_params = trainable_param_count(&network);

    let runs_root = config
        .runs_dir
        .clone()
        .unwrap_or_else(crate::assets::default_runs_dir);
    let run = RunDir::create(&runs_root, config.model.name()).map_err(folder_error(&runs_root))?;
    run.write_start(config, &dataset.classes)
        .map_err(folder_error(&run.path))?;
    let mut record = RunRecord {
        graft_version: env!("CARGO_PKG_VERSION").into(),
        device: compute.description.clone(),
        input_size,
        data: Some(summary),
        summary: None,
    };
    run.write_record(&record).map_err(folder_error(&run.path))?;
    events.send(TrainEvent::Started(RunInfo {
        run_dir: run.path.clone(),
        model: config.model.name().into(),
        input_size,
        groups,
        frozen: frozen.clone(),
        total_params,
        trainable_params: stage1_params,
        weights: weights.clone(),
    }));

    let run_path = run.path.clone();
    let mut ctx = Context {
        config,
        control,
        events,
        dataset: &dataset,
        device,
        run,
        input_size,
        backend: compute.backend,
    };
    let mut progress = Progress {
        epoch: 0,
        best: None,
        since_best: 0,
        cancelled: false,
        early_stopped: false,
    };
    let lr = config.optimizer.lr;
    events.send(TrainEvent::StageStarted {
        stage: 1,
        epochs: config.epochs,
        lr,
        trainable_params: stage1_params,
    });
    let mut network = ctx.stage(
        StagePlan {
            stage: 1,
            epochs: config.epochs,
            lr,
            frozen: &frozen,
        },
        network,
        optim::build(&config.optimizer),
        &mut progress,
    )?;

    if let Some(fine_tune) = &config.fine_tune
        && !progress.cancelled
        && !progress.early_stopped
        && fine_tune.epochs > 0
    {
        let thawed: Vec<bool> = names
            .iter()
            .zip(&frozen)
            .map(|(name, was_frozen)| {
                *was_frozen && !(fine_tune.unfreeze.is_empty() || fine_tune.unfreeze.contains(name))
            })
            .collect();
        network = network.with_frozen(&thawed);
        if fine_tune.freeze_batch_norm && weights.is_some() {
            network = network.with_batch_norm_frozen();
        }
        let stage_lr = lr * fine_tune.lr_factor;
        let params = trainable_param_count(&network);
        events.send(TrainEvent::StageStarted {
            stage: 2,
            epochs: fine_tune.epochs,
            lr: stage_lr,
            trainable_params: params,
        });
        progress.since_best = 0;
        network = ctx.stage(
            StagePlan {
                stage: 2,
                epochs: fine_tune.epochs,
                lr: stage_lr,
                frozen: &thawed,
            },
            network,
            optim::build(&config.optimizer),
            &mut progress,
        )?;
    }
    drop(network);

    let summary = RunSummary {
        run_dir: run_path.clone(),
        epochs: progress.epoch,
        best_epoch: progress.best.map(|b| b.0),
        best_val_loss: progress
            .best
            .and_then(|b| (!dataset.val.is_empty()).then_some(b.1)),
        best_val_accuracy: progress
            .best
            .and_then(|b| (!dataset.val.is_empty()).then_some(b.2)),
        cancelled: progress.cancelled,
        early_stopped: progress.early_stopped,
        seconds: started.elapsed().as_secs_f64(),
    };
    record.summary = Some(summary.clone());
    ctx.run
        .write_record(&record)
        .map_err(folder_error(&run_path))?;
    Ok(summary)
}
