//! One stage of a run: epochs of steps over the training images, each followed by validation,
//! the best checkpoint kept and early stopping applied.

use std::path::Path;
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;

use super::error::{TrainError, folder_error};
use super::eta::StageClock;
use super::evaluate::evaluate_with;
use super::events::{BatchProgress, TrainEvent};
use super::feature_cache::FeatureCache;
use super::loss::{cross_entropy, weighted_cross_entropy};
use super::step::{Batches, Input, forward, frozen_prefix, scalar, scalar_int};
use super::telemetry::Telemetry;
use super::{Control, EventSink, optim};
use crate::config::TrainConfig;
use crate::data::batches::View;
use crate::data::rng::Rng;
use crate::data::{Dataset, Sample};
use crate::models::Network;
use crate::platform::device::Backend;
use crate::run::scores::{StoredScore, StoredScores, forget_scores, write_scores};
use crate::run::{EpochMetrics, RunDir};

/// The head fit stops once a pass lowers the training loss by less than this share.
const FIT_TOLERANCE: f64 = 0.01;

/// The epoch whose weights the checkpoint holds.
#[derive(Clone, Copy, Debug)]
pub(super) struct BestEpoch {
    /// Its number, from 1 across both stages.
    pub epoch: usize,
    /// What it was chosen by: validation loss, or minus the epoch without a validation set.
    pub score: f64,
    /// Its validation accuracy (NaN without a validation set).
    pub val_accuracy: f64,
}

/// State carried from epoch to epoch, across both stages.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// The checkpoint's epoch.
    pub best: Option<BestEpoch>,
    /// Epochs since the checkpoint's.
    pub since_best: usize,
    /// Stopped by the user.
    pub cancelled: bool,
    /// Stopped because validation loss stopped improving.
    pub early_stopped: bool,
}

impl Progress {
    /// The user cancelled before the current epoch completed: it does not count.
    fn abandon_epoch(&mut self) {
        self.cancelled = true;
        self.epoch -= 1;
    }
}

/// What stays the same across the stages of a run.
pub(super) struct RunContext<'a> {
    pub config: &'a TrainConfig,
    pub control: &'a Control,
    pub events: &'a EventSink,
    pub dataset: &'a Dataset,
    /// The autodiff device steps run on.
    pub device: Device,
    pub run: RunDir,
    pub input_size: u32,
    pub backend: Backend,
    /// Each class's loss weight, when the config evens out the classes.
    pub class_weights: Option<Vec<f32>>,
    /// The parameters of each layer group, for per-group rates.
    pub param_groups: Vec<ParamGroup>,
    /// What each group's weights do.
    pub telemetry: Telemetry,
}

/// What one stage trains.
pub(super) struct StagePlan<'a> {
    /// 1 or 2.
    pub stage: u8,
    pub epochs: usize,
    /// Base learning rate (the head's).
    pub lr: f64,
    /// Each group's rate (0 when frozen), before the schedule.
    pub rates: Vec<f64>,
    /// Which groups are frozen.
    pub frozen: &'a [bool],
}

impl<'a> StagePlan<'a> {
    /// A stage of `epochs` at each group's rate in `rates`; its base rate is the highest.
    pub fn new(stage: u8, epochs: usize, rates: Vec<f64>, frozen: &'a [bool]) -> Self {
        Self {
            stage,
            epochs,
            lr: rates.iter().copied().fold(0.0, f64::max),
            rates,
            frozen,
        }
    }

    /// The event that announces this stage.
    pub fn started(&self, trainable_params: usize) -> TrainEvent {
        TrainEvent::StageStarted {
            stage: self.stage,
            epochs: self.epochs,
            lr: self.lr,
            rates: self.rates.clone(),
            trainable_params,
        }
    }
}

/// A stage in progress.
struct Stage<'a> {
    plan: StagePlan<'a>,
    optimizer: ModuleOptimizer,
    /// The frozen prefix's output for the training images, when the stage starts frozen.
    cache: Option<FeatureCache>,
    /// The same for the validation images.
    val_cache: Option<FeatureCache>,
    /// Fixed views kept per training image in the cache.
    views: usize,
    batches_per_epoch: usize,
    /// Times the steps and prices the rest of the stage.
    clock: StageClock,
    /// Epochs of later stages.
    later_epochs: usize,
}

/// Whether the stage goes on after an epoch or a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The images an epoch trains on: which view, and whether it comes from the cache.
struct EpochView {
    index: usize,
    view: View,
    from_cache: bool,
}

/// Loss and image count summed over an epoch's steps.
#[derive(Default)]
struct EpochTotals {
    loss_sum: f64,
    seen: usize,
    /// Training images classified right as the steps ran.
    correct: usize,
}

