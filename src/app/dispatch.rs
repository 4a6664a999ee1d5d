//! Carries out what the user asked for. Panels send [`Action`]s; the work runs on background
//! [`Jobs`], whose replies [`Dispatcher::poll`] folds into the state every frame, together with
//! the training engine's events. Nothing here blocks the UI thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use super::actions::Action;
use super::jobs::{Jobs, Reply, Tries};
use super::run_view::{RunStatus, RunView};
use super::state::{AppState, EvalState, FolderState, Page, Project, TopK};
use super::thumbnails::{Decoded, spawn_decoders};
use crate::config::{DevicePreference, TrainConfig};
use crate::data::inspect::inspect_folder;
use crate::data::scan::{expand_image_paths, is_image};
use crate::models::download;
use crate::models::{ModelKind, describe_layers, detect_kind, zoo};
use crate::platform::device;
use crate::platform::fsutil::write_json_atomic;
use crate::run::eval::evaluate_run;
use crate::run::export::export_run;
use crate::run::predict::Predictor;
use crate::train::{self, TrainHandle};

/// Runs actions and collects their results.
pub struct Dispatcher {
    jobs: Jobs,
    training: Option<TrainHandle>,
    started: bool,
    layers_request: u64,
    thumb_requests: Option<Sender<PathBuf>>,
    thumb_results: (Sender<Decoded>, Receiver<Decoded>),
    /// Runs waiting to start when the active one ends (a baseline comparison).
    queue: std::collections::VecDeque<(String, TrainConfig)>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self {
            jobs: Jobs::default(),
            training: None,
            started: false,
            layers_request: 0,
            thumb_requests: None,
            thumb_results: channel(),
            queue: Default::default(),
        }
    }
}

impl Dispatcher {
    /// Starts the work every fresh window needs: device probe, folder scan, layer list.
    pub fn start(&mut self, state: &mut AppState, ctx: &egui::Context) {
        self.started = true;
        self.jobs.set_context(ctx);
        self.thumb_requests = Some(spawn_decoders(
            2,
            self.thumb_results.0.clone(),
            Some(ctx.clone()),
        ));
        self.jobs.spawn(
            || {
                let picked = device::select(DevicePreference::Auto);
                Some(Reply::Device(picked.description))
            },
            Reply::Device,
        );
        self.jobs
            .spawn(|| Some(Reply::Weights(weights_here())), |_| Reply::Weights(Vec::new()));
        let data = state.project.config.data.clone();
        if !data.as_os_str().is_empty() {
            self.handle(Action::SetDataFolder(data), state);
        }
        self.handle(Action::ModelChanged(state.project.config.model), state);
    }

    /// Whether [`Dispatcher::start`] ran.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Carries out one action.
    pub fn handle(&mut self, action: Action, state: &mut AppState) {
        match action {
            Action::Ask(dialog) => self.jobs.ask(dialog),
            Action::SetDataFolder(path) => self.set_data_folder(path, state),
            Action::Dropped(paths) => self.dropped(paths, state),
            Action::ModelChanged(kind) => self.model_changed(kind, state),
            Action::StartTraining => self.start_training(state),
            Action::Pause => self.training.iter().for_each(TrainHandle::pause),
            Action::Resume => self.training.iter().for_each(TrainHandle::resume),
            Action::Stop => {
                self.queue.clear();
                self.training.iter().for_each(TrainHandle::cancel);
            }
            Action::BaselineComparison => self.baselines(state),
            Action::Rerun(i) => self.rerun(i, state),
            Action::Evaluate(run_dir) => self.evaluate(run_dir, state),
            Action::TryImages(paths) => self.try_images(paths, state),
            Action::ExportTo(out) => self.export(out, state),
            Action::PreviewImage(path) => self.preview(path, state),
            Action::UseWeightsFile(path) => self.check_weights(path, state),
            Action::DownloadWeights(kind) => self.download(kind, state),
            Action::LoadThumbnails(paths) => {
                if let Some(tx) = &self.thumb_requests {
                    for path in paths {
                        let _ = tx.send(path);
                    }
                }
            }
            Action::SaveProject => match state.project_path.clone() {
                Some(path) => self.save_project(state, path),
                None => self.jobs.ask(super::dialogs::Dialog::SaveProject),
            },
            Action::SaveProjectTo(path) => self.save_project(state, path),
            Action::OpenProject(path) => self.jobs.spawn(
                {
                    let path = path.clone();
                    move || {
                        let project = read_project(&path);
                        Some(Reply::Opened(path, project))
                    }
                },
                move |why| Reply::Opened(path, Err(why)),
            ),
        }
    }

