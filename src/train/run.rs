//! A whole run on the calling thread: prepare the data → find the weights → build the network →
//! train stage 1 (and stage 2) → record the outcome.

use std::time::Instant;

use burn::module::ParamGroup;

use super::error::{TrainError, folder_error};
use super::events::{RunInfo, TrainEvent};
use super::prepare::prepare_data;
use super::pretrained::{build_network, pretrained_weights};
use super::stage::{Progress, RunContext, StagePlan};
use super::telemetry::Telemetry;
use super::test_set::score_test;
use super::{Control, EventSink, optim};
use crate::config::{FineTuneConfig, TrainConfig};
use crate::data::Dataset;
use crate::data::manifest::Manifest;
use crate::models::{LayerGroup, Network, trainable_param_count};
use std::panic::AssertUnwindSafe;

use crate::platform::device::{self, Backend, DevicePreference};
use crate::platform::fsutil::ensure_outside;
use crate::run::folder::CreateError;
use crate::run::{DataSummary, RunDir, RunRecord, RunSummary};

/// The network about to train, with its layer list and stage-1 freeze plan.
struct Model {
    network: Network,
    groups: Vec<LayerGroup>,
    frozen: Vec<bool>,
    weights: Option<std::path::PathBuf>,
}

/// Runs a whole training run on the calling thread, reporting through `events`. When the GPU
/// fails part-way (an error or a panic in its driver), the run starts again on the CPU, with a
/// warning that says so.
pub fn run(
    config: &TrainConfig,
    control: &Control,
    events: &EventSink,
) -> Result<RunSummary, TrainError> {
    config.validate()?;
    // Checked again where the folder is made; here so that a wrong folder fails at once.
    let runs_root = config.runs_root();
    ensure_outside(&runs_root, &config.data).map_err(CreateError::from)?;
    let compute = device::select(config.device);
    if compute.backend != Backend::Wgpu {
        return run_on(config, compute, control, events);
    }
    let description = compute.description.clone();
    let why = match std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_on(config, compute, control, events)
    })) {
        Ok(Err(TrainError::Device(why))) => why,
        Ok(other) => return other,
        Err(panic) => super::panic_message(&*panic),
    };
    if control.is_cancelled() {
        return Err(TrainError::Device(why));
    }
    events.send(TrainEvent::Warning(format!(
        "the GPU ({description}) failed: {why}. Training again from the start on the CPU."
    )));
    run_on(
        config,
        device::select(DevicePreference::Cpu),
        control,
        events,
    )
}

/// The run on one device.
fn run_on(
    config: &TrainConfig,
    compute: device::ComputeDevice,
    control: &Control,
    events: &EventSink,
) -> Result<RunSummary, TrainError> {
    let started = Instant::now();
    events.send(TrainEvent::Device {
        backend: compute.backend,
        description: compute.description.clone(),
    });
    let input_size = config.effective_input_size();
    let (dataset, summary) = prepare_data(config, input_size, control, events)?;
    check_split(&dataset, events)?;

    let device = compute.device.clone().autodiff();
    let model = build_model(config, &dataset, &device, control, events)?;
    let stage1_params = trainable_param_count(&model.network);
    let class_weights = super::loss::class_weights(config.balance, &summary.train_counts);
    let (run, mut record) = open_run_folder(config, &dataset, summary, &compute.description)?;
    events.send(TrainEvent::Started(RunInfo {
        run_dir: run.path.clone(),
        model: config.model.name().into(),
        input_size,
        total_params: model.groups.iter().map(|g| g.params).sum(),
        groups: model.groups.clone(),
        frozen: model.frozen.clone(),
        trainable_params: stage1_params,
        weights: model.weights.clone(),
    }));

    let group_ids = model.network.group_param_ids();
    let telemetry = Telemetry::start(&model.network, &model.groups, &group_ids);
    let mut ctx = RunContext {
        param_groups: group_ids.into_iter().map(ParamGroup::from_ids).collect(),
        telemetry,
        config,
        control,
        events,
        dataset: &dataset,
        device,
        run,
        input_size,
        backend: compute.backend,
        class_weights,
    };
    let mut progress = Progress::default();
    let network = train_stages(&mut ctx, model, stage1_params, &mut progress)?;
    let test = score_test(&ctx, network)?;

    let has_val = !dataset.val.is_empty();
    let summary = RunSummary {
        run_dir: ctx.run.path.clone(),
        epochs: progress.epoch,
        best_epoch: progress.best.map(|b| b.epoch),
        best_val_loss: progress.best.and_then(|b| has_val.then_some(b.score)),
        best_val_accuracy: progress
            .best
            .and_then(|b| has_val.then_some(b.val_accuracy)),
        test,
        cancelled: progress.cancelled,
        early_stopped: progress.early_stopped,
        seconds: started.elapsed().as_secs_f64(),
        decoded_images: Some(dataset.images.stats()),
    };
    record.summary = Some(summary.clone());
    ctx.run
        .write_record(&record)
        .map_err(folder_error(&ctx.run.path))?;
    Ok(summary)
}

