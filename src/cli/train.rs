//! `graft train`: flags over a config file over the defaults, then one run (or the three
//! baselines) with its progress printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{CliError, bar, parse_model};
use crate::config::{
    ClassBalance, Curation, FineTuneConfig, FreezePlan, LayerRates, LrSchedule, OptimizerKind,
    TrainConfig,
};
use crate::models::{ModelKind, detect_kind};
use crate::platform::interval;
use crate::run::{DataSummary, EpochMetrics, RunSummary, advice};
use crate::train::{self, BatchProgress, TrainEvent};

/// `graft train` flags; each overrides the config file (if any), which overrides the defaults.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Image folder: one sub-folder per class (or train/ and val/ with class sub-folders).
    #[arg(long)]
    data: PathBuf,
    /// A JSON config to start from (e.g. a run's config.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Train three runs on the same split and seed (pre-trained and frozen, pre-trained then
    /// fine-tuned, from scratch) and print them side by side.
    #[arg(long)]
    baselines: bool,
    /// Model: efficientnet-lite0/1/2, resnet18/34/50/101, mobilenet-v2, mobilenet-v3-small/large
    /// (`graft layers --help` lists them); default: the weight file's, or efficientnet-lite0.
    #[arg(long, value_parser = parse_model)]
    model: Option<ModelKind>,
    /// Pre-trained weight file (.pth, .pt or .safetensors) to use instead of the bundled or
    /// downloaded one; without --model, the architecture is read from its keys.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Start from random weights.
    #[arg(long)]
    from_scratch: bool,
    /// Stage-1 epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// adamw, adam or sgd.
    #[arg(long)]
    optimizer: Option<String>,
    /// cosine or constant.
    #[arg(long)]
    schedule: Option<String>,
    /// Frozen groups: all-but-head, none, or a comma-separated list (see `graft layers`).
    #[arg(long)]
    freeze: Option<String>,
    /// Stage-2 epochs (fine-tuning with more layers unfrozen); 0 skips stage 2.
    #[arg(long)]
    fine_tune_epochs: Option<usize>,
    /// Groups to unfreeze in stage 2 (comma-separated); default all.
    #[arg(long)]
    unfreeze: Option<String>,
    /// Stage-2 learning rate as a fraction of stage 1's.
    #[arg(long)]
    fine_tune_lr_factor: Option<f64>,
    /// Stage-1 rates per layer group: LOW for the lowest thawed group to HIGH for the head,
    /// geometric in between (replaces --lr), e.g. 1e-5:1e-3.
    #[arg(long, value_name = "LOW:HIGH", value_parser = LayerRates::parse_range)]
    lr_range: Option<LayerRates>,
    /// Stage-1 rate factors per layer group (others 1; 0 holds a group still), e.g.
    /// block5=0.1,head=1.
    #[arg(long, value_name = "GROUP=F,…", value_parser = LayerRates::parse_factors, conflicts_with = "lr_range")]
    lr_factors: Option<LayerRates>,
    /// Stage-2 rates per layer group, LOW:HIGH as for --lr-range (replaces the stage-2 rate).
    #[arg(long, value_name = "LOW:HIGH", value_parser = LayerRates::parse_range)]
    fine_tune_lr_range: Option<LayerRates>,
    /// Let BatchNorm layers learn batch statistics while fine-tuning (default: they keep the
    /// pre-trained ones).
    #[arg(long)]
    train_batch_norm: bool,
    /// Input side in pixels (default: the model's own).
    #[arg(long)]
    input_size: Option<u32>,
    /// Validation fraction for a folder without train/ and val/.
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Seed for split, order, augmentation and head initialisation.
    #[arg(long)]
    seed: Option<u64>,
    /// Turn training augmentation off.
    #[arg(long)]
    no_augment: bool,
    /// Brightness jitter strength b: each view's pixels × a factor in [1 − b, 1 + b].
    #[arg(long)]
    brightness: Option<f64>,
    /// Contrast jitter strength, as for --brightness.
    #[arg(long)]
    contrast: Option<f64>,
    /// Saturation jitter strength, as for --brightness.
    #[arg(long)]
    saturation: Option<f64>,
    /// Random rotation of up to this many degrees either way.
    #[arg(long)]
    rotation: Option<f64>,
    /// Augmented views of each image the feature cache keeps for frozen layers (default 2).
    #[arg(long)]
    augmented_views: Option<usize>,
    /// After the first pass, fit the head on the cached features for up to this many passes
    /// (default 30; 0: off; never when fine-tuning follows).
    #[arg(long)]
    fit_passes: Option<usize>,
    /// auto, cpu or gpu.
    #[arg(long)]
    device: Option<String>,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long)]
    patience: Option<usize>,
    /// Hidden dense layer width in the head.
    #[arg(long)]
    hidden: Option<usize>,
    /// Head dropout.
    #[arg(long)]
    dropout: Option<f64>,
    /// Use at most this many images per class.
    #[arg(long)]
    max_per_class: Option<usize>,
    /// Keep decoded images in memory up to this many MiB (default 512); the others are
    /// decoded again each time a batch needs them.
    #[arg(long, value_name = "MIB")]
    image_memory: Option<usize>,
    /// Test fraction for a folder without train/, val/ and test/: held out from training and
    /// model selection, scored once at the end.
    #[arg(long)]
    test_fraction: Option<f64>,
    /// Even out lopsided classes: auto (the default: a class-weighted loss when the largest
    /// class has 3× the training images of the smallest), off, or weighted-loss (always).
    #[arg(long)]
    balance: Option<String>,
    /// A decisions file (JSON: {"exclude": [...], "relabel": [{"file", "class"}]}, paths
    /// relative to the data folder), or a saved Graft project whose decisions to apply.
    #[arg(long)]
    decisions: Option<PathBuf>,
    /// Folder for run folders (default: the user's Graft data folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Parses one of a flag's fixed choices.