    fn set_data_folder(&mut self, path: PathBuf, state: &mut AppState) {
        state.project.config.data = path.clone();
        state.live.folder = FolderState::Scanning(path.clone());
        state.live.thumb_class = 0;
        state.live.messages.data = None;
        let failed = path.clone();
        self.jobs.spawn(
            move || {
                let report = inspect_folder(&path).map_err(|e| e.to_string());
                Some(Reply::Folder(path, Box::new(report)))
            },
            move |why| Reply::Folder(failed, Box::new(Err(why))),
        );
    }

    fn dropped(&mut self, paths: Vec<PathBuf>, state: &mut AppState) {
        if state.live.page == Page::Results && state.results_run_dir().is_some() {
            return self.handle(Action::TryImages(paths), state);
        }
        let messages = |state: &mut AppState, text: String| state.live.messages.data = Some(text);
        match paths.as_slice() {
            [one] if one.is_dir() => self.handle(Action::SetDataFolder(one.clone()), state),
            [one] if is_image(one) => {
                messages(
                    state,
                    "That is an image: its ImageNet classes are shown under Model. To train, drop a folder that holds one sub-folder per class."
                        .into(),
                );
                self.handle(Action::PreviewImage(one.clone()), state);
            }
            [] => {}
            [one] => messages(
                state,
                format!(
                    "{} is a file. Drop a folder that holds one sub-folder per class.",
                    one.display()
                ),
            ),
            _ => messages(
                state,
                format!(
                    "{} items were dropped. Drop one folder that holds one sub-folder per class.",
                    paths.len()
                ),
            ),
        }
    }

    fn model_changed(&mut self, kind: ModelKind, state: &mut AppState) {
        state.project.config.model = kind;
        state.live.layers = None;
        let classes = match &state.live.folder {
            FolderState::Ready(r) => r.classes.len(),
            _ => 2,
        };
        self.layers_request += 1;
        let request = self.layers_request;
        self.jobs.spawn(
            move || {
                let layers = describe_layers(kind, classes.max(2));
                Some(Reply::Layers(request, Ok(layers)))
            },
            move |why| Reply::Layers(request, Err(why)),
        );
    }

    fn evaluate(&mut self, run_dir: PathBuf, state: &mut AppState) {
        state.live.results.evaluation = Some((run_dir.clone(), EvalState::Running));
        state.live.results.cell = None;
        let failed = run_dir.clone();
        self.jobs.spawn(
            move || {
                // Scoring a validation split is quick on the CPU and avoids compiling GPU
                // kernels a second time next to a training run.
                let device = burn::tensor::Device::flex();
                let result = evaluate_run(&run_dir, None, &device)
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                Some(Reply::Evaluated(run_dir, result))
            },
            move |why| Reply::Evaluated(failed, Err(why)),
        );
    }

    fn try_images(&mut self, paths: Vec<PathBuf>, state: &mut AppState) {
        let Some(run_dir) = state.results_run_dir() else {
            return;
        };
        state.live.results.trying = true;
        let failed = run_dir.clone();
        self.jobs.spawn(
            move || Some(Reply::Tried(run_dir.clone(), try_images(&run_dir, &paths))),
            move |why| Reply::Tried(failed, Err(why)),
        );
    }

    fn export(&mut self, out: PathBuf, state: &mut AppState) {
        let Some(run_dir) = state.results_run_dir() else {
            return;
        };
        state.live.results.export = Some(format!("Exporting to {}…", out.display()));
        self.jobs.spawn(
            move || Some(Reply::Exported(export_message(&run_dir, &out))),
            |why| Reply::Exported(format!("Export failed: {why}")),
        );
    }

    fn preview(&mut self, path: PathBuf, state: &mut AppState) {
        let kind = state.project.config.model;
        let weights = state.project.config.weights.clone();
        state.live.preview = None;
        let failed = path.clone();
        self.jobs.spawn(
            move || {
                let top = imagenet_top5(kind, weights.as_deref(), &path);
                Some(Reply::Preview(path, top))
            },
            move |why| Reply::Preview(failed, Err(why)),
        );
    }

