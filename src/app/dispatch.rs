//! The one place in the app that spawns threads, opens dialogs and touches disk. Panels send
//! [`Action`]s; background work answers through a channel that [`Dispatcher::poll`] folds into
//! the state every frame. Nothing here blocks the UI thread.

use std::path::{Path, PathBuf};

use eframe::egui;
use std::sync::mpsc::{Receiver, Sender, channel};

use super::run_view::RunView;
use super::state::{AppState, EvalState, FolderState, Page, Project};
use super::thumbnails::{Decoded, spawn_decoders};
use crate::config::{DevicePreference, TrainConfig};
use crate::data::inspect::{FolderReport, inspect_folder};
use crate::eval::Evaluation;
use crate::fsutil::write_json_atomic;
use crate::models::{LayerGroup, ModelKind, Network, NetworkSpec};
use crate::train::{self, TrainHandle};

/// Something the user asked for that needs more than a state change.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Show the folder picker.
    PickDataFolder,
    /// Use this folder as the data set.
    SetDataFolder(PathBuf),
    /// Files or folders were dropped on the window.
    Dropped(Vec<PathBuf>),
    /// The model changed: describe its layers.
    ModelChanged(ModelKind),
    /// Start training with the current settings.
    StartTraining,
    /// Pause the active run.
    Pause,
    /// Resume the active run.
    Resume,
    /// Stop the active run (the best checkpoint stays).
    Stop,
    /// Save the project to its file (or ask where).
    SaveProject,
    /// Ask where, then save.
    SaveProjectAs,
    /// Ask which project to open.
    PickProject,
    /// Open this project file.
    OpenProject(PathBuf),
    /// Ask for an image and show the model's own ImageNet top-5 for it.
    PickPreviewImage,
    /// Show the model's own ImageNet top-5 for this image.
    PreviewImage(PathBuf),
    /// Ask for a weight file to start from.
    PickWeightsFile,
    /// Decode thumbnails for these files.
    LoadThumbnails(Vec<PathBuf>),
    /// Score the run in this folder on its validation split.
    Evaluate(PathBuf),
    /// Ask for images to try on the Results page's run.
    PickTryImages,
    /// Classify these images (folders stand for the images below them) with the Results
    /// page's run.
    TryImages(Vec<PathBuf>),
    /// Ask for a folder and export the Results page's run into it.
    PickExportFolder,
    /// Train pre-trained-frozen, pre-trained-fine-tuned and from-scratch runs, one after another.
    BaselineComparison,
    /// Train again with the settings of this run (an index into `project.runs`).
    Rerun(usize),
    /// Download this model's pre-trained weights into the cache.
    DownloadWeights(ModelKind),
}

/// Answers from background work.
enum Reply {
    Folder(PathBuf, Box<Result<FolderReport, String>>),
    /// Layer groups for the request with this number (older answers are dropped).
    Layers(u64, Vec<LayerGroup>),
    Device(String),
    Weights(Vec<(ModelKind, u64)>),
    PickedFolder(PathBuf),
    PickedProject(PathBuf),
    SaveTo(PathBuf),
    Saved(Result<PathBuf, String>),
    Opened(PathBuf, Result<Box<Project>, String>),
    Preview(PathBuf, super::state::TopK),
    PickedWeights(PathBuf),
    Evaluated(PathBuf, Result<std::sync::Arc<Evaluation>, String>),
    PickedTry(Vec<PathBuf>),
    Tried(PathBuf, Result<Vec<(PathBuf, super::state::TopK)>, String>),
    PickedExport(PathBuf),
    Exported(String),
    WeightsChecked(PathBuf, Result<ModelKind, String>),
    DownloadProgress(ModelKind, u64, Option<u64>),
    Downloaded(ModelKind, Result<u64, String>),
}

/// Runs actions and collects their results.
pub struct Dispatcher {
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    training: Option<TrainHandle>,
    ctx: Option<egui::Context>,
    layers_request: u64,
    thumb_requests: Option<Sender<PathBuf>>,
    thumb_results: (Sender<Decoded>, Receiver<Decoded>),
    /// Runs waiting to start when the active one ends (a baseline comparison).
    queue: std::collections::VecDeque<(String, TrainConfig)>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self {
            tx,
            rx,
            training: None,
            ctx: None,
            layers_request: 0,
            thumb_requests: None,
            thumb_results: channel(),
            queue: Default::default(),
        }
    }
}

