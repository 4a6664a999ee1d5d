//! Every file and folder dialog the window opens. Dialogs run on a background job (see
//! [`super::jobs`]), never on the UI thread; the dispatcher turns each answer into an action.

use std::path::PathBuf;

use crate::data::scan::IMAGE_EXTENSIONS;

/// A question the window asks with a native dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialog {
    /// A data set folder.
    DataFolder,
    /// A project file to open.
    OpenProject,
    /// Where to save the project.
    SaveProject,
    /// An image to show the model's own ImageNet classes for.
    PreviewImage,
    /// A weight file to start from.
    WeightsFile,
    /// Images to try on the Results page's run.
    TryImages,
    /// A folder to export the Results page's run into.
    ExportFolder,
    /// A new folder for a cleaned copy of the data set.
    CleanedCopyFolder,
}

/// What a dialog picks: one folder, one file, several files, or a file to write.
enum Pick {
    Folder,
    File,
    Files,
    Save,
}

impl Dialog {
    fn title(self) -> &'static str {
        match self {
            Self::DataFolder => "Choose a data set folder",
            Self::OpenProject => "Open project",
            Self::SaveProject => "Save project",
            Self::PreviewImage => "Choose an image",
            Self::WeightsFile => "Choose a weight file",
            Self::TryImages => "Choose images to try",
            Self::ExportFolder => "Choose a folder for the exported model",
            Self::CleanedCopyFolder => "Choose a new, empty folder for the cleaned copy",
        }
    }

    fn pick(self) -> Pick {
        match self {
            Self::DataFolder | Self::ExportFolder | Self::CleanedCopyFolder => Pick::Folder,
            Self::OpenProject | Self::PreviewImage | Self::WeightsFile => Pick::File,
            Self::TryImages => Pick::Files,
            Self::SaveProject => Pick::Save,
        }
    }

    fn dialog(self) -> rfd::AsyncFileDialog {
        let dialog = rfd::AsyncFileDialog::new().set_title(self.title());
        match self {
            Self::OpenProject => dialog.add_filter("Graft project", &["json"]),
            Self::SaveProject => dialog
                .add_filter("Graft project", &["graft.json", "json"])
                .set_file_name("project.graft.json"),
            Self::PreviewImage | Self::TryImages => dialog.add_filter("Images", &IMAGE_EXTENSIONS),
            Self::WeightsFile => dialog.add_filter(
                "PyTorch or safetensors weights",
                &["pth", "pt", "bin", "safetensors"],
            ),
            Self::DataFolder | Self::ExportFolder | Self::CleanedCopyFolder => dialog,
        }
    }

    /// Shows the dialog and waits for the answer (call it off the UI thread); `None` when the
    /// user cancelled.
    pub fn ask(self) -> Option<Vec<PathBuf>> {
        let dialog = self.dialog();
        let path = |h: rfd::FileHandle| h.path().to_path_buf();
        match self.pick() {
            Pick::Folder => pollster::block_on(dialog.pick_folder()).map(|f| vec![path(f)]),
            Pick::File => pollster::block_on(dialog.pick_file()).map(|f| vec![path(f)]),
            Pick::Save => pollster::block_on(dialog.save_file()).map(|f| vec![path(f)]),
            Pick::Files => pollster::block_on(dialog.pick_files())
                .map(|files| files.into_iter().map(path).collect()),
        }
    }
}
