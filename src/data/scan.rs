//! Finding the classes and image files in a folder, without decoding anything.
//!
//! Each folder is listed once however many links lead to it (folders are told apart by device
//! and inode), only regular files are taken, and paths stay `PathBuf` throughout: a name that is
//! not UTF-8 works like any other and is shown lossily only for people.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::decode::{DecodeError, special_kind};
use super::{DataError, SkippedFile};

/// File extensions treated as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"];

/// Deepest folder nesting followed below a class folder.
pub const MAX_DEPTH: usize = 64;

/// Whether the folder came with its own split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// `root/<class>/…`: Graft splits it.
    Flat,
    /// `root/train/<class>/…` and `root/val/<class>/…` (or `validation/`).
    TrainVal,
    /// The same plus `root/test/<class>/…`: images scored once, after training.
    TrainValTest,
}

impl Layout {
    /// The layout in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Flat => "one folder per class, split by Graft",
            Self::TrainVal => "train/ and val/ folders, split as given",
            Self::TrainValTest => "train/, val/ and test/ folders, split as given",
        }
    }

    /// Whether the folders give the split (rather than Graft drawing it).
    pub fn is_given(self) -> bool {
        self != Self::Flat
    }
}

/// One image file found in a class folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundFile {
    /// The file.
    pub path: PathBuf,
    /// Index into [`Scan::classes`].
    pub class: usize,
    /// For a given split: whether it came from the validation folder.
    pub in_val_folder: bool,
    /// For [`Layout::TrainValTest`]: whether it came from the test folder.
    pub in_test_folder: bool,
}

/// What a folder holds.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The data set root.
    pub root: PathBuf,
    /// How it is laid out.
    pub layout: Layout,
    /// Class names (folder names, shown lossily when they are not UTF-8), sorted.
    pub classes: Vec<String>,
    /// Image files, grouped by class, each class's files sorted by path.
    pub files: Vec<FoundFile>,
    /// What the listing passed over, with why: files that are no regular files, folders
    /// reached again through a link, folders that cannot be read.
    pub passed_over: Vec<SkippedFile>,
    /// For [`Layout::TrainVal`]: classes with a `train/` folder but none under `val/`.
    pub only_in_train: Vec<String>,
    /// For [`Layout::TrainVal`]: classes with a `val/` folder but none under `train/`.
    pub only_in_val: Vec<String>,
}

/// Whether the file name has an image extension (case-insensitive).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
}

/// What tells two directory entries apart even when links make their paths differ.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FileKey {
    /// Device and inode.
    #[cfg(unix)]
    Inode(u64, u64),
    /// The canonical path, where there are no inodes.
    #[cfg(not(unix))]
    Path(PathBuf),
}

fn file_key(path: &Path, meta: &Metadata) -> FileKey {
    #[cfg(unix)]
    {
        let _ = path;
        use std::os::unix::fs::MetadataExt;
        FileKey::Inode(meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        FileKey::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
    }
}

/// One entry of a listed folder, its metadata read through links.
struct Entry {
    path: PathBuf,
    meta: Metadata,
}

/// Progress and cancellation for a scan of a big folder.
#[derive(Clone, Copy)]
pub struct ScanWatch<'a> {
    /// Called with the number of image files found so far, every [`REPORT_EVERY`] files.
    pub found: &'a (dyn Fn(usize) + Sync),
    /// Set from elsewhere to stop the scan (it then ends with [`DataError::Cancelled`]).
    pub cancel: &'a AtomicBool,
}

/// Files found between two progress reports of a scan.
pub const REPORT_EVERY: usize = 1000;

static NEVER: AtomicBool = AtomicBool::new(false);

impl ScanWatch<'static> {
    /// No progress reports, no cancelling.
    pub fn none() -> Self {
        Self {
            found: &|_| {},
            cancel: &NEVER,
        }
    }
}

/// Lists folders, each once, and remembers what it passed over.
struct Walker<'a> {
    visited: HashSet<FileKey>,
    passed_over: Vec<SkippedFile>,
    found: usize,
    watch: ScanWatch<'a>,
}

impl<'a> Walker<'a> {
    fn new(watch: ScanWatch<'a>) -> Self {
        Self {
            visited: HashSet::new(),
            passed_over: Vec::new(),
            found: 0,
            watch,
        }
    }

    fn cancelled(&self) -> bool {
        self.watch.cancel.load(Ordering::Relaxed)
    }

    fn count_found(&mut self) {
        self.found += 1;
        if self.found.is_multiple_of(REPORT_EVERY) {
            (self.watch.found)(self.found);
        }
    }

    fn pass_over(&mut self, path: &Path, reason: DecodeError) {
        self.passed_over.push(SkippedFile {
            path: path.to_path_buf(),
            reason,
        });
    }

    /// Marks `dir` as listed; false (and noted) when a link already led here.
    fn first_visit(&mut self, dir: &Path, meta: &Metadata) -> bool {
        if self.visited.insert(file_key(dir, meta)) {
            return true;
        }
        self.pass_over(dir, DecodeError::FolderSeen);
        false
    }