/// Runs `job` on a new thread and sends its reply; asks egui to repaint when done.
fn background(
    tx: &Sender<Reply>,
    ctx: &Option<egui::Context>,
    job: impl FnOnce() -> Option<Reply> + Send + 'static,
) {
    let tx = tx.clone();
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        if let Some(reply) = job() {
            let _ = tx.send(reply);
        }
        if let Some(ctx) = ctx {
            ctx.request_repaint();
        }
    });
}

/// The layer groups of `kind` (built with random weights: the shapes are what matter).
pub fn describe_model(kind: ModelKind, classes: usize) -> Vec<LayerGroup> {
    let spec = NetworkSpec {
        kind,
        classes: classes.max(2),
        head: Default::default(),
        input_size: kind.input_size(),
    };
    Network::new(&spec, &burn::tensor::Device::flex()).layer_groups(kind.input_size())
}

impl Dispatcher {
    /// Starts the work every fresh window needs: device probe, folder scan, layer list.
    pub fn start(&mut self, state: &mut AppState, ctx: &egui::Context) {
        self.ctx = Some(ctx.clone());
        self.thumb_requests = Some(spawn_decoders(
            2,
            self.thumb_results.0.clone(),
            self.ctx.clone(),
        ));
        background(&self.tx, &self.ctx, || {
            Some(Reply::Device(
                crate::device::select(DevicePreference::Auto).description,
            ))
        });
        background(&self.tx, &self.ctx, || {
            let found = ModelKind::ALL
                .into_iter()
                .filter_map(|k| {
                    let size = std::fs::metadata(k.find_weights()?).ok()?.len();
                    Some((k, size))
                })
                .collect();
            Some(Reply::Weights(found))
        });
        let data = state.project.config.data.clone();
        if !data.as_os_str().is_empty() {
            self.handle(Action::SetDataFolder(data), state);
        }
        self.handle(Action::ModelChanged(state.project.config.model), state);
    }

    /// Whether [`Dispatcher::start`] ran.
    pub fn is_started(&self) -> bool {
        self.ctx.is_some()
    }

