//! Plain state behind the window: what is saved (a project), and what only lives while the app
//! runs. Panels read and edit it; effects go through [`super::dispatch::Action`]s.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::run_view::RunView;
use crate::config::{FreezePlan, TrainConfig};
use crate::data::inspect::{FolderReport, InspectProgress};
use crate::models::{LayerGroup, ModelKind};
use crate::run::eval::Evaluation;

/// What a project file holds, and what returns when the app restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    /// Data folder, model, freeze plan and hyperparameters.
    pub config: TrainConfig,
    /// Runs so far, with their curves.
    pub runs: Vec<RunView>,
}

/// The data folder as last inspected.
#[derive(Clone, Debug, Default)]
pub enum FolderState {
    /// Nothing chosen yet.
    #[default]
    None,
    /// Being inspected in the background, with how far it is.
    Scanning(PathBuf, Option<InspectProgress>),
    /// Inspected.
    Ready(FolderReport),
    /// Could not be used.
    Error(String),
}

/// Class names with probabilities, best first, or why there are none.
pub type TopK = Result<Vec<(String, f32)>, String>;

/// Which page the central panel shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Page {
    /// Settings, controls and live curves.
    #[default]
    Train,
    /// One finished run: metrics, confusion matrix, mistakes, try it, export.
    Results,
    /// All runs side by side, and the baseline comparison.
    Compare,
    /// The data doctor's findings, with a decision for each.
    Health,
}

/// The data doctor's examination of the data folder.
#[derive(Clone, Debug, Default)]
pub enum HealthState {
    /// Not examined yet.
    #[default]
    None,
    /// Being examined in the background: images done and in all.
    Examining(usize, usize),
    /// Examined.
    Ready(std::sync::Arc<crate::doctor::Report>),
    /// Could not be examined.
    Failed(String),
}

/// The Data health page.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// The examination.
    pub state: HealthState,
    /// What the last cleaned copy did, or is doing.
    pub cleaned_copy: Option<String>,
}

/// A run's evaluation on its validation split.
#[derive(Clone, Debug)]
pub enum EvalState {
    /// Being computed in the background.
    Running,
    /// Done.
    Ready(std::sync::Arc<Evaluation>),
    /// Could not be computed.
    Failed(String),
}

/// The Results page.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// The run shown, as an index into `project.runs`.
    pub run: Option<usize>,
    /// The evaluation of the run in this folder.
    pub evaluation: Option<(PathBuf, EvalState)>,
    /// The confusion cell `(truth, predicted)` whose images the gallery shows; `None` shows
    /// every mistake.
    pub cell: Option<(usize, usize)>,
    /// Images the user tried on the run, with its top classes for each.
    pub tries: Vec<(PathBuf, TopK)>,
    /// Whether a try is being computed.
    pub trying: bool,
    /// What the last export did.
    pub export: Option<String>,
}

/// Messages shown next to where the user acted.
#[derive(Clone, Debug, Default)]
pub struct Messages {
    /// Data panel.
    pub data: Option<String>,
    /// Model panel.
    pub model: Option<String>,
    /// Train panel.
    pub train: Option<String>,
    /// Project menu.
    pub project: Option<String>,
}

/// Everything the window shows.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppState {
    /// The current project.
    pub project: Project,
    /// Where the project was last saved or opened from.
    pub project_path: Option<PathBuf>,
    /// Recently opened or saved projects, newest first.
    pub recent_projects: Vec<PathBuf>,
    /// Theme and hints.
    pub preferences: super::habits::Preferences,
    /// Not saved: rebuilt while the app runs.
    #[serde(skip)]
    pub live: Live,
}

/// State that only exists while the app runs.
#[derive(Debug, Default)]
pub struct Live {
    /// The data folder.
    pub folder: FolderState,
    /// Layer groups of the selected model (`None` while they are computed).
    pub layers: Option<Vec<LayerGroup>>,
    /// The device training will use, once probed.
    pub device: Option<String>,
    /// Messages near each panel.
    pub messages: Messages,
    /// The layer row last clicked, for shift-click ranges.
    pub last_layer_click: Option<usize>,
    /// The run that is training now, as an index into `project.runs`.
    pub active_run: Option<usize>,
    /// The image last previewed and the model's own ImageNet top-5 for it.
    pub preview: Option<(PathBuf, TopK)>,
    /// Size in bytes of each model's pre-trained weight file, where one was found.
    pub weights: Vec<(ModelKind, u64)>,
    /// Thumbnails decoded so far.
    pub thumbs: super::thumbnails::Thumbnails,
    /// The class whose thumbnails are shown.
    pub thumb_class: usize,
    /// Weight downloads in progress: bytes so far and in all.
    pub downloads: std::collections::HashMap<ModelKind, (u64, Option<u64>)>,
    /// The page the central panel shows.
    pub page: Page,
    /// The Results page's state.
    pub results: Results,
    /// The Data health page's state.
    pub health: Health,
    /// Class activation maps computed so far, and how they are shown.
    pub maps: super::class_maps::ClassMaps,
    /// Frame times in seconds (UI work only).
    pub frame_times: super::frame_times::FrameTimes,
    /// The data folder an opened project names, when it is not there.
    pub missing_data: Option<PathBuf>,
    /// The learning-rate finder.
    pub lr_finder: super::lr_finder::LrFinderView,
    /// The data-efficiency curve of the data folder.
    pub curve: CurveState,
}

