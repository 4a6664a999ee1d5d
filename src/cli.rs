//! The command line: `graft train`, `graft predict`, `graft layers`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use graft::config::{
    DevicePreference, FineTuneConfig, FreezePlan, LrSchedule, OptimizerKind, TrainConfig,
};
use graft::models::{ModelKind, Network, NetworkSpec};
use graft::predict::Predictor;
use graft::train::{self, TrainEvent};

/// Graft: fine-tune a pre-trained image network on your own labelled folders.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// What to do; without a command the app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The sub-commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a new head (and optionally fine-tune) on an image folder.
    Train(Box<TrainArgs>),
    /// Classify images with a trained run, or with a model's own ImageNet classifier.
    Predict(PredictArgs),
    /// List a model's layer groups (the units that can be frozen).
    Layers(LayersArgs),
    /// Score a trained run: accuracy, per-class precision/recall/F1, confusion matrix, mistakes.
    Eval(EvalArgs),
    /// Write a run's weights (PyTorch names), labels and preprocessing to a folder, then check them.
    Export(ExportArgs),
    /// Measure training-step speed, time to accuracy, decoding speed and peak memory.
    Bench(crate::bench_cli::BenchArgs),
}

/// `graft eval` flags.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run folder written by `graft train`.
    #[arg(long)]
    run: PathBuf,
    /// Another image folder with the same classes (default: the run's validation split).
    #[arg(long)]
    data: Option<PathBuf>,
    /// How many mistakes to list.
    #[arg(long, default_value_t = 10)]
    mistakes: usize,
}

/// `graft export` flags.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run folder written by `graft train`.
    #[arg(long)]
    run: PathBuf,
    /// Folder to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Parses a model name for clap, listing the known ones when it is not one.
