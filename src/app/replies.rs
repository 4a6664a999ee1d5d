//! What the window does with each background job's answer.

use std::path::PathBuf;
use std::sync::Arc;

use super::actions::Action;
use super::dialogs::Dialog;
use super::dispatch::Dispatcher;
use super::jobs::Reply;
use super::state::{AppState, CurveState, EvalState, FolderState, HealthState, Project};
use crate::data::inspect::FolderReport;
use crate::models::ModelKind;
use crate::run::eval::Evaluation;

impl Dispatcher {
    /// Folds one job's answer into `state`.
    pub(super) fn apply(&mut self, reply: Reply, state: &mut AppState) {
        match reply {
            Reply::Folder(path, result) => self.folder_read(path, *result, state),
            Reply::FolderProgress(path, at) => {
                if let FolderState::Scanning(scanning, progress) = &mut state.live.folder
                    && *scanning == path
                {
                    *progress = Some(at);
                }
            }
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
                if let Some(action) = answer(dialog, paths) {
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
            Reply::Downloaded(kind, result) => {
                self.download_cancels.remove(&kind);
                downloaded(kind, result, state)
            }
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
            Reply::ExamineProgress(root, done, total) => {
                if root == state.project.config.data
                    && matches!(state.live.health.state, HealthState::Examining(..))
                {
                    state.live.health.state = HealthState::Examining(done, total);
                }
            }
            Reply::Examined(root, result) => {
                self.examine_cancel = None;
                // A report on a folder no longer chosen is dropped.
                if root == state.project.config.data {
                    state.live.health.state = match result {
                        Ok(report) => HealthState::Ready(report),
                        Err(e) => HealthState::Failed(e),
                    };
                }
            }
            Reply::CleanedCopy(message) => state.live.health.cleaned_copy = Some(message),
            Reply::Explained(key, picture) => {
                if let Some(ctx) = self.jobs.context() {
                    state.live.maps.insert(ctx, key, picture);
                }
            }
            Reply::ExplainFailed(keys, why) => state.live.maps.fail_pending(&keys, &why),
            Reply::CurveProgress(root, done, total) => {
                if root == state.project.config.data
                    && matches!(state.live.curve, CurveState::Measuring(..))
                {
                    state.live.curve = CurveState::Measuring(done, total);
                }
            }
            Reply::CurveMeasured(root, result) => {
                if root == state.project.config.data {
                    state.live.curve = match result {
                        Ok(curve) => CurveState::Done(curve),
                        Err(e) => CurveState::Failed(e),
                    };
                }
            }
        }
    }

    fn folder_read(
        &mut self,
        path: PathBuf,
        result: Result<FolderReport, String>,
        state: &mut AppState,
    ) {
        // A later choice wins over an older scan that finishes late.
        if state.project.config.data != path {
            return;
        }
        self.scan_cancel = None;
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
        state.live.messages.project = Some(if data.is_dir() {
            format!("Opened {}", path.display())
        } else {
            format!(
                "Opened {}, but its data folder {} is not there (moved or renamed?): locate it to go on.",
                path.display(),
                data.display()
            )
        });
        state.live.missing_data = (!data.is_dir()).then(|| data.clone());
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

fn evaluated(run_dir: PathBuf, result: Result<Arc<Evaluation>, String>, state: &mut AppState) {
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

/// What the window does with the picked paths.
fn answer(dialog: Dialog, mut paths: Vec<PathBuf>) -> Option<Action> {
    if paths.is_empty() {
        return None;
    }
    if dialog == Dialog::TryImages {
        return Some(Action::TryImages(paths));
    }
    let one = paths.pop()?;
    Some(match dialog {
        Dialog::DataFolder => Action::SetDataFolder(one),
        Dialog::OpenProject => Action::OpenProject(one),
        Dialog::SaveProject => Action::SaveProjectTo(one),
        Dialog::PreviewImage => Action::PreviewImage(one),
        Dialog::WeightsFile => Action::UseWeightsFile(one),
        Dialog::ExportFolder => Action::ExportTo(one),
        Dialog::CleanedCopyFolder => Action::ExportCleanedTo(one),
        Dialog::TryImages => Action::TryImages(vec![one]),
    })
}
