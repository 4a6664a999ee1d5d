//! What the user can ask for: panels push [`Action`]s, the dispatcher carries them out.

use std::path::PathBuf;

use super::class_maps::MapKey;
use super::dialogs::Dialog;
use crate::models::ModelKind;
use crate::run::advice::Remedy;

/// Something the user asked for that needs more than a state change.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Show a file or folder dialog; what is picked becomes the dialog's action.
    Ask(Dialog),
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
    /// Save the project to this file.
    SaveProjectTo(PathBuf),
    /// Open this project file.
    OpenProject(PathBuf),
    /// Show the selected model's own ImageNet top-5 for this image.
    PreviewImage(PathBuf),
    /// Start from this weight file (its architecture is read from its keys).
    UseWeightsFile(PathBuf),
    /// Decode thumbnails for these files.
    LoadThumbnails(Vec<PathBuf>),
    /// Score the run in this folder on its validation split.
    Evaluate(PathBuf),
    /// Classify these images (folders stand for the images below them) with the Results
    /// page's run.
    TryImages(Vec<PathBuf>),
    /// Export the Results page's run into this folder.
    ExportTo(PathBuf),
    /// Train pre-trained-frozen, pre-trained-fine-tuned and from-scratch runs, one after another.
    BaselineComparison,
    /// Train again with the settings of this run (an index into `project.runs`).
    Rerun(usize),
    /// Download this model's pre-trained weights into the cache.
    DownloadWeights(ModelKind),
    /// Stop that download (what arrived is kept for the next attempt).
    CancelDownload(ModelKind),
    /// Run the data doctor on the data folder.
    ExamineData,
    /// Stop the data doctor.
    CancelExamine,
    /// Stop reading the data folder.
    CancelScan,
    /// Write the data folder with the project's decisions applied into this new folder.
    ExportCleanedTo(PathBuf),
    /// Take the next step a piece of run advice names (a settings change, or examining the
    /// data).
    ApplyRemedy(Remedy),
    /// Compute these class maps in the background.
    ExplainImages(Vec<MapKey>),
    /// Sweep the learning rate for the current settings.
    FindLr,
    /// Stop the sweep.
    CancelLrFind,
    /// Measure accuracy against images per class for the data folder.
    MeasureCurve,
}