    fn check_weights(&mut self, path: PathBuf, state: &mut AppState) {
        state.live.messages.model = Some(format!("Reading {}…", path.display()));
        let failed = path.clone();
        self.jobs.spawn(
            move || {
                let kind = detect_kind(&path).map_err(|e| e.to_string());
                Some(Reply::WeightsChecked(path, kind))
            },
            move |why| Reply::WeightsChecked(failed, Err(why)),
        );
    }

    fn download(&mut self, kind: ModelKind, state: &mut AppState) {
        let Some(entry) = zoo::entry(kind) else {
            return;
        };
        if state.live.downloads.contains_key(&kind) {
            return;
        }
        state.live.downloads.insert(kind, (0, None));
        let send = self.jobs.sender();
        self.jobs.spawn(
            move || {
                let progress = |done, total| send(Reply::DownloadProgress(kind, done, total));
                let never = AtomicBool::new(false);
                let result = download::ensure(entry, &progress, &never)
                    .map_err(|e| e.to_string())
                    .and_then(|path| {
                        std::fs::metadata(&path)
                            .map(|m| m.len())
                            .map_err(|e| format!("{}: {e}", path.display()))
                    });
                Some(Reply::Downloaded(kind, result))
            },
            move |why| Reply::Downloaded(kind, Err(why)),
        );
    }

    fn baselines(&mut self, state: &mut AppState) {
        if state.is_training() {
            return;
        }
        let mut runs = state.project.config.baselines().into_iter();
        if let Some((name, config)) = runs.next() {
            self.queue = runs.map(|(n, c)| (n.to_string(), c)).collect();
            self.start_run(state, name.to_string(), config);
        }
    }