/// The data-efficiency curve on the Compare page.
#[derive(Clone, Debug, Default)]
pub enum CurveState {
    /// Not measured.
    #[default]
    None,
    /// Being measured: images whose features are done, of all.
    Measuring(usize, usize),
    /// Measured.
    Done(std::sync::Arc<crate::doctor::curve::Curve>),
    /// Failed with this message.
    Failed(String),
}

impl Live {
    /// Size of `kind`'s pre-trained weight file, if it is here.
    pub fn weights_size(&self, kind: ModelKind) -> Option<u64> {
        self.weights
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
    }
}

impl AppState {
    /// While a run trains: whether it is paused.
    pub fn active_status_paused(&self) -> Option<bool> {
        if !self.is_training() {
            return None;
        }
        let run = self
            .live
            .active_run
            .and_then(|i| self.project.runs.get(i))?;
        Some(run.status == super::run_view::RunStatus::Paused)
    }

    /// Whether a run is training (layer toggles and settings are locked then).
    pub fn is_training(&self) -> bool {
        self.live
            .active_run
            .and_then(|i| self.project.runs.get(i))
            .is_some_and(RunView::is_active)
    }

    /// Names of the current model's layer groups.
    pub fn layer_names(&self) -> Vec<String> {
        self.live
            .layers
            .as_ref()
            .map(|l| l.iter().map(|g| g.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether each layer group is frozen under the current plan.
    pub fn frozen(&self) -> Vec<bool> {
        self.project.config.freeze.resolve(&self.layer_names())
    }

    /// Sets whether the groups `range` are frozen, keeping the others as they are.
    pub fn set_frozen(&mut self, range: std::ops::RangeInclusive<usize>, frozen: bool) {
        let names = self.layer_names();
        let mut now = self.frozen();
        for i in range {
            if let Some(f) = now.get_mut(i) {
                *f = frozen;
            }
        }
        self.project.config.freeze = FreezePlan::Groups(
            names
                .into_iter()
                .zip(now)
                .filter(|(_, f)| *f)
                .map(|(n, _)| n)
                .collect(),
        );
    }

    /// Parameters trained under the current plan, and all parameters.
    pub fn trainable_params(&self) -> (usize, usize) {
        let Some(layers) = &self.live.layers else {
            return (0, 0);
        };
        let frozen = self.frozen();
        let total = layers.iter().map(|g| g.params).sum();
        let trainable = layers
            .iter()
            .zip(frozen)
            .filter(|(_, f)| !f)
            .map(|(g, _)| g.params)
            .sum();
        (trainable, total)
    }

    /// A short description of the freeze plan, for legends.
    pub fn freeze_summary(&self) -> String {
        self.project
            .config
            .freeze
            .describe(Some(&self.layer_names()))
    }

    /// Finished runs that left a checkpoint, as indices into `project.runs`.
    pub fn finished_runs(&self) -> Vec<usize> {
        self.project
            .runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.checkpoint_dir().is_some())
            .map(|(i, _)| i)
            .collect()
    }

    /// The folder of the run the Results page shows, if it finished with a checkpoint.
    pub fn results_run_dir(&self) -> Option<PathBuf> {
        let run = self.project.runs.get(self.live.results.run?)?;
        run.checkpoint_dir().cloned()
    }

    /// Remembers `path` at the top of the recent projects.
    pub fn remember_project(&mut self, path: PathBuf) {
        self.recent_projects.retain(|p| p != &path);
        self.recent_projects.insert(0, path.clone());
        self.recent_projects.truncate(8);
        self.project_path = Some(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_layers(n: usize) -> AppState {
        let mut state = AppState::default();
        state.live.layers = Some(
            (0..n)
                .map(|i| LayerGroup {
                    name: format!("g{i}"),
                    description: String::new(),
                    params: 10 * (i + 1),
                    output_shape: vec![],
                })
                .collect(),
        );
        state
    }

    #[test]
    fn default_plan_freezes_all_but_the_last_group() {
        let state = state_with_layers(4);
        assert_eq!(state.frozen(), [true, true, true, false]);
        assert_eq!(state.trainable_params(), (40, 100));
    }

    #[test]
    fn toggling_a_range_changes_only_that_range() {
        let mut state = state_with_layers(4);
        state.set_frozen(1..=2, false);
        assert_eq!(state.frozen(), [true, false, false, false]);
        state.set_frozen(0..=0, false);
        assert_eq!(state.frozen(), [false, false, false, false]);
        assert_eq!(state.trainable_params(), (100, 100));
    }
}
