//! Finding the classes and image files in a folder, without decoding anything.

use std::path::{Path, PathBuf};

use super::DataError;

/// File extensions treated as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"];

/// Whether the folder came with its own split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// `root/<class>/…`: Graft splits it.
    Flat,
    /// `root/train/<class>/…` and `root/val/<class>/…` (or `validation/`).
    TrainVal,
}

/// One image file found in a class folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundFile {
    /// The file.
    pub path: PathBuf,
    /// Index into [`Scan::classes`].
    pub class: usize,
    /// For [`Layout::TrainVal`]: whether it came from the validation folder.
    pub in_val_folder: bool,
}

/// What a folder holds.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The data set root.
    pub root: PathBuf,
    /// How it is laid out.
    pub layout: Layout,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Image files, grouped by class, each class's files sorted by path.
    pub files: Vec<FoundFile>,
}

/// Whether the file name has an image extension (case-insensitive).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::Unreadable {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::Unreadable {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        paths.push(entry.path());
    }
    paths.retain(|p| !is_hidden(p));
    paths.sort();
    Ok(paths)
}

/// The images named by `paths`: a folder stands for every image below it (sorted), a file for
/// itself whatever its extension (so a wrong file is reported by the decoder). Folders that
/// cannot be read are returned as messages.
pub fn expand_image_paths(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            if let Err(e) = images_below(path, &mut files) {
                errors.push(e.to_string());
            }
        } else {
            files.push(path.clone());
        }
    }
    (files, errors)
}

/// Image files anywhere below `dir`, sorted.
fn images_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            images_below(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Lists classes and files under `root`.
pub fn scan_folder(root: &Path) -> Result<Scan, DataError> {
    if !root.is_dir() {
        return Err(DataError::NotAFolder {
            path: root.to_path_buf(),
        });
    }
    let train = root.join("train");
    let val = ["val", "validation"]
        .map(|n| root.join(n))
        .into_iter()
        .find(|p| p.is_dir());
    let (layout, sources) = match val {
        Some(val) if train.is_dir() => (Layout::TrainVal, vec![(train, false), (val, true)]),
        _ => (Layout::Flat, vec![(root.to_path_buf(), false)]),
    };

    let mut classes: Vec<String> = Vec::new();
    for (dir, _) in &sources {
        for class_dir in subfolders(dir)? {
            classes.push(folder_name(&class_dir));
        }
    }
    classes.sort();
    classes.dedup();

    let mut files = Vec::new();
    for (class, name) in classes.iter().enumerate() {
        for (dir, in_val_folder) in &sources {
            let class_dir = dir.join(name);
            if !class_dir.is_dir() {
                continue;
            }
            let mut paths = Vec::new();
            images_below(&class_dir, &mut paths)?;
            files.extend(paths.into_iter().map(|path| FoundFile {
                path,
                class,
                in_val_folder: *in_val_folder,
            }));
        }
    }
    Ok(Scan {
        root: root.to_path_buf(),
        layout,
        classes,
        files,
    })
}