fn choice<T: Copy>(
    what: &'static str,
    value: &str,
    options: &[(&str, T)],
    choices: &'static str,
) -> Result<T, CliError> {
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| CliError::UnknownChoice {
            what,
            value: value.to_string(),
            choices,
        })
}

impl TrainArgs {
    /// The config these flags describe.
    pub fn to_config(&self) -> Result<TrainConfig, CliError> {
        let mut c = match &self.config {
            Some(path) => read_config(path)?,
            None => TrainConfig::default(),
        };
        c.data = self.data.clone();
        self.apply_model(&mut c)?;
        self.apply_optimizer(&mut c)?;
        self.apply_stages(&mut c);
        self.apply_rest(&mut c)?;
        c.validate()?;
        Ok(c)
    }

    fn apply_model(&self, c: &mut TrainConfig) -> Result<(), CliError> {
        if let Some(m) = self.model {
            c.model = m;
        }
        if let Some(weights) = &self.weights {
            c.weights = Some(weights.clone());
            // Without --model, the file's keys say which architecture it is.
            if self.model.is_none() {
                c.model = detect_kind(weights)?;
            }
        }
        c.from_scratch |= self.from_scratch;
        if self.input_size.is_some() {
            c.input_size = self.input_size;
        }
        if self.hidden.is_some() {
            c.head.hidden = self.hidden;
        }
        if let Some(v) = self.dropout {
            c.head.dropout = v;
        }
        Ok(())
    }

    fn apply_optimizer(&self, c: &mut TrainConfig) -> Result<(), CliError> {
        if let Some(v) = self.epochs {
            c.epochs = v;
        }
        if let Some(v) = self.batch_size {
            c.batch_size = v;
        }
        if let Some(v) = self.lr {
            c.optimizer.lr = v;
        }
        if let Some(v) = &self.optimizer {
            let kinds = [
                ("adamw", OptimizerKind::AdamW),
                ("adam", OptimizerKind::Adam),
                ("sgd", OptimizerKind::Sgd),
            ];
            c.optimizer.kind = choice("optimizer", v, &kinds, "adamw, adam, sgd")?;
        }
        if let Some(v) = &self.schedule {
            let schedules = [
                ("cosine", LrSchedule::Cosine),
                ("constant", LrSchedule::Constant),
            ];
            c.optimizer.schedule = choice("schedule", v, &schedules, "cosine, constant")?;
        }
        Ok(())
    }

