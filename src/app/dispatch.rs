//! Carries out what the user asked for. Panels send [`Action`]s; the work runs on background
//! [`Jobs`], whose replies [`Dispatcher::poll`] folds into the state every frame, together with
//! the training engine's events. Nothing here blocks the UI thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use super::actions::Action;
use super::class_maps::{MapKey, MapSource};
use super::jobs::{Jobs, Reply};
use super::run_view::{RunStatus, RunView};
use super::state::{AppState, EvalState, FolderState, Page};
use super::tasks::{
    class_maps, examine_data, export_message, imagenet_top5, measure_curve, read_project,
    try_images, weights_here,
};
use super::thumbnails::{Decoded, spawn_decoders};
use crate::config::{DevicePreference, TrainConfig};
use crate::data::DataError;
use crate::data::inspect::inspect_folder_watched;
use crate::data::scan::is_image;
use crate::models::download;
use crate::models::{ModelKind, describe_layers, detect_kind, zoo};
use crate::platform::device;
use crate::platform::fsutil::{ensure_outside, write_json_atomic};
use crate::run::advice::Remedy;
use crate::run::eval::evaluate_run;
use crate::train::{self, TrainHandle};

/// Runs actions and collects their results.
pub struct Dispatcher {
    /// Background jobs and their replies.
    pub(super) jobs: Jobs,
    training: Option<TrainHandle>,
    /// The learning-rate sweep, while it runs.
    lr_find: Option<TrainHandle>,
    started: bool,
    /// The latest layer-list request; older answers are dropped.
    pub(super) layers_request: u64,
    thumb_requests: Option<Sender<PathBuf>>,
    thumb_results: (Sender<Decoded>, Receiver<Decoded>),
    /// Runs waiting to start when the active one ends (a baseline comparison).
    queue: std::collections::VecDeque<(String, TrainConfig)>,
    /// The cancel flag of each weight download in flight.
    pub(super) download_cancels: std::collections::HashMap<ModelKind, Arc<AtomicBool>>,
    /// The cancel flag of the data doctor, while it runs.
    pub(super) examine_cancel: Option<Arc<AtomicBool>>,
    /// The cancel flag of the folder inspection, while it runs.
    pub(super) scan_cancel: Option<Arc<AtomicBool>>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self {
            jobs: Jobs::default(),
            training: None,
            lr_find: None,
            started: false,
            layers_request: 0,
            thumb_requests: None,
            thumb_results: channel(),
            queue: Default::default(),
            download_cancels: Default::default(),
            examine_cancel: None,
            scan_cancel: None,
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
        self.jobs.spawn(
            || Some(Reply::Weights(weights_here())),
            |_| Reply::Weights(Vec::new()),
        );
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
            Action::CancelDownload(kind) => {
                if let Some(cancel) = self.download_cancels.get(&kind) {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Action::ExamineData => self.examine(state),
            Action::CancelExamine => self.cancel_examine(),
            Action::CancelScan => self.cancel_scan(),
            Action::ExportCleanedTo(out) => self.export_cleaned(out, state),
            Action::ApplyRemedy(remedy) => {
                if !remedy.apply(&mut state.project.config) && remedy == Remedy::ExamineData {
                    state.live.page = Page::Health;
                    self.examine(state);
                }
            }
            Action::ExplainImages(keys) => self.explain(keys),
            Action::FindLr => self.find_lr(state),
            Action::CancelLrFind => self.lr_find.iter().for_each(TrainHandle::cancel),
            Action::MeasureCurve => self.measure_curve(state),
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
        // Locating a project's moved folder keeps its decisions (they name files relative to
        // it); another folder starts without any.
        let relocated = state.live.missing_data.is_some() && path.is_dir();
        if state.project.config.data != path && !relocated {
            state.project.config.curation = Default::default();
        }
        if path.is_dir() {
            state.live.missing_data = None;
        }
        self.cancel_examine();
        state.live.health = Default::default();
        state.project.config.data = path.clone();
        state.live.folder = FolderState::Scanning(path.clone(), None);
        state.live.thumb_class = 0;
        state.live.messages.data = None;
        self.cancel_scan();
        let cancel = Arc::new(AtomicBool::new(false));
        self.scan_cancel = Some(cancel.clone());
        let send = std::sync::Mutex::new(self.jobs.sender());
        let failed = path.clone();
        self.jobs.spawn(
            move || {
                let progress = |at| {
                    if let Ok(send) = send.lock() {
                        send(Reply::FolderProgress(path.clone(), at));
                    }
                };
                let report = match inspect_folder_watched(&path, &progress, &cancel) {
                    Err(DataError::Cancelled) => Err(format!(
                        "Reading {} was cancelled: open or drop a folder to go on.",
                        path.display()
                    )),
                    other => other.map_err(|e| e.to_string()),
                };
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
        let cancel = Arc::new(AtomicBool::new(false));
        self.download_cancels.insert(kind, cancel.clone());
        self.jobs.spawn(
            move || {
                let progress = |done, total| send(Reply::DownloadProgress(kind, done, total));
                let result = download::ensure(entry, &progress, &cancel)
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

    fn examine(&mut self, state: &mut AppState) {
        if self.examine_cancel.is_some() {
            return;
        }
        let root = state.project.config.data.clone();
        let config = &state.project.config;
        let options = crate::doctor::DoctorOptions::for_model(config.model, config.weights.clone());
        let cancel = Arc::new(AtomicBool::new(false));
        self.examine_cancel = Some(cancel.clone());
        state.live.health.state = super::state::HealthState::Examining(0, 0);
        let send = self.jobs.sender();
        let failed = root.clone();
        self.jobs.spawn(
            move || {
                let progress =
                    |done, total| send(Reply::ExamineProgress(root.clone(), done, total));
                let report = examine_data(&root, &options, &progress, &cancel);
                Some(Reply::Examined(root, report))
            },
            move |why| Reply::Examined(failed, Err(why)),
        );
    }

    fn measure_curve(&mut self, state: &mut AppState) {
        if matches!(state.live.curve, super::state::CurveState::Measuring(..)) {
            return;
        }
        let root = state.project.config.data.clone();
        let config = &state.project.config;
        let options = crate::doctor::DoctorOptions::for_model(config.model, config.weights.clone());
        state.live.curve = super::state::CurveState::Measuring(0, 0);
        let send = self.jobs.sender();
        let failed = root.clone();
        self.jobs.spawn(
            move || {
                let progress = |done, total| send(Reply::CurveProgress(root.clone(), done, total));
                let curve = measure_curve(&root, &options, &progress);
                Some(Reply::CurveMeasured(root, curve))
            },
            move |why| Reply::CurveMeasured(failed, Err(why)),
        );
    }

    /// One job per model: it loads the model once and answers map by map.
    fn explain(&mut self, keys: Vec<MapKey>) {
        let mut by_source: Vec<(MapSource, Vec<MapKey>)> = Vec::new();
        for key in keys {
            match by_source.iter_mut().find(|(s, _)| *s == key.source) {
                Some((_, group)) => group.push(key),
                None => by_source.push((key.source.clone(), vec![key])),
            }
        }
        for (source, keys) in by_source {
            let send = self.jobs.sender();
            let failed = keys.clone();
            self.jobs.spawn(
                move || {
                    class_maps(&source, keys, &|key, picture| {
                        send(Reply::Explained(key, picture))
                    });
                    None
                },
                move |why| Reply::ExplainFailed(failed, why),
            );
        }
    }

    fn cancel_scan(&mut self) {
        raise(&mut self.scan_cancel);
    }

    fn cancel_examine(&mut self) {
        raise(&mut self.examine_cancel);
    }

    fn export_cleaned(&mut self, out: PathBuf, state: &mut AppState) {
        let root = state.project.config.data.clone();
        let curation = state.project.config.curation.clone();
        state.live.health.cleaned_copy = Some(format!("Writing {}…", out.display()));
        self.jobs.spawn(
            move || {
                let message = crate::data::cleaned::export_cleaned(&root, &curation, &out)
                    .map_or_else(|e| format!("No cleaned copy: {e}"), |c| c.describe());
                Some(Reply::CleanedCopy(message))
            },
            |why| Reply::CleanedCopy(format!("No cleaned copy: {why}")),
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
                let result = ensure_outside(&path, &project.config.data)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        write_json_atomic(&path, &project)
                            .map(|()| path.clone())
                            .map_err(|e| format!("cannot save {}: {e}", path.display()))
                    });
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
        self.training = Some(train::spawn(config, self.repaint_notify()));
    }

    fn repaint_notify(&self) -> Option<train::Notify> {
        self.jobs
            .context()
            .cloned()
            .map(|ctx| Arc::new(move || ctx.request_repaint()) as train::Notify)
    }

    /// Starts a learning-rate sweep for the current settings (one at a time).
    fn find_lr(&mut self, state: &mut AppState) {
        if self.lr_find.is_some() {
            return;
        }
        let config = state.project.config.clone();
        if let Err(e) = config.validate() {
            state.live.messages.train = Some(e.to_string());
            return;
        }
        state.live.lr_finder.start();
        let settings = train::lr_find::SweepSettings::default();
        self.lr_find = Some(train::spawn_lr_find(
            config,
            settings,
            self.repaint_notify(),
        ));
    }

    fn poll_lr_find(&mut self, state: &mut AppState) {
        let Some(handle) = &mut self.lr_find else {
            return;
        };
        for _ in 0..1000 {
            let Some(event) = handle.try_next() else {
                break;
            };
            state.live.lr_finder.apply(&event);
        }
        if handle.is_ended() {
            self.lr_find = None;
            if state.live.lr_finder.is_sweeping() {
                // Cancelled: what arrived stays on the plot.
                state.live.lr_finder.status = super::lr_finder::SweepStatus::Idle;
            }
        }
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
        self.poll_lr_find(state);
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
}

/// Sets the cancel flag of the job in `flag`, if one runs, and forgets it.
fn raise(flag: &mut Option<Arc<AtomicBool>>) {
    if let Some(cancel) = flag.take() {
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