    /// The entries of `dir`, sorted by path, hidden ones left out. An unreadable folder or entry
    /// is noted and passed over.
    fn list(&mut self, dir: &Path) -> Vec<Entry> {
        if self.cancelled() {
            return Vec::new();
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.pass_over(dir, DecodeError::UnreadableFolder(e.to_string()));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    self.pass_over(dir, DecodeError::UnreadableFolder(e.to_string()));
                    continue;
                }
            };
            if is_hidden(&path) {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(meta) => out.push(Entry { path, meta }),
                // A link to nothing: worth a word only when it looks like an image.
                Err(e) if is_image(&path) => self.pass_over(&path, DecodeError::Io(e.to_string())),
                Err(_) => {}
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Takes `entry` as an image file when it is a regular file with an image extension. (Files
    /// are not told apart by inode: hard links are separate images to a person, and duplicates
    /// are the data doctor's to find.)
    fn take_file(&mut self, entry: &Entry) -> bool {
        if !is_image(&entry.path) {
            return false;
        }
        if !entry.meta.is_file() {
            let kind = special_kind(&entry.meta);
            self.pass_over(&entry.path, DecodeError::NotRegular(kind.into()));
            return false;
        }
        true
    }

    /// Image files anywhere below `dir` (already marked visited), in path order.
    fn images_below(&mut self, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        for entry in self.list(dir) {
            if entry.meta.is_dir() {
                if depth >= MAX_DEPTH {
                    self.pass_over(&entry.path, DecodeError::TooDeep(MAX_DEPTH));
                } else if self.first_visit(&entry.path, &entry.meta) {
                    self.images_below(&entry.path, depth + 1, out);
                }
            } else if self.take_file(&entry) {
                out.push(entry.path);
                self.count_found();
            }
        }
    }

    /// The sub-folders of `dir` (a folder already marked visited), each marked visited.
    fn subfolders(&mut self, dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in self.list(dir) {
            if entry.meta.is_dir() && self.first_visit(&entry.path, &entry.meta) {
                out.push(entry.path);
            }
        }
        out
    }

    /// Marks the folder at `path` visited, when it is one.
    fn enter(&mut self, path: &Path) -> bool {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => self.first_visit(path, &meta),
            _ => false,
        }
    }
}

/// The images named by `paths`: a folder stands for every image below it (sorted), a file for
/// itself whatever its extension (so a wrong file is reported by the decoder). What the listing
/// passed over (unreadable folders, special files, links already followed) comes back as
/// messages that name it.
pub fn expand_image_paths(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut walker = Walker::new(ScanWatch::none());
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            if walker.enter(path) {
                walker.images_below(path, 0, &mut files);
            }
        } else {
            files.push(path.clone());
        }
    }
    let messages = walker.passed_over.iter().map(ToString::to_string).collect();
    (files, messages)
}

fn folder_name(path: &Path) -> OsString {
    path.file_name().map(OsString::from).unwrap_or_default()
}

/// The class folders of each source (`root`, or `train/` and `val/`), keyed by folder name.
type ClassFolders = Vec<HashMap<OsString, PathBuf>>;

/// Which part of a given split a source folder holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Train,
    Val,
    Test,
}

fn layout_of(root: &Path) -> (Layout, Vec<(PathBuf, Source)>) {
    let train = root.join("train");
    let val = ["val", "validation"]
        .map(|n| root.join(n))
        .into_iter()
        .find(|p| p.is_dir());
    let test = root.join("test");
    match val {
        Some(val) if train.is_dir() && test.is_dir() => (
            Layout::TrainValTest,
            vec![
                (train, Source::Train),
                (val, Source::Val),
                (test, Source::Test),
            ],
        ),
        Some(val) if train.is_dir() => (
            Layout::TrainVal,
            vec![(train, Source::Train), (val, Source::Val)],
        ),
        _ => (Layout::Flat, vec![(root.to_path_buf(), Source::Train)]),
    }
}