    /// Carries out one action.
    pub fn handle(&mut self, action: Action, state: &mut AppState) {
        match action {
            Action::PickDataFolder => {
                let dialog = rfd::AsyncFileDialog::new().set_title("Choose a data set folder");
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.pick_folder())
                        .map(|f| Reply::PickedFolder(f.path().to_path_buf()))
                });
            }
            Action::SetDataFolder(path) => {
                state.project.config.data = path.clone();
                state.live.folder = FolderState::Scanning(path.clone());
                state.live.thumb_class = 0;
                state.live.messages.data = None;
                background(&self.tx, &self.ctx, move || {
                    let report = inspect_folder(&path).map_err(|e| e.to_string());
                    Some(Reply::Folder(path, Box::new(report)))
                });
            }
            Action::Dropped(paths)
                if state.live.page == Page::Results && state.results_run_dir().is_some() =>
            {
                self.handle(Action::TryImages(paths), state)
            }
            Action::Dropped(paths) => match paths.as_slice() {
                [one] if one.is_dir() => self.handle(Action::SetDataFolder(one.clone()), state),
                [one] if crate::data::scan::is_image(one) => {
                    state.live.messages.data = Some(
                        "That is an image: its ImageNet classes are shown under Model. To train, drop a folder that holds one sub-folder per class."
                            .into(),
                    );
                    self.handle(Action::PreviewImage(one.clone()), state);
                }
                [] => {}
                [one] => {
                    state.live.messages.data = Some(format!(
                        "{} is a file. Drop a folder that holds one sub-folder per class.",
                        one.display()
                    ))
                }
                _ => {
                    state.live.messages.data = Some(format!(
                        "{} items were dropped. Drop one folder that holds one sub-folder per class.",
                        paths.len()
                    ))
                }
            },
            Action::ModelChanged(kind) => {
                state.project.config.model = kind;
                state.live.layers = None;
                let classes = match &state.live.folder {
                    FolderState::Ready(r) => r.classes.len(),
                    _ => 2,
                };
                self.layers_request += 1;
                let request = self.layers_request;
                background(&self.tx, &self.ctx, move || {
                    Some(Reply::Layers(request, describe_model(kind, classes)))
                });
            }
            Action::StartTraining => self.start_training(state),
            Action::Pause => {
                if let Some(h) = &self.training {
                    h.pause();
                }
            }
            Action::Resume => {
                if let Some(h) = &self.training {
                    h.resume();
                }
            }
            Action::Stop => {
                self.queue.clear();
                if let Some(h) = &self.training {
                    h.cancel();
                }
            }
            Action::Evaluate(run_dir) => {
                state.live.results.evaluation = Some((run_dir.clone(), EvalState::Running));
                state.live.results.cell = None;
                background(&self.tx, &self.ctx, move || {
                    // Scoring a validation split is quick on the CPU and avoids compiling GPU
                    // kernels a second time next to a training run.
                    let device = burn::tensor::Device::flex();
                    let result = crate::eval::evaluate_run(&run_dir, None, &device)
                        .map(std::sync::Arc::new)
                        .map_err(|e| e.to_string());
                    Some(Reply::Evaluated(run_dir, result))
                });
            }
            Action::PickTryImages => {
                let dialog = rfd::AsyncFileDialog::new()
                    .set_title("Choose images to try")
                    .add_filter("Images", &crate::data::scan::IMAGE_EXTENSIONS);
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.pick_files()).map(|files| {
                        Reply::PickedTry(files.iter().map(|f| f.path().to_path_buf()).collect())
                    })
                });
            }
            Action::TryImages(paths) => {
                let Some(run_dir) = state.results_run_dir() else {
                    return;
                };
                state.live.results.trying = true;
                background(&self.tx, &self.ctx, move || {
                    Some(Reply::Tried(run_dir.clone(), try_images(&run_dir, &paths)))
                });
            }
            Action::PickExportFolder => {
                let dialog =
                    rfd::AsyncFileDialog::new().set_title("Choose a folder for the exported model");
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.pick_folder())
                        .map(|f| Reply::PickedExport(f.path().to_path_buf()))
                });
            }
            Action::BaselineComparison => {
                if state.is_training() {
                    return;
                }
                let mut runs = state.project.config.baselines().into_iter();
                if let Some((name, config)) = runs.next() {
                    self.queue = runs.map(|(n, c)| (n.to_string(), c)).collect();
                    self.start_run(state, name.to_string(), config);
                }
            }
            Action::DownloadWeights(kind) => {
                let Some(entry) = crate::models::zoo::entry(kind) else {
                    return;
                };
                if state.live.downloads.contains_key(&kind) {
                    return;
                }
                state.live.downloads.insert(kind, (0, None));
                let progress_tx = self.tx.clone();
                let ctx = self.ctx.clone();
                background(&self.tx, &self.ctx, move || {
                    let progress = |done, total| {
                        let _ = progress_tx.send(Reply::DownloadProgress(kind, done, total));
                        if let Some(ctx) = &ctx {
                            ctx.request_repaint();
                        }
                    };
                    let never = std::sync::atomic::AtomicBool::new(false);
                    let result = crate::models::download::ensure(entry, &progress, &never)
                        .map_err(|e| e.to_string())
                        .and_then(|path| {
                            std::fs::metadata(&path)
                                .map(|m| m.len())
                                .map_err(|e| format!("{}: {e}", path.display()))
                        });
                    Some(Reply::Downloaded(kind, result))
                });
            }
            Action::Rerun(i) => {
                let Some(run) = state.project.runs.get(i) else {
                    return;
                };
                match run.config.clone() {
                    Some(config) => {
                        let name = format!("re-run of run {}", i + 1);
                        self.start_run(state, name, config);
                    }
                    None => {
                        state.live.messages.train =
                            Some(format!("Run {} did not record its settings.", i + 1))
                    }
                }
            }
            Action::SaveProject => match state.project_path.clone() {
                Some(path) => self.save_project(state, path),
                None => self.handle(Action::SaveProjectAs, state),
            },
            Action::SaveProjectAs => {
                let dialog = rfd::AsyncFileDialog::new()
                    .set_title("Save project")
                    .add_filter("Graft project", &["graft.json", "json"])
                    .set_file_name("project.graft.json");
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.save_file())
                        .map(|f| Reply::SaveTo(f.path().to_path_buf()))
                });
            }
            Action::PickProject => {
                let dialog = rfd::AsyncFileDialog::new()
                    .set_title("Open project")
                    .add_filter("Graft project", &["json"]);
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.pick_file())
                        .map(|f| Reply::PickedProject(f.path().to_path_buf()))
                });
            }
            Action::PickPreviewImage => {
                let dialog = rfd::AsyncFileDialog::new()
                    .set_title("Choose an image")
                    .add_filter("Images", &crate::data::scan::IMAGE_EXTENSIONS);
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.pick_file()).map(|f| {
                        let path = f.path().to_path_buf();
                        let top = imagenet_top5(ModelKind::EfficientNetLite0, None, &path);
                        Reply::Preview(path, top)
                    })
                });
            }
            Action::PreviewImage(path) => {
                let kind = state.project.config.model;
                let weights = state.project.config.weights.clone();
                state.live.preview = None;
                background(&self.tx, &self.ctx, move || {
                    let top = imagenet_top5(kind, weights.as_deref(), &path);
                    Some(Reply::Preview(path, top))
                });
            }
            Action::LoadThumbnails(paths) => {
                if let Some(tx) = &self.thumb_requests {
                    for path in paths {
                        let _ = tx.send(path);
                    }
                }
            }
            Action::PickWeightsFile => {
                let dialog = rfd::AsyncFileDialog::new()
                    .set_title("Choose a weight file")
                    .add_filter(
                        "PyTorch or safetensors weights",
                        &["pth", "pt", "bin", "safetensors"],
                    );
                background(&self.tx, &self.ctx, move || {
                    pollster::block_on(dialog.pick_file())
                        .map(|f| Reply::PickedWeights(f.path().to_path_buf()))
                });
            }
            Action::OpenProject(path) => {
                background(&self.tx, &self.ctx, move || {
                    let project = read_project(&path);
                    Some(Reply::Opened(path, project))
                });
            }
        }
    }

    fn save_project(&mut self, state: &mut AppState, path: PathBuf) {
        let project = state.project.clone();
        background(&self.tx, &self.ctx, move || {
            let result = write_json_atomic(&path, &project)
                .map(|()| path.clone())
                .map_err(|e| format!("cannot save {}: {e}", path.display()));
            Some(Reply::Saved(result))
        });
    }

    fn start_training(&mut self, state: &mut AppState) {
        let name = format!(
            "{}, {}",
            state.project.config.model.name(),
            state.freeze_summary()
        );
        self.start_run(state, name, state.project.config.clone());
    }

    /// Starts training `config`; `name` goes into the legend after the run's number.
    fn start_run(&mut self, state: &mut AppState, name: String, config: TrainConfig) {
        if state.is_training() {
            return;
        }
        if let Err(e) = config.validate() {
            state.live.messages.train = Some(e.to_string());
            return;
        }
        if !matches!(state.live.folder, FolderState::Ready(_)) {
            state.live.messages.train = Some("Choose a data set folder first.".into());
            return;
        }
        state.live.messages.train = None;
        let label = format!("run {}: {name}", state.project.runs.len() + 1);
        state.project.runs.push(RunView::new(label, config.clone()));
        state.live.active_run = Some(state.project.runs.len() - 1);
        let notify: Option<train::Notify> = self
            .ctx
            .clone()
            .map(|ctx| std::sync::Arc::new(move || ctx.request_repaint()) as train::Notify);
        self.training = Some(train::spawn(config, notify));
    }

    /// Folds every waiting reply and training event into `state`. Never blocks.
    pub fn poll(&mut self, state: &mut AppState) {
        while let Ok(reply) = self.rx.try_recv() {
            self.apply(reply, state);
        }
        if let Some(ctx) = &self.ctx {
            // A bounded number of texture uploads per frame keeps scrolling smooth.
            for _ in 0..64 {
                let Ok((path, image)) = self.thumb_results.1.try_recv() else {
                    break;
                };
                state.live.thumbs.insert(ctx, path, image);
            }
        }
        if let Some(handle) = &mut self.training {
            let mut run = state
                .live
                .active_run
                .and_then(|i| state.project.runs.get_mut(i));
            // A bounded number per frame keeps a frame short even when events pile up.
            for _ in 0..1000 {
                let Some(event) = handle.try_next() else {
                    break;
                };
                if let Some(run) = run.as_deref_mut() {
                    run.apply(&event);
                }
            }
            if handle.is_ended() {
                self.training = None;
                if let Some(super::run_view::RunStatus::Failed(m)) = state
                    .live
                    .active_run
                    .and_then(|i| state.project.runs.get(i))
                    .map(|r| &r.status)
                {
                    state.live.messages.train = Some(format!("Training failed: {m}"));
                }
                if let Some((name, config)) = self.queue.pop_front() {
                    self.start_run(state, name, config);
                }
            }
        }
    }

    fn apply(&mut self, reply: Reply, state: &mut AppState) {
        match reply {
            Reply::Folder(path, result) => {
                // A later choice wins over an older scan that finishes late.
                if state.project.config.data != path {
                    return;
                }
                state.live.folder = match *result {
                    Ok(report) => {
                        let classes = report.classes.len();
                        if classes < 2 {
                            state.live.messages.data = Some(format!(
                                "{} has {classes} class folder{}: Graft needs at least two sub-folders, one per class.",
                                path.display(),
                                if classes == 1 { "" } else { "s" }
                            ));
                        }
                        FolderState::Ready(report)
                    }
                    Err(e) => {
                        state.live.messages.data = Some(e.clone());
                        FolderState::Error(e)
                    }
                };
                let kind = state.project.config.model;
                self.handle(Action::ModelChanged(kind), state);
            }
            Reply::Layers(request, layers) => {
                if request == self.layers_request {
                    state.live.layers = Some(layers);
                }
            }
            Reply::Device(d) => state.live.device = Some(d),
            Reply::Weights(found) => state.live.weights = found,
            Reply::PickedFolder(p) => self.handle(Action::SetDataFolder(p), state),
            Reply::PickedProject(p) => self.handle(Action::OpenProject(p), state),
            Reply::SaveTo(p) => self.save_project(state, p),
            Reply::Saved(Ok(p)) => {
                state.live.messages.project = Some(format!("Saved {}", p.display()));
                state.remember_project(p);
            }
            Reply::Saved(Err(e)) => state.live.messages.project = Some(e),
            Reply::Opened(path, Ok(project)) => {
                if state.is_training() {
                    state.live.messages.project =
                        Some("Stop the run before opening another project.".into());
                    return;
                }
                let data = project.config.data.clone();
                state.project = *project;
                state.live.active_run = None;
                state.live.messages.project = Some(format!("Opened {}", path.display()));
                state.remember_project(path);
                self.handle(Action::SetDataFolder(data), state);
            }
            Reply::Preview(path, top) => state.live.preview = Some((path, top)),
            Reply::PickedWeights(path) => {
                state.live.messages.model = Some(format!("Reading {}…", path.display()));
                background(&self.tx, &self.ctx, move || {
                    let kind = crate::models::detect_kind(&path).map_err(|e| e.to_string());
                    Some(Reply::WeightsChecked(path, kind))
                });
            }
            Reply::WeightsChecked(path, Ok(kind)) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                state.live.messages.model = Some(if kind == state.project.config.model {
                    format!("Weights: {name}")
                } else {
                    format!("Weights: {name} holds a {}; model switched.", kind.name())
                });
                state.project.config.weights = Some(path);
                state.project.config.from_scratch = false;
                if kind != state.project.config.model {
                    self.handle(Action::ModelChanged(kind), state);
                }
            }
            Reply::WeightsChecked(_, Err(e)) => state.live.messages.model = Some(e),
            Reply::DownloadProgress(kind, done, total) => {
                state.live.downloads.insert(kind, (done, total));
            }
            Reply::Downloaded(kind, result) => {
                state.live.downloads.remove(&kind);
                match result {
                    Ok(size) => {
                        state.live.weights.retain(|(k, _)| *k != kind);
                        state.live.weights.push((kind, size));
                        state.live.messages.model =
                            Some(format!("{} weights downloaded.", kind.name()));
                    }
                    Err(e) => state.live.messages.model = Some(e),
                }
            }
            Reply::Evaluated(run_dir, result) => {
                let results = &mut state.live.results;
                // Only the run still shown; a later choice wins.
                if results
                    .evaluation
                    .as_ref()
                    .is_some_and(|(d, _)| *d == run_dir)
                {
                    let evaluation = match result {
                        Ok(e) => EvalState::Ready(e),
                        Err(e) => EvalState::Failed(e),
                    };
                    results.evaluation = Some((run_dir, evaluation));
                }
            }
            Reply::PickedTry(paths) => self.handle(Action::TryImages(paths), state),
            Reply::Tried(run_dir, result) => {
                state.live.results.trying = false;
                // A try for a run no longer shown is dropped.
                if state.results_run_dir().as_ref() == Some(&run_dir) {
                    state.live.results.tries = match result {
                        Ok(tries) => tries,
                        Err(e) => vec![(run_dir, Err(e))],
                    };
                }
            }
            Reply::PickedExport(out) => {
                let Some(run_dir) = state.results_run_dir() else {
                    return;
                };
                state.live.results.export = Some(format!("Exporting to {}…", out.display()));
                background(&self.tx, &self.ctx, move || {
                    let device = burn::tensor::Device::flex();
                    let message = match crate::export::export_run(&run_dir, &out, &device) {
                        Ok(r) => format!(
                            "Exported to {}. Reloaded and re-scored {} validation images: accuracy {:.1} % before, {:.1} % after; largest logit difference {:.1e}.",
                            r.dir.display(),
                            r.images,
                            r.accuracy_before * 100.0,
                            r.accuracy_after * 100.0,
                            r.max_logit_diff
                        ),
                        Err(e) => format!("Export failed: {e}"),
                    };
                    Some(Reply::Exported(message))
                });
            }
            Reply::Exported(message) => state.live.results.export = Some(message),
            Reply::Opened(path, Err(e)) => {
                state.recent_projects.retain(|p| p != &path);
                state.live.messages.project = Some(e);
            }
        }
    }
}