    fn rerun(&mut self, i: usize, state: &mut AppState) {
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

    fn save_project(&mut self, state: &mut AppState, path: PathBuf) {
        let project = state.project.clone();
        let failed = path.clone();
        self.jobs.spawn(
            move || {
                let result = write_json_atomic(&path, &project)
                    .map(|()| path.clone())
                    .map_err(|e| format!("cannot save {}: {e}", path.display()));
                Some(Reply::Saved(result))
            },
            move |why| Reply::Saved(Err(format!("cannot save {}: {why}", failed.display()))),
        );
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
            .jobs
            .context()
            .cloned()
            .map(|ctx| Arc::new(move || ctx.request_repaint()) as train::Notify);
        self.training = Some(train::spawn(config, notify));
    }

    /// Folds every waiting reply and training event into `state`. Never blocks.
    pub fn poll(&mut self, state: &mut AppState) {
        while let Some(reply) = self.jobs.try_next() {
            self.apply(reply, state);
        }
        if let Some(ctx) = self.jobs.context() {
            // A bounded number of texture uploads per frame keeps scrolling smooth.
            for _ in 0..64 {
                let Ok((path, image)) = self.thumb_results.1.try_recv() else {
                    break;
                };
                state.live.thumbs.insert(ctx, path, image);
            }
        }
        self.poll_training(state);
    }

    fn poll_training(&mut self, state: &mut AppState) {
        let Some(handle) = &mut self.training else {
            return;
        };
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
        if !handle.is_ended() {
            return;
        }
        self.training = None;
        if let Some(RunStatus::Failed(m)) = state
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

    fn apply(&mut self, reply: Reply, state: &mut AppState) {
        match reply {
            Reply::Folder(path, result) => self.folder_read(path, *result, state),
            Reply::Layers(request, layers) => {
                if request == self.layers_request {
                    match layers {
                        Ok(layers) => state.live.layers = Some(layers),
                        Err(e) => state.live.messages.model = Some(e),
                    }
                }
            }
            Reply::Device(d) => state.live.device = Some(d),
            Reply::Weights(found) => state.live.weights = found,
            Reply::Picked(dialog, paths) => {
                if let Some(action) = dialog.answer(paths) {
                    self.handle(action, state);
                }
            }
            Reply::Saved(Ok(p)) => {
                state.live.messages.project = Some(format!("Saved {}", p.display()));
                state.remember_project(p);
            }
            Reply::Saved(Err(e)) => state.live.messages.project = Some(e),
            Reply::Opened(path, Ok(project)) => self.opened(path, *project, state),
            Reply::Opened(path, Err(e)) => {
                state.recent_projects.retain(|p| p != &path);
                state.live.messages.project = Some(e);
            }
            Reply::Preview(path, top) => state.live.preview = Some((path, top)),
            Reply::WeightsChecked(path, Ok(kind)) => self.weights_checked(path, kind, state),
            Reply::WeightsChecked(_, Err(e)) => state.live.messages.model = Some(e),
            Reply::DownloadProgress(kind, done, total) => {
                state.live.downloads.insert(kind, (done, total));
            }
            Reply::Downloaded(kind, result) => downloaded(kind, result, state),
            Reply::Evaluated(run_dir, result) => evaluated(run_dir, result, state),
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
            Reply::Exported(message) => state.live.results.export = Some(message),
        }
    }

    fn folder_read(
        &mut self,
        path: PathBuf,
        result: Result<crate::data::inspect::FolderReport, String>,
        state: &mut AppState,
    ) {
        // A later choice wins over an older scan that finishes late.
        if state.project.config.data != path {
            return;
        }
        state.live.folder = match result {
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

    fn opened(&mut self, path: PathBuf, project: Project, state: &mut AppState) {
        if state.is_training() {
            state.live.messages.project =
                Some("Stop the run before opening another project.".into());
            return;
        }
        let data = project.config.data.clone();
        state.project = project;
        state.live.active_run = None;
        state.live.messages.project = Some(format!("Opened {}", path.display()));
        state.remember_project(path);
        self.handle(Action::SetDataFolder(data), state);
    }

    fn weights_checked(&mut self, path: PathBuf, kind: ModelKind, state: &mut AppState) {
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
}

fn downloaded(kind: ModelKind, result: Result<u64, String>, state: &mut AppState) {
    state.live.downloads.remove(&kind);
    match result {
        Ok(size) => {
            state.live.weights.retain(|(k, _)| *k != kind);
            state.live.weights.push((kind, size));
            state.live.messages.model = Some(format!("{} weights downloaded.", kind.name()));
        }
        Err(e) => state.live.messages.model = Some(e),
    }
}

fn evaluated(run_dir: PathBuf, result: Result<Arc<crate::run::eval::Evaluation>, String>, state: &mut AppState) {
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

/// Each model's pre-trained weight file that is here, with its size.
fn weights_here() -> Vec<(ModelKind, u64)> {
    ModelKind::ALL
        .into_iter()
        .filter_map(|k| {
            let size = std::fs::metadata(k.find_weights()?).ok()?.len();
            Some((k, size))
        })
        .collect()
}

/// Exports the run and says what happened, for the Results page.
fn export_message(run_dir: &Path, out: &Path) -> String {
    let device = burn::tensor::Device::flex();
    match export_run(run_dir, out, &device) {
        Ok(r) => format!(
            "Exported to {}. Reloaded and re-scored {} validation images: accuracy {:.1} % before, {:.1} % after; largest logit difference {:.1e}.",
            r.dir.display(),
            r.images,
            r.accuracy_before * 100.0,
            r.accuracy_after * 100.0,
            r.max_logit_diff
        ),
        Err(e) => format!("Export failed: {e}"),
    }
}

/// The model's own ImageNet top-5 for one image, on the CPU (one image needs no GPU).
fn imagenet_top5(kind: ModelKind, weights: Option<&Path>, image: &Path) -> TopK {
    let device = burn::tensor::Device::flex();
    let predictor = Predictor::imagenet(kind, weights, &device).map_err(|e| e.to_string())?;
    predictor.top_k_file(image, 5).map_err(|e| e.to_string())
}

/// Top-5 classes of the run in `run_dir` for each image named by `paths`; a file that cannot be
/// read gets its own error and the rest are still classified.
fn try_images(run_dir: &Path, paths: &[PathBuf]) -> Result<Tries, String> {
    let device = burn::tensor::Device::flex();
    let predictor = Predictor::from_run(run_dir, &device).map_err(|e| e.to_string())?;
    let (files, errors) = expand_image_paths(paths);
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