pub fn parse_model(name: &str) -> Result<ModelKind, String> {
    ModelKind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown model `{name}`; choose one of {}", names.join(", "))
    })
}

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
    /// Folder for run folders (default: the user's Graft data folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl TrainArgs {
    /// The config these flags describe.
    pub fn to_config(&self) -> Result<TrainConfig, String> {
        let mut c = match &self.config {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => TrainConfig::default(),
        };
        c.data = self.data.clone();
        if let Some(m) = self.model {
            c.model = m;
        }
        if let Some(weights) = &self.weights {
            c.weights = Some(weights.clone());
            // Without --model, the file's keys say which architecture it is.
            if self.model.is_none() {
                c.model = graft::models::detect_kind(weights).map_err(|e| e.to_string())?;
            }
        }
        c.from_scratch |= self.from_scratch;
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
            c.optimizer.kind = match v.as_str() {
                "adamw" => OptimizerKind::AdamW,
                "adam" => OptimizerKind::Adam,
                "sgd" => OptimizerKind::Sgd,
                other => return Err(format!("unknown optimizer `{other}` (adamw, adam, sgd)")),
            };
        }
        if let Some(v) = &self.schedule {
            c.optimizer.schedule = match v.as_str() {
                "cosine" => LrSchedule::Cosine,
                "constant" => LrSchedule::Constant,
                other => return Err(format!("unknown schedule `{other}` (cosine, constant)")),
            };
        }
        if let Some(v) = &self.freeze {
            c.freeze = FreezePlan::parse(v);
        }
        if let Some(epochs) = self.fine_tune_epochs {
            let mut ft = c.fine_tune.take().unwrap_or_default();
            ft.epochs = epochs;
            c.fine_tune = (epochs > 0).then_some(ft);
        }
        if self.unfreeze.is_some() || self.fine_tune_lr_factor.is_some() {
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
        }
        if self.train_batch_norm
            && let Some(ft) = &mut c.fine_tune
        {
            ft.freeze_batch_norm = false;
        }
        if self.input_size.is_some() {
            c.input_size = self.input_size;
        }
        if let Some(v) = self.val_fraction {
            c.split.val_fraction = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if self.no_augment {
            c.augment.enabled = false;
        }
        if let Some(v) = &self.device {
            c.device = match v.as_str() {
                "auto" => DevicePreference::Auto,
                "cpu" => DevicePreference::Cpu,
                "gpu" => DevicePreference::Gpu,
                other => return Err(format!("unknown device `{other}` (auto, cpu, gpu)")),
            };
        }
        if self.patience.is_some() {
            c.early_stopping_patience = self.patience;
        }
        if self.hidden.is_some() {
            c.head.hidden = self.hidden;
        }
        if let Some(v) = self.dropout {
            c.head.dropout = v;
        }
        if self.max_per_class.is_some() {
            c.max_images_per_class = self.max_per_class;
        }
        if self.out.is_some() {
            c.runs_dir = self.out.clone();
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// `graft predict` flags.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A run folder written by `graft train`.
    #[arg(long, conflicts_with = "model")]
    run: Option<PathBuf>,
    /// Use this model's own ImageNet classifier instead of a run.
    #[arg(long, value_parser = parse_model)]
    model: Option<ModelKind>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Images to classify; a folder stands for every image below it.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// `graft layers` flags.
#[derive(Args, Debug)]
pub struct LayersArgs {
    /// The model.
    #[arg(long, value_parser = parse_model, default_value = "efficientnet-lite0")]
    model: ModelKind,
    /// Output classes of the new head.
    #[arg(long, default_value_t = 5)]
    classes: usize,
}

fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    format!("{}{}", "#".repeat(filled), "-".repeat(width - filled))
}

/// Runs `graft train`, printing progress; returns the process exit code.
pub fn train(args: &TrainArgs) -> i32 {
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if !args.baselines {
        return train_one(config).map_or(1, |_| 0);
    }
    let mut rows = Vec::new();
    for (name, config) in config.baselines() {
        println!("== baseline: {name}");
        match train_one(config) {
            Some((summary, trainable)) => rows.push((name, summary, trainable)),
            None => return 1,
        }
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
    0
}

/// Trains one run, printing progress; returns its summary and the parameters trained in its
/// last stage, or `None` when it failed (the error is printed).
fn train_one(config: TrainConfig) -> Option<(train::RunSummary, usize)> {
    let mut trainable = 0;
    let mut handle = train::spawn(config.clone(), None);
    let total_epochs = config.epochs + config.fine_tune.as_ref().map_or(0, |f| f.epochs);
    let mut stderr = std::io::stderr();
    loop {
        let Some(event) = handle.next_timeout(Duration::from_millis(200)) else {
            if handle.is_ended() {
                return None;
            }
            continue;
        };
        match event {
            TrainEvent::Device { description, .. } => println!("device: {description}"),
            TrainEvent::Preparing { done, total } => {
                let _ = write!(
                    stderr,
                    "\rdecoding [{}] {done}/{total}",
                    bar(done, total, 30)
                );
                if done == total {
                    let _ = writeln!(stderr);
                }
            }
            TrainEvent::Downloading { file, done, total } => {
                let _ = match total {
                    Some(t) => write!(
                        stderr,
                        "\rdownloading {file} [{}] {:.1}/{:.1} MB",
                        bar(done as usize, t as usize, 30),
                        done as f64 / 1e6,
                        t as f64 / 1e6
                    ),
                    None => write!(stderr, "\rdownloading {file}: {:.1} MB", done as f64 / 1e6),
                };
                if Some(done) == total {
                    let _ = writeln!(stderr);
                }
            }
            TrainEvent::DataReady(d) => {
                println!("data: {} ({:?})", d.root.display(), d.layout);
                println!("classes ({}):", d.classes.len());
                for (i, c) in d.classes.iter().enumerate() {
                    println!(
                        "  {c:<24} train {:>5}  val {:>5}",
                        d.train_counts[i], d.val_counts[i]
                    );
                }
                println!("skipped files: {}", d.skipped.len());
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
                trainable = info.trainable_params;
            }
            TrainEvent::StageStarted {
                stage,
                epochs,
                lr,
                trainable_params,
            } => {
                println!(
                    "stage {stage}: {epochs} epochs at lr {lr:e}, {trainable_params} trainable parameters"
                );
                trainable = trainable_params;
            }
            TrainEvent::CompilingKernels => {
                println!("preparing GPU kernels (the first step compiles them)…")
            }
            TrainEvent::Batch(b) => {
                let _ = write!(
                    stderr,
                    "\repoch {}/{total_epochs} [{}] {}/{} loss {:.4} {:.1} img/s   ",
                    b.epoch,
                    bar(b.batch, b.batches, 30),
                    b.batch,
                    b.batches,
                    b.loss,
                    b.images_per_sec
                );
                if b.batch == b.batches {
                    let _ = writeln!(stderr);
                }
            }
            TrainEvent::Epoch(m) => {
                let val = match (m.val_loss, m.val_accuracy) {
                    (Some(l), Some(a)) => format!("val loss {l:.4}  val acc {:.1} %", a * 100.0),
                    _ => "no validation set".into(),
                };
                let cached = if m.cached_images > 0 {
                    "  (frozen layers' output from the cache)"
                } else {
                    ""
                };
                println!(
                    "epoch {}/{total_epochs}: train loss {:.4}  {val}  {:.1} img/s  {:.1} s{cached}",
                    m.epoch, m.train_loss, m.images_per_sec, m.seconds
                );
            }
            TrainEvent::Checkpoint { path, epoch } => {
                println!("checkpoint (epoch {epoch}): {}", path.display())
            }
            TrainEvent::Paused => println!("paused"),
            TrainEvent::Resumed => println!("resumed"),
            TrainEvent::Finished(s) => {
                let how = if s.cancelled {
                    "cancelled"
                } else if s.early_stopped {
                    "stopped early"
                } else {
                    "finished"
                };
                let acc = s
                    .best_val_accuracy
                    .map_or("-".into(), |a| format!("{:.1} %", a * 100.0));
                println!(
                    "{how} after {} epochs in {:.1} s; best epoch {:?}, val accuracy {acc}",
                    s.epochs, s.seconds, s.best_epoch
                );
                println!("run folder: {}", s.run_dir.display());
                return Some((s, trainable));
            }
            TrainEvent::Failed(message) => {
                eprintln!("error: {message}");
                return None;
            }
        }
    }
}

/// Runs `graft predict`; returns the process exit code.
pub fn predict(args: &PredictArgs) -> i32 {
    let device = graft::device::select(DevicePreference::Auto).device;
    let predictor = match (&args.run, args.model) {
        (Some(run), _) => Predictor::from_run(run, &device),
        (None, Some(model)) => Predictor::imagenet(model, None, &device),
        (None, None) => {
            eprintln!("error: give --run DIR (a trained run) or --model NAME (ImageNet classes)");
            return 2;
        }
    };
    let predictor = match predictor {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (images, errors) = graft::data::scan::expand_image_paths(&args.images);
    let mut failures = errors.len();
    for e in errors {
        eprintln!("error: {e}");
    }
    for path in &images {
        match predictor.top_k_file(path, args.top) {
            Ok(top) => {
                println!("{}", path.display());
                for (class, p) in top {
                    println!("  {:>6.2} %  {class}", p * 100.0);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failures += 1;
            }
        }
    }
    if failures > 0 { 1 } else { 0 }
}

/// Runs `graft eval`.
pub fn eval(args: &EvalArgs) -> i32 {
    let device = graft::device::select(DevicePreference::Auto).device;
    let evaluation = match graft::eval::evaluate_run(&args.run, args.data.as_deref(), &device) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for s in &evaluation.skipped {
        println!("skipped {s}");
    }
    let m = &evaluation.metrics;
    let images: usize = m.per_class.iter().map(|c| c.support).sum();
    println!("accuracy {:.1} % on {images} images", m.accuracy * 100.0);
    println!();
    println!(
        "{:<20} {:>9} {:>7} {:>7} {:>7}",
        "class", "precision", "recall", "f1", "support"
    );
    for c in &m.per_class {
        println!(
            "{:<20} {:>9.3} {:>7.3} {:>7.3} {:>7}",
            c.name, c.precision, c.recall, c.f1, c.support
        );
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted)");
    print!("{:<20}", "");
    for (i, _) in m.classes.iter().enumerate() {
        print!(" {:>6}", format!("[{i}]"));
    }
    println!();
    for (i, row) in m.confusion.iter().enumerate() {
        print!("{:<20}", format!("[{i}] {}", m.classes[i]));
        for n in row {
            print!(" {n:>6}");
        }
        println!();
    }
    println!();
    println!(
        "mistakes, worst first ({} in all):",
        evaluation.mistakes.len()
    );
    for k in evaluation.mistakes.iter().take(args.mistakes) {
        println!(
            "  {:>6.3}  true {:<12} predicted {:<12} ({:.1} %)  {}",
            k.loss,
            m.classes[k.truth],
            m.classes[k.predicted],
            k.confidence * 100.0,
            k.path.display()
        );
    }
    0
}

/// Runs `graft export`.
pub fn export(args: &ExportArgs) -> i32 {
    let device = graft::device::select(DevicePreference::Auto).device;
    match graft::export::export_run(&args.run, &args.out, &device) {
        Ok(r) => {
            for f in &r.files {
                println!("wrote {}", f.display());
            }
            println!(
                "parity on {} validation images: accuracy {:.2} % before, {:.2} % after reloading; largest logit difference {:e}",
                r.images,
                r.accuracy_before * 100.0,
                r.accuracy_after * 100.0,
                r.max_logit_diff
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Runs `graft layers`.
pub fn layers(args: &LayersArgs) -> i32 {
    let spec = NetworkSpec {
        kind: args.model,
        classes: args.classes,
        head: Default::default(),
        input_size: args.model.input_size(),
    };
    let network = Network::new(&spec, &burn::tensor::Device::flex());
    let groups = network.layer_groups(spec.input_size);
    let name = groups
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let what = groups
        .iter()
        .map(|g| g.description.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<name$} {:<what$} {:>10}  output",
        "group", "what", "params"
    );
    for g in groups {
        println!(
            "{:<name$} {:<what$} {:>10}  {:?}",
            g.name, g.description, g.params, g.output_shape
        );
    }
    0
}