    fn apply_stages(&self, c: &mut TrainConfig) {
        if let Some(v) = &self.freeze {
            c.freeze = FreezePlan::parse(v);
        }
        if let Some(epochs) = self.fine_tune_epochs {
            let mut ft = c.fine_tune.take().unwrap_or_default();
            ft.epochs = epochs;
            c.fine_tune = (epochs > 0).then_some(ft);
        }
        if let Some(rates) = self.lr_range.as_ref().or(self.lr_factors.as_ref()) {
            c.optimizer.layer_rates = rates.clone();
        }
        if self.unfreeze.is_some()
            || self.fine_tune_lr_factor.is_some()
            || self.fine_tune_lr_range.is_some()
        {
            let ft = c.fine_tune.get_or_insert_with(FineTuneConfig::default);
            if let Some(list) = &self.unfreeze {
                ft.unfreeze = list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s != "all")
                    .collect();
            }
            if let Some(f) = self.fine_tune_lr_factor {
                ft.lr_factor = f;
            }
            if let Some(rates) = &self.fine_tune_lr_range {
                ft.layer_rates = rates.clone();
            }
        }
        if self.train_batch_norm
            && let Some(ft) = &mut c.fine_tune
        {
            ft.freeze_batch_norm = false;
        }
        if self.patience.is_some() {
            c.early_stopping_patience = self.patience;
        }
    }

    fn apply_rest(&self, c: &mut TrainConfig) -> Result<(), CliError> {
        if let Some(v) = self.val_fraction {
            c.split.val_fraction = v;
        }
        if let Some(v) = self.test_fraction {
            c.split.test_fraction = v;
        }
        if let Some(v) = &self.balance {
            c.balance = choice(
                "balance",
                v,
                &ClassBalance::NAMES,
                "auto, off, weighted-loss",
            )?;
        }
        if let Some(path) = &self.decisions {
            c.curation = read_decisions(path)?;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        self.apply_augment(c);
        if let Some(v) = &self.device {
            c.device = choice("device", v, &super::DEVICES, "auto, cpu, gpu")?;
        }
        if self.max_per_class.is_some() {
            c.max_images_per_class = self.max_per_class;
        }
        if let Some(v) = self.image_memory {
            c.image_memory_mib = v;
        }
        if self.out.is_some() {
            c.runs_dir = self.out.clone();
        }
        Ok(())
    }
}

impl TrainArgs {
    fn apply_augment(&self, c: &mut TrainConfig) {
        if self.no_augment {
            c.augment.enabled = false;
        }
        let a = &mut c.augment;
        for (flag, field) in [
            (self.brightness, &mut a.brightness),
            (self.contrast, &mut a.contrast),
            (self.saturation, &mut a.saturation),
            (self.rotation, &mut a.rotation_degrees),
        ] {
            if let Some(v) = flag {
                *field = v;
            }
        }
        if let Some(v) = self.augmented_views {
            c.feature_cache.augmented_views = v;
        }
        if let Some(v) = self.fit_passes {
            c.feature_cache.fit_passes = v;
        }
    }
}

fn read_config(path: &Path) -> Result<TrainConfig, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::ConfigFile {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CliError::ConfigParse {
        path: path.to_path_buf(),
        source,
    })
}

/// A decisions file, or the decisions of a saved project (`{"config": {"curation": …}}`).
pub(super) fn read_decisions(path: &Path) -> Result<Curation, CliError> {
    #[derive(serde::Deserialize)]
    struct Project {
        config: TrainConfig,
    }
    let bytes = std::fs::read(path).map_err(|source| CliError::ConfigFile {
        path: path.to_path_buf(),
        source,
    })?;
    match serde_json::from_slice::<Curation>(&bytes) {
        Ok(curation) => Ok(curation),
        // Not a decisions file: a project holds them in its config; if it is not one either,
        // the decisions file's own error says best what is wrong.
        Err(source) => serde_json::from_slice::<Project>(&bytes)
            .map(|p| p.config.curation)
            .map_err(|_| CliError::ConfigParse {
                path: path.to_path_buf(),
                source,
            }),
    }
}

/// Runs `graft train`, printing progress.
pub(super) fn run(args: &TrainArgs) -> Result<(), CliError> {
    let config = args.to_config()?;
    if !args.baselines {
        return train_one(config).map(|_| ());
    }
    let mut rows = Vec::new();
    for (name, config) in config.baselines() {
        println!("== baseline: {name}");
        let (summary, trainable) = train_one(config)?;
        rows.push((name, summary, trainable));
    }
    println!();
    println!(
        "{:<26} {:>10} {:>9} {:>18}  run folder",
        "recipe", "val acc", "time", "trainable params"
    );
    for (name, s, trainable) in rows {
        let acc = s
            .best_val_accuracy
            .map_or("-".into(), |a| format!("{:.1} %", a * 100.0));
        println!(
            "{name:<26} {acc:>10} {:>7.1} s {trainable:>18}  {}",
            s.seconds,
            s.run_dir.display()
        );
    }
    Ok(())
}