/// The model's own ImageNet top-5 for one image, on the CPU (one image needs no GPU).
fn imagenet_top5(kind: ModelKind, weights: Option<&Path>, image: &Path) -> super::state::TopK {
    let device = burn::tensor::Device::flex();
    let predictor =
        crate::predict::Predictor::imagenet(kind, weights, &device).map_err(|e| e.to_string())?;
    predictor.top_k_file(image, 5).map_err(|e| e.to_string())
}

/// Top-5 classes of the run in `run_dir` for each image named by `paths`; a file that cannot be
/// read gets its own error and the rest are still classified.
fn try_images(
    run_dir: &Path,
    paths: &[PathBuf],
) -> Result<Vec<(PathBuf, super::state::TopK)>, String> {
    let device = burn::tensor::Device::flex();
    let predictor =
        crate::predict::Predictor::from_run(run_dir, &device).map_err(|e| e.to_string())?;
    let (files, errors) = crate::data::scan::expand_image_paths(paths);
    let mut tries: Vec<_> = errors
        .into_iter()
        .map(|e| (PathBuf::new(), Err(e)))
        .collect();
    if files.is_empty() && tries.is_empty() {
        return Err("no images there".into());
    }
    for path in files.into_iter().take(MAX_TRIES) {
        let top = predictor.top_k_file(&path, 5).map_err(|e| e.to_string());
        tries.push((path, top));
    }
    Ok(tries)
}

/// Images classified per try (a dropped folder can hold thousands).
const MAX_TRIES: usize = 200;

fn read_project(path: &Path) -> Result<Box<Project>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map(Box::new)
        .map_err(|e| format!("{} is not a Graft project: {e}", path.display()))
}