/// Names present in the first source's folders but not the second's, shown for people.
fn missing_from(of: &HashMap<OsString, PathBuf>, from: &HashMap<OsString, PathBuf>) -> Vec<String> {
    let mut names: Vec<&OsString> = of.keys().filter(|n| !from.contains_key(*n)).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

/// Lists classes and files under `root`.
pub fn scan_folder(root: &Path) -> Result<Scan, DataError> {
    scan_folder_watched(root, ScanWatch::none())
}

/// [`scan_folder`], reporting progress and stopping when `watch` says so.
pub fn scan_folder_watched(root: &Path, watch: ScanWatch) -> Result<Scan, DataError> {
    if !root.is_dir() {
        return Err(DataError::NotAFolder {
            path: root.to_path_buf(),
        });
    }
    std::fs::read_dir(root).map_err(|e| DataError::Unreadable {
        path: root.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (layout, sources) = layout_of(root);
    let mut walker = Walker::new(watch);
    walker.enter(root);
    let mut folders: ClassFolders = Vec::new();
    for (dir, _) in &sources {
        if dir != root {
            walker.enter(dir);
        }
        let found = walker.subfolders(dir);
        folders.push(found.into_iter().map(|p| (folder_name(&p), p)).collect());
    }
    let mut names: Vec<OsString> = folders.iter().flat_map(|f| f.keys().cloned()).collect();
    names.sort();
    names.dedup();

    let mut files = Vec::new();
    for (class, name) in names.iter().enumerate() {
        for ((_, source), of_source) in sources.iter().zip(&folders) {
            let Some(class_dir) = of_source.get(name) else {
                continue;
            };
            let mut paths = Vec::new();
            walker.images_below(class_dir, 0, &mut paths);
            files.extend(paths.into_iter().map(|path| FoundFile {
                path,
                class,
                in_val_folder: *source == Source::Val,
                in_test_folder: *source == Source::Test,
            }));
        }
    }
    if walker.cancelled() {
        return Err(DataError::Cancelled);
    }
    (walker.watch.found)(walker.found);
    let (only_in_train, only_in_val) = match layout {
        Layout::TrainVal | Layout::TrainValTest => (
            missing_from(&folders[0], &folders[1]),
            missing_from(&folders[1], &folders[0]),
        ),
        Layout::Flat => (Vec::new(), Vec::new()),
    };
    Ok(Scan {
        root: root.to_path_buf(),
        layout,
        classes: names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect(),
        files,
        passed_over: walker.passed_over,
        only_in_train,
        only_in_val,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("graft-scan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_scan_reports_what_it_found_and_stops_when_cancelled() {
        let root = temp("watch");
        for class in ["a", "b"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
            for i in 0..1200 {
                std::fs::write(root.join(class).join(format!("{i}.png")), b"png").unwrap();
            }
        }
        let reports = std::sync::Mutex::new(Vec::new());
        let cancel = AtomicBool::new(false);
        let found = |n: usize| reports.lock().unwrap().push(n);
        let watch = ScanWatch {
            found: &found,
            cancel: &cancel,
        };
        assert_eq!(scan_folder_watched(&root, watch).unwrap().files.len(), 2400);
        assert_eq!(*reports.lock().unwrap(), [1000, 2000, 2400]);

        // Cancelled at the first report: the scan stops there and says so.
        let stop = |_: usize| cancel.store(true, Ordering::Relaxed);
        let watch = ScanWatch {
            found: &stop,
            cancel: &cancel,
        };
        assert!(matches!(
            scan_folder_watched(&root, watch),
            Err(DataError::Cancelled)
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn links_back_to_a_folder_are_followed_once() {
        let root = temp("loops");
        for class in ["a", "b"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
            std::fs::write(root.join(class).join("x.png"), b"png").unwrap();
            std::os::unix::fs::symlink(".", root.join(class).join("loop")).unwrap();
            std::os::unix::fs::symlink("..", root.join(class).join("up")).unwrap();
        }
        let scan = scan_folder(&root).unwrap();
        assert_eq!(scan.classes, ["a", "b"]);
        assert_eq!(scan.files.len(), 2, "{:?}", scan.files);
        assert!(
            scan.passed_over
                .iter()
                .all(|s| s.reason == DecodeError::FolderSeen),
            "{:?}",
            scan.passed_over
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn special_files_are_passed_over_and_odd_names_kept() {
        let root = temp("odd");
        let odd = root.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::create_dir_all(root.join("plain")).unwrap();
        std::fs::write(odd.join("x.png"), b"png").unwrap();
        std::fs::write(root.join("plain/y.png"), b"png").unwrap();
        let fifo = root.join("plain/pipe.png");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let scan = scan_folder(&root).unwrap();
        assert_eq!(scan.classes, ["caf\u{FFFD}", "plain"]);
        assert_eq!(scan.files.len(), 2);
        assert_eq!(scan.files[0].path, odd.join("x.png"));
        if made.is_ok_and(|s| s.success()) {
            assert_eq!(scan.passed_over.len(), 1, "{:?}", scan.passed_over);
            assert_eq!(scan.passed_over[0].path, fifo);
            assert_eq!(
                scan.passed_over[0].reason,
                DecodeError::NotRegular("a named pipe".into())
            );
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn train_and_val_class_sets_are_compared() {
        let root = temp("sets");
        for dir in ["train/a", "train/b", "val/a", "val/c"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join("x.png"), b"png").unwrap();
        }
        let scan = scan_folder(&root).unwrap();
        assert_eq!(scan.layout, Layout::TrainVal);
        assert_eq!(scan.only_in_train, ["b"]);
        assert_eq!(scan.only_in_val, ["c"]);
        std::fs::create_dir_all(root.join("test/a")).unwrap();
        std::fs::write(root.join("test/a/y.png"), b"png").unwrap();
        let scan = scan_folder(&root).unwrap();
        assert_eq!(scan.layout, Layout::TrainValTest);
        let tests: Vec<_> = scan.files.iter().filter(|f| f.in_test_folder).collect();
        assert_eq!(tests.len(), 1);
        assert_eq!(tests[0].path, root.join("test/a/y.png"));
        assert!(!tests[0].in_val_folder);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