impl RunContext<'_> {
    /// Trains `network` for one stage and returns it.
    pub fn train_stage(
        &mut self,
        plan: StagePlan,
        mut network: Network,
        optimizer: ModuleOptimizer,
        progress: &mut Progress,
    ) -> Result<Network, TrainError> {
        let mut shuffle = Rng::new(self.config.seed, 5 + plan.stage as u64);
        let mut stage = self.begin_stage(plan, optimizer, &network);
        for stage_epoch in 0..stage.plan.epochs {
            let mut order: Vec<usize> = (0..self.dataset.train.len()).collect();
            shuffle.shuffle(&mut order);
            let flow;
            (network, flow) = self.epoch(&mut stage, network, stage_epoch, order, progress)?;
            if flow == Flow::Stop {
                break;
            }
        }
        Ok(network)
    }

    fn begin_stage<'p>(
        &self,
        plan: StagePlan<'p>,
        optimizer: ModuleOptimizer,
        network: &Network,
    ) -> Stage<'p> {
        let config = self.config;
        let train = &self.dataset.train;
        let views = if config.augment.enabled {
            config.feature_cache.augmented_views
        } else {
            1
        };
        let boundary = frozen_prefix(plan.frozen, network.backbone_groups());
        let memory = config.feature_cache.memory_mib << 20;
        let cached = config.feature_cache.enabled && boundary > 0;
        let cache_for = |images: usize, views: usize, name: &str| {
            let spill = self
                .run
                .path
                .join(format!("feature-cache-stage{}-{name}.bin", plan.stage));
            cached.then(|| FeatureCache::new(boundary, images, views, memory, spill))
        };
        let batches_per_epoch = train.len().div_ceil(config.batch_size);
        let validation_batches = self.dataset.val.len().div_ceil(config.batch_size);
        let clock = StageClock::new(
            plan.epochs,
            batches_per_epoch,
            cached,
            views,
            validation_batches,
        );
        let later_epochs = if plan.stage == 1 {
            config.total_epochs().saturating_sub(plan.epochs)
        } else {
            0
        };
        Stage {
            cache: cache_for(train.len(), views, "train"),
            val_cache: cache_for(self.dataset.val.len(), 1, "val"),
            views,
            batches_per_epoch,
            clock,
            later_epochs,
            plan,
            optimizer,
        }
    }

    /// How a pass over `samples` is cut into steps in this run.
    fn batches<'s>(&self, samples: &'s [Sample]) -> Batches<'s> {
        Batches {
            samples,
            batch_size: self.config.batch_size,
            side: self.input_size,
            kind: self.config.model,
        }
    }

    /// With the cache, epoch `e` of a stage trains on view `e mod views`, computed the first
    /// time it is used; without it, every epoch draws new random views.
    fn epoch_view(&self, stage: &Stage, stage_epoch: usize, epoch: usize) -> EpochView {
        let augment = self.config.augment.clone();
        let seed = self.config.seed;
        let index = stage_epoch % stage.views;
        let view = match &stage.cache {
            Some(_) if index == 0 => View::Eval,
            Some(_) => View::Train {
                augment,
                seed: seed.wrapping_add(index as u64 * 7919),
            },
            None => View::Train {
                augment,
                seed: seed.wrapping_add(epoch as u64 * 7919),
            },
        };
        EpochView {
            index,
            view,
            from_cache: stage.cache.as_ref().is_some_and(|c| c.has_view(index)),
        }
    }

    fn epoch(
        &mut self,
        stage: &mut Stage,
        mut network: Network,
        stage_epoch: usize,
        order: Vec<usize>,
        progress: &mut Progress,
    ) -> Result<(Network, Flow), TrainError> {
        progress.epoch += 1;
        let epoch = progress.epoch;
        let started = Instant::now();
        let view = self.epoch_view(stage, stage_epoch, epoch);
        let batches = self.batches(&self.dataset.train);
        let mut totals = EpochTotals::default();
        let inputs = batches.inputs(order, view.view.clone(), view.from_cache);
        let mut step_start = Instant::now();
        for (b, input) in inputs.enumerate() {
            let input = input?;
            if self.wait_or_cancel() == Flow::Stop {
                progress.abandon_epoch();
                return Ok((network, Flow::Stop));
            }
            let position = StepPosition {
                epoch,
                batch: b + 1,
                step: stage_epoch * stage.batches_per_epoch + b,
            };
            let outcome;
            (network, outcome) = self.step(stage, network, input, view.index, &position)?;
            totals.loss_sum += outcome.loss * outcome.images as f64;
            totals.seen += outcome.images;
            totals.correct += outcome.correct;
            let now = Instant::now();
            let secs = now.duration_since(step_start).as_secs_f64();
            step_start = now;
            let prefix_secs = stage
                .cache
                .as_mut()
                .map_or(0.0, FeatureCache::take_fill_seconds);
            stage.clock.record_step(view.from_cache, secs, prefix_secs);
            let seconds_left = stage.clock.seconds_left(stage_epoch, position.batch);
            self.events.send(TrainEvent::Batch(BatchProgress {
                stage: stage.plan.stage,
                epoch,
                batch: position.batch,
                batches: stage.batches_per_epoch,
                loss: outcome.loss,
                lr: outcome.lr,
                images_per_sec: outcome.images as f64 / secs.max(1e-9),
                seconds: secs,
                seconds_left,
                later_epochs: stage.later_epochs,
            }));
        }
        if self.fits_head(stage, &network, stage_epoch, &view) {
            let flow;
            (network, flow) = self.fit_head(stage, network, epoch)?;
            if flow == Flow::Stop {
                progress.abandon_epoch();
                return Ok((network, Flow::Stop));
            }
        }
        let flow = self.end_epoch(stage, &network, &view, totals, started, progress)?;
        Ok((network, flow))
    }

    /// Whether the head is fitted on the cached features after this epoch: after stage 1's
    /// first pass, when it cached every training image's centre crop through the whole
    /// backbone (so that a pass trains only the head and costs next to nothing), and no
    /// fine-tuning stage follows: a head fitted that hard made stage 2 worse (on the demo set
    /// its epochs' best validation loss was 0.60, against 0.47 without the fit).
    fn fits_head(
        &self,
        stage: &Stage,
        network: &Network,
        stage_epoch: usize,
        view: &EpochView,
    ) -> bool {
        let whole_backbone = stage
            .cache
            .as_ref()
            .is_some_and(|c| c.boundary == network.backbone_groups() && c.has_view(0));
        stage.plan.stage == 1
            && stage.later_epochs == 0
            && stage_epoch == 0
            && view.index == 0
            && self.config.feature_cache.fit_passes > 0
            && whole_backbone
    }

    /// More passes of the head over the cached centre-crop features, each in a new order,
    /// until the mean training loss falls by less than [`FIT_TOLERANCE`] or the passes run out.
    fn fit_head(
        &mut self,
        stage: &mut Stage,
        mut network: Network,
        epoch: usize,
    ) -> Result<(Network, Flow), TrainError> {
        let passes = self.config.feature_cache.fit_passes;
        let mut shuffle = Rng::new(self.config.seed, 17);
        let mut previous = f64::INFINITY;
        for pass in 1..=passes {
            let mut order: Vec<usize> = (0..self.dataset.train.len()).collect();
            shuffle.shuffle(&mut order);
            let mut totals = EpochTotals::default();
            for input in self
                .batches(&self.dataset.train)
                .inputs(order, View::Eval, true)
            {
                if self.wait_or_cancel() == Flow::Stop {
                    return Ok((network, Flow::Stop));
                }
                // At the rate the schedule gives right after the first pass.
                let position = StepPosition {
                    epoch,
                    batch: 0,
                    step: stage.batches_per_epoch,
                };
                let outcome;
                (network, outcome) = self.step(stage, network, input?, 0, &position)?;
                totals.loss_sum += outcome.loss * outcome.images as f64;
                totals.seen += outcome.images;
            }
            let loss = totals.loss_sum / totals.seen.max(1) as f64;
            self.events.send(TrainEvent::FittingHead {
                epoch,
                pass,
                passes,
                loss,
            });
            if loss > previous * (1.0 - FIT_TOLERANCE) {
                break;
            }
            previous = loss;
        }
        Ok((network, Flow::Continue))
    }

    /// Holds while paused; says whether the user cancelled.
    fn wait_or_cancel(&self) -> Flow {
        let events = self.events;
        self.control.wait_while_paused(
            || events.send(TrainEvent::Paused),
            || events.send(TrainEvent::Resumed),
        );
        if self.control.is_cancelled() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// One optimiser step on `input`.
    fn step(
        &mut self,
        stage: &mut Stage,
        network: Network,
        input: Input,
        view: usize,
        at: &StepPosition,
    ) -> Result<(Network, StepOutcome), TrainError> {
        if at.step == 0 && self.backend == Backend::Wgpu {
            self.events.send(TrainEvent::CompilingKernels);
        }
        let total_steps = stage.plan.epochs * stage.batches_per_epoch;
        let scale = optim::lr_at(self.config.optimizer.schedule, 1.0, at.step, total_steps);
        let lr = stage.plan.lr * scale;
        let train = &self.dataset.train;
        let (logits, y) = forward(
            &network,
            stage.cache.as_mut(),
            input,
            view,
            train,
            &self.device,
        )?;
        let images = y.dims()[0];
        let hits = logits
            .clone()
            .argmax(1)
            .reshape([images])
            .equal(y.clone())
            .int()
            .sum();
        let loss = match &self.class_weights {
            Some(weights) => weighted_cross_entropy(logits, y, weights),
            None => cross_entropy(logits, y),
        };
        let value = scalar(loss.clone())?;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                value,
                epoch: at.epoch,
                batch: at.batch,
                lr,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        self.telemetry.record_step(&network, &grads);
        let rates = optim::module_rates(&stage.plan.rates, &self.param_groups, scale);
        let network = stage.optimizer.step(rates, network, grads);
        let outcome = StepOutcome {
            correct: scalar_int(hits)? as usize,
            loss: value,
            images,
            lr,
        };
        Ok((network, outcome))
    }

    /// Validates, records the epoch, keeps the checkpoint if it is the best so far, and says
    /// whether early stopping ends the stage.
    fn end_epoch(
        &mut self,
        stage: &mut Stage,
        network: &Network,
        view: &EpochView,
        totals: EpochTotals,
        started: Instant,
        progress: &mut Progress,
    ) -> Result<Flow, TrainError> {
        let train_secs = started.elapsed().as_secs_f64();
        let eval_device = self.device.clone().without_autodiff();
        let val = self.batches(&self.dataset.val);
        let validation_started = Instant::now();
        let val_from_cache = stage.val_cache.as_ref().is_some_and(|c| c.has_view(0));
        let pass = evaluate_with(
            &network.valid(),
            stage.val_cache.as_mut(),
            &val,
            &eval_device,
        )?;
        let validation_secs = validation_started.elapsed().as_secs_f64();
        stage
            .clock
            .record_validation(val_from_cache, validation_secs);
        let score = pass.score;
        let has_val = !self.dataset.val.is_empty();
        let epoch = progress.epoch;
        let metrics = EpochMetrics {
            stage: stage.plan.stage,
            epoch,
            train_loss: totals.loss_sum / totals.seen.max(1) as f64,
            train_accuracy: (totals.seen > 0).then(|| totals.correct as f64 / totals.seen as f64),
            val_loss: has_val.then_some(score.loss),
            val_accuracy: has_val.then_some(score.accuracy),
            images_per_sec: totals.seen as f64 / train_secs.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
            cached_images: if view.from_cache { totals.seen } else { 0 },
            groups: self.telemetry.end_epoch(network)?,
        };
        self.run
            .push_metrics(&metrics)
            .map_err(folder_error(&self.run.path))?;
        self.events.send(TrainEvent::Epoch(metrics));

        // Without a validation set the latest epoch counts as the best.
        let score = BestEpoch {
            epoch,
            score: if has_val { score.loss } else { -(epoch as f64) },
            val_accuracy: score.accuracy,
        };
        if progress.best.is_none_or(|best| score.score < best.score) {
            progress.best = Some(score);
            progress.since_best = 0;
            let path = self.run.checkpoint_path();
            forget_scores(&self.run.path).map_err(folder_error(&self.run.path))?;
            save_checkpoint(&network.valid(), &path)?;
            if has_val {
                let scores = self.stored_scores(epoch, pass.logits);
                write_scores(&self.run.path, &scores).map_err(folder_error(&self.run.path))?;
            }
            self.events.send(TrainEvent::Checkpoint { path, epoch });
            return Ok(Flow::Continue);
        }
        progress.since_best += 1;
        let patience = self.config.early_stopping_patience;
        if patience.is_some_and(|p| progress.since_best >= p) {
            progress.early_stopped = true;
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// The validation images' `logits` (in split order) as the run folder keeps them.
    fn stored_scores(&self, epoch: usize, logits: Vec<Vec<f32>>) -> StoredScores {
        let root = &self.dataset.root;
        let images = self
            .dataset
            .val
            .iter()
            .zip(logits)
            .map(|(sample, logits)| StoredScore {
                file: sample
                    .path
                    .strip_prefix(root)
                    .unwrap_or(&sample.path)
                    .to_path_buf(),
                label: sample.label,
                logits,
            })
            .collect();
        StoredScores { epoch, images }
    }
}

/// Where a step is in the run.
struct StepPosition {
    /// Epoch, from 1 across both stages.
    epoch: usize,
    /// Batch within the epoch, from 1.
    batch: usize,
    /// Step within the stage, from 0.
    step: usize,
}

/// What one step did.
struct StepOutcome {
    /// Its training loss.
    loss: f64,
    /// Images in its batch.
    images: usize,
    /// Of those, classified right (before the step).
    correct: usize,
    /// Its learning rate.
    lr: f64,
}

/// Saves the network's weights (written to a scratch file and renamed by the store).
fn save_checkpoint(network: &Network, path: &Path) -> Result<(), TrainError> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    let failed = |reason: String| TrainError::RunFolder {
        path: path.to_path_buf(),
        reason,
    };
    network
        .save_into(&mut store)
        .map_err(|e| failed(e.to_string()))?;
    crate::platform::fsutil::set_normal_permissions(path).map_err(|e| failed(e.to_string()))
}