/// Refuses a split without training images; warns about one without validation images.
fn check_split(dataset: &Dataset, events: &EventSink) -> Result<(), TrainError> {
    if dataset.train.is_empty() {
        return Err(TrainError::NoTrainingImages);
    }
    if dataset.val.is_empty() {
        events.send(TrainEvent::Warning(
            "no validation images: the checkpoint is simply the last epoch".into(),
        ));
    }
    Ok(())
}

/// The network with its weights loaded and its stage-1 groups frozen.
fn build_model(
    config: &TrainConfig,
    dataset: &Dataset,
    device: &burn::tensor::Device,
    control: &Control,
    events: &EventSink,
) -> Result<Model, TrainError> {
    let weights = pretrained_weights(config, control, events)?;
    let network = build_network(config, dataset.classes.len(), device, weights.as_deref())?;
    let groups = network.layer_groups(config.effective_input_size());
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
    Ok(Model {
        network: network.with_frozen(&frozen),
        groups,
        frozen,
        weights,
    })
}

/// Creates the run's folder with its config, labels and a first `run.json`.
fn open_run_folder(
    config: &TrainConfig,
    dataset: &Dataset,
    summary: DataSummary,
    device: &str,
) -> Result<(RunDir, RunRecord), TrainError> {
    let runs_root = config.runs_root();
    let run = RunDir::create(&runs_root, config.model.name(), &config.data)?;
    run.write_start(config, &dataset.classes)
        .map_err(folder_error(&run.path))?;
    run.write_manifest(&Manifest::of(dataset))
        .map_err(folder_error(&run.path))?;
    let record = RunRecord {
        graft_version: env!("CARGO_PKG_VERSION").into(),
        device: device.into(),
        input_size: config.effective_input_size(),
        data: Some(summary),
        summary: None,
    };
    run.write_record(&record).map_err(folder_error(&run.path))?;
    Ok((run, record))
}

/// Stage 1 on the model as built, then stage 2 when the config asks for it and stage 1 was
/// neither cancelled nor stopped early; the network as the last epoch left it.
fn train_stages(
    ctx: &mut RunContext,
    model: Model,
    stage1_params: usize,
    progress: &mut Progress,
) -> Result<Network, TrainError> {
    let config = ctx.config;
    let names: Vec<String> = model.groups.iter().map(|g| g.name.clone()).collect();
    let rates = config
        .optimizer
        .layer_rates
        .resolve(config.optimizer.lr, &model.frozen, &names);
    let stage1 = StagePlan::new(1, config.epochs, rates, &model.frozen);
    ctx.events.send(stage1.started(stage1_params));
    let optimizer = optim::build(&config.optimizer);
    let network = ctx.train_stage(stage1, model.network, optimizer, progress)?;
    match &config.fine_tune {
        Some(fine_tune)
            if !progress.cancelled && !progress.early_stopped && fine_tune.epochs > 0 =>
        {
            let pretrained = model.weights.is_some();
            let stage2 = Stage2 {
                fine_tune,
                groups: &model.groups,
                frozen: &model.frozen,
                pretrained,
            };
            stage2.train(ctx, network, progress)
        }
        _ => Ok(network),
    }
}

/// Stage 2: more groups thawed, a lower rate, a fresh optimiser.
struct Stage2<'a> {
    fine_tune: &'a FineTuneConfig,
    groups: &'a [LayerGroup],
    /// Stage 1's plan.
    frozen: &'a [bool],
    /// Whether the backbone started from pre-trained weights.
    pretrained: bool,
}

impl Stage2<'_> {
    fn train(
        &self,
        ctx: &mut RunContext,
        network: Network,
        progress: &mut Progress,
    ) -> Result<Network, TrainError> {
        let names: Vec<String> = self.groups.iter().map(|g| g.name.clone()).collect();
        let frozen = self.fine_tune.frozen(&names, self.frozen);
        let mut network = network.with_frozen(&frozen);
        if self.fine_tune.freeze_batch_norm && self.pretrained {
            network = network.with_batch_norm_frozen();
        }
        let lr = ctx.config.optimizer.lr * self.fine_tune.lr_factor;
        let rates = self.fine_tune.layer_rates.resolve(lr, &frozen, &names);
        progress.since_best = 0;
        let plan = StagePlan::new(2, self.fine_tune.epochs, rates, &frozen);
        ctx.events
            .send(plan.started(trainable_param_count(&network)));
        let optimizer = optim::build(&ctx.config.optimizer);
        ctx.train_stage(plan, network, optimizer, progress)
    }
}
