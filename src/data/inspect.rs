//! A quick look at a folder for the data panel: classes, files, and the files that are plainly
//! not usable, from their headers alone (a full decode happens when training starts).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use image::{ImageDecoder, ImageReader};

use super::decode::{DecodeError, check_regular_file, checked_decoder};
use super::scan::{Layout, ScanWatch, scan_folder_watched};
use super::{DataError, SkippedFile, parallel_map};

/// One class as the folder holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassFiles {
    /// Class name.
    pub name: String,
    /// Files that look usable.
    pub files: Vec<PathBuf>,
    /// Of those, how many come from a `val/` folder.
    pub in_val_folder: usize,
    /// Of those, how many come from a `test/` folder.
    pub in_test_folder: usize,
}

/// What the data panel shows about a folder.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderReport {
    /// The folder.
    pub root: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// Classes, sorted, each with its usable-looking files.
    pub classes: Vec<ClassFiles>,
    /// Files whose header already shows they cannot be used, and what the scan passed over.
    pub problems: Vec<SkippedFile>,
    /// For `train/` + `val/`: class folders present on one side only, in words.
    pub class_mismatch: Vec<String>,
}

impl FolderReport {
    /// Images across all classes.
    pub fn total(&self) -> usize {
        self.classes.iter().map(|c| c.files.len()).sum()
    }
}

/// Reads the header of `path` and says why it cannot be used, if it plainly cannot.
pub fn check_header(path: &Path) -> Result<(), DecodeError> {
    if check_regular_file(path)? == 0 {
        return Err(DecodeError::Empty);
    }
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    if reader.format().is_none() {
        return Err(DecodeError::NotAnImage);
    }
    let mut decoder = checked_decoder(reader)?;
    // Orientation is read so that a broken EXIF block shows here, not at training time.
    let _ = decoder.orientation();
    Ok(())
}

/// How far an inspection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectProgress {
    /// Listing folders: image files found so far.
    Found(usize),
    /// Reading headers: files checked so far, and in all.
    Checked(usize, usize),
}

/// Headers checked between two progress reports.
const CHECKS_PER_REPORT: usize = 500;

/// Scans `root` and checks every file's header.
pub fn inspect_folder(root: &Path) -> Result<FolderReport, DataError> {
    inspect_folder_watched(root, &|_| {}, &AtomicBool::new(false))
}

/// [`inspect_folder`] with progress reports, stopped (with [`DataError::Cancelled`]) when
/// `cancel` is set; headers are read on every core.
pub fn inspect_folder_watched(
    root: &Path,
    progress: &(dyn Fn(InspectProgress) + Sync),
    cancel: &AtomicBool,
) -> Result<FolderReport, DataError> {
    let found = |n| progress(InspectProgress::Found(n));
    let scan = scan_folder_watched(
        root,
        ScanWatch {
            found: &found,
            cancel,
        },
    )?;
    let checked = |done: usize, total: usize| {
        if done == total || done.is_multiple_of(CHECKS_PER_REPORT) {
            progress(InspectProgress::Checked(done, total));
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let check = |i: usize| check_header(&scan.files[i].path);
    let headers = parallel_map(scan.files.len(), threads, &checked, cancel, &check)?;
    let mut classes: Vec<ClassFiles> = scan
        .classes
        .iter()
        .map(|name| ClassFiles {
            name: name.clone(),
            files: Vec::new(),
            in_val_folder: 0,
            in_test_folder: 0,
        })
        .collect();
    let mut problems = scan.passed_over.clone();
    for (file, header) in scan.files.into_iter().zip(headers) {
        match header {
            Ok(()) => {
                let class = &mut classes[file.class];
                class.files.push(file.path);
                class.in_val_folder += usize::from(file.in_val_folder);
                class.in_test_folder += usize::from(file.in_test_folder);
            }
            Err(reason) => problems.push(SkippedFile {
                path: file.path,
                reason,
            }),
        }
    }
    Ok(FolderReport {
        root: root.to_path_buf(),
        layout: scan.layout,
        classes,
        problems,
        class_mismatch: class_mismatch(&scan.only_in_train, &scan.only_in_val),
    })
}

/// The sentences the data panel shows for class folders on one side of the split only.
pub fn class_mismatch(only_in_train: &[String], only_in_val: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if !only_in_train.is_empty() {
        out.push(format!(
            "no val/ folder for {}: nothing will measure these classes",
            only_in_train.join(", ")
        ));
    }
    if !only_in_val.is_empty() {
        out.push(format!(
            "no train/ folder for {}: these classes cannot be learnt and are left out",
            only_in_val.join(", ")
        ));
    }
    out
}