/// Trains one run, printing progress; returns its summary and the parameters trained in its
/// last stage.
fn train_one(config: TrainConfig) -> Result<(RunSummary, usize), CliError> {
    let mut handle = train::spawn(config.clone(), None);
    let mut printer = Printer {
        total_epochs: config.total_epochs(),
        trainable: 0,
        group_names: Vec::new(),
        val_images: 0,
        stderr: std::io::stderr(),
        counting_files: false,
        config: config.clone(),
        epochs: Vec::new(),
        data: None,
    };
    loop {
        let Some(event) = handle.next_timeout(Duration::from_millis(200)) else {
            if handle.is_ended() {
                return Err(CliError::Reported(1));
            }
            continue;
        };
        match event {
            TrainEvent::Finished(s) => {
                printer.finished(&s);
                return Ok((s, printer.trainable));
            }
            TrainEvent::Failed(message) => return Err(CliError::Train(message)),
            other => printer.show(other),
        }
    }
}

/// Prints a run's events: lines on stdout, progress bars on stderr.
struct Printer {
    total_epochs: usize,
    /// Parameters trained in the latest stage.
    trainable: usize,
    /// The layer groups' names, once the model is built.
    group_names: Vec<String>,
    /// Validation images, once the data is read.
    val_images: usize,
    stderr: std::io::Stderr,
    /// Whether the last line on stderr is the unfinished "finding images" count.
    counting_files: bool,
    /// The run's settings, its epochs and its data, for the advice at the end.
    config: TrainConfig,
    epochs: Vec<EpochMetrics>,
    data: Option<DataSummary>,
}

impl Printer {
    fn show(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Device { description, .. } => println!("device: {description}"),
            TrainEvent::Scanning { found } => {
                let _ = write!(self.stderr, "\rfinding images: {found} so far");
                self.counting_files = true;
            }
            TrainEvent::Preparing { done, total } => {
                if std::mem::take(&mut self.counting_files) {
                    let _ = writeln!(self.stderr);
                }
                let _ = write!(
                    self.stderr,
                    "\rdecoding [{}] {done}/{total}",
                    bar(done, total, 30)
                );
                if done == total {
                    let _ = writeln!(self.stderr);
                }
            }
            TrainEvent::Downloading { file, done, total } => self.download(&file, done, total),
            TrainEvent::DataReady(d) => {
                self.val_images = d.val_counts.iter().sum();
                data_ready(&d);
                self.data = Some(d);
            }
            TrainEvent::Warning(w) => println!("warning: {w}"),
            TrainEvent::Started(info) => {
                let frozen = info.frozen.iter().filter(|f| **f).count();
                println!(
                    "model: {} at {} px, {} of {} layer groups frozen, {} of {} parameters trainable",
                    info.model,
                    info.input_size,
                    frozen,
                    info.groups.len(),
                    info.trainable_params,
                    info.total_params
                );
                println!("run folder: {}", info.run_dir.display());
                self.trainable = info.trainable_params;
                self.group_names = info.groups.iter().map(|g| g.name.clone()).collect();
            }
            TrainEvent::StageStarted {
                stage,
                epochs,
                lr,
                rates,
                trainable_params,
            } => {
                println!(
                    "stage {stage}: {epochs} epochs at lr {lr:.2e}, {trainable_params} trainable parameters"
                );
                let thawed: Vec<f64> = rates.iter().copied().filter(|r| *r > 0.0).collect();
                if thawed.iter().any(|r| *r != lr) {
                    let per_group: Vec<String> = self
                        .group_names
                        .iter()
                        .zip(&rates)
                        .filter(|(_, r)| **r > 0.0)
                        .map(|(name, r)| format!("{name} {r:.1e}"))
                        .collect();
                    println!("  rates: {}", per_group.join(", "));
                }
                self.trainable = trainable_params;
            }
            TrainEvent::CompilingKernels => {
                println!("preparing GPU kernels (the first step compiles them)…")
            }
            TrainEvent::Batch(b) => self.batch(&b),
            TrainEvent::FittingHead {
                pass, passes, loss, ..
            } => {
                let _ = write!(
                    self.stderr,
                    "\rfitting the head on the cached features: pass {pass} (at most {passes}), loss {loss:.4}   "
                );
            }
            TrainEvent::Epoch(m) => {
                self.epoch(&m);
                self.epochs.push(m);
            }
            TrainEvent::Checkpoint { path, epoch } => {
                println!("checkpoint (epoch {epoch}): {}", path.display())
            }
            TrainEvent::Tested(t) => println!(
                "test set (scored once, on the best checkpoint): accuracy {}, loss {:.4}",
                t.describe(),
                t.loss
            ),
            TrainEvent::Paused => println!("paused"),
            TrainEvent::Resumed => println!("resumed"),
            TrainEvent::Finished(s) => self.finished(&s),
            TrainEvent::Failed(_) | TrainEvent::LrPoint(_) | TrainEvent::LrSwept(_) => {}
        }
    }

    fn download(&mut self, file: &str, done: u64, total: Option<u64>) {
        let _ = match total {
            Some(t) => write!(
                self.stderr,
                "\rdownloading {file} [{}] {:.1}/{:.1} MB",
                bar(done as usize, t as usize, 30),
                done as f64 / 1e6,
                t as f64 / 1e6
            ),
            None => write!(
                self.stderr,
                "\rdownloading {file}: {:.1} MB",
                done as f64 / 1e6
            ),
        };
        if Some(done) == total {
            let _ = writeln!(self.stderr);
        }
    }

    fn batch(&mut self, b: &BatchProgress) {
        let eta = b.time_left().map_or(String::new(), |t| format!(", {t}"));
        let _ = write!(
            self.stderr,
            "\repoch {}/{} [{}] {}/{} loss {:.4} {:.1} img/s{eta}   ",
            b.epoch,
            self.total_epochs,
            bar(b.batch, b.batches, 30),
            b.batch,
            b.batches,
            b.loss,
            b.images_per_sec
        );
        if b.batch == b.batches {
            let _ = writeln!(self.stderr);
        }
    }

    fn epoch(&self, m: &EpochMetrics) {
        let val = match (m.val_loss, m.val_accuracy) {
            (Some(l), Some(a)) => format!(
                "val loss {l:.4}  val acc {}",
                interval::describe_share(a, self.val_images)
            ),
            _ => "no validation set".into(),
        };
        let cached = if m.cached_images > 0 {
            "  (frozen layers' output from the cache)"
        } else {
            ""
        };
        let train_acc = m
            .train_accuracy
            .map_or(String::new(), |a| format!("  train acc {:.1} %", a * 100.0));
        println!(
            "epoch {}/{}: train loss {:.4}{train_acc}  {val}  {:.1} img/s  {:.1} s{cached}",
            m.epoch, self.total_epochs, m.train_loss, m.images_per_sec, m.seconds
        );
    }

    fn finished(&self, s: &RunSummary) {
        let how = if s.cancelled {
            "cancelled"
        } else if s.early_stopped {
            "stopped early"
        } else {
            "finished"
        };
        let acc = s
            .best_val_accuracy
            .map_or("-".into(), |a| interval::describe_share(a, self.val_images));
        let best = s
            .best_epoch
            .map_or("none (no epoch finished)".into(), |e| e.to_string());
        println!(
            "{how} after {} epochs in {:.1} s; best epoch {best}, val accuracy {acc}",
            s.epochs, s.seconds
        );
        println!("run folder: {}", s.run_dir.display());
        self.advise(s);
    }

    fn advise(&self, s: &RunSummary) {
        let facts = advice::RunFacts {
            config: &self.config,
            epochs: &self.epochs,
            data: self.data.as_ref(),
            summary: Some(s),
            label_issues: None,
        };
        let advice = advice::advise(&facts);
        if advice.is_empty() {
            return;
        }
        println!("advice:");
        for a in advice {
            println!("  - {} {}", a.evidence, a.suggestion);
            if let Some(command) = a.remedy.command(&self.config.data) {
                println!("    next: {command}");
            }
        }
    }
}

fn data_ready(d: &DataSummary) {
    println!("data: {} ({})", d.root.display(), d.layout.describe());
    println!("classes ({}):", d.classes.len());
    for (i, c) in d.classes.iter().enumerate() {
        let test = d
            .test_counts
            .get(i)
            .map_or(String::new(), |n| format!("  test {n:>5}"));
        println!(
            "  {c:<24} train {:>5}  val {:>5}{test}",
            d.train_counts[i], d.val_counts[i]
        );
    }
    println!("skipped files: {}", d.skipped.len());
    if !d.excluded.is_empty() || d.relabelled > 0 {
        println!(
            "your decisions: {} file(s) excluded, {} relabelled",
            d.excluded.len(),
            d.relabelled
        );
    }
}
