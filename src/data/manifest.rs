//! The files a data set was made of, each with its split, size and modification time: what a
//! run keeps so that evaluating it later uses the same validation images, and can say what
//! changed in the folder since.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Dataset, Sample};
pub use crate::platform::fsutil::{FileState, file_state};
use crate::platform::paths::as_path;

/// Which part of the data a file went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Trained on.
    Train,
    /// Held out for validation.
    Val,
    /// Held out as the test set, scored once after training.
    Test,
    /// Found but not usable.
    Skipped,
    /// Left out by the user's decision.
    Excluded,
}

/// One file of the data set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative to the data set root.
    #[serde(with = "as_path")]
    pub path: PathBuf,
    /// Its class name (`None` for a skipped file).
    pub class: Option<String>,
    /// Where it went.
    pub part: Part,
    /// Its size and time when the run read it.
    pub state: FileState,
}

/// Every file of a data set as a run read it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The files, in path order.
    pub files: Vec<ManifestEntry>,
}

/// What changed in a folder since a run read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderChanges {
    /// Files there now that the run did not see.
    pub added: Vec<PathBuf>,
    /// Files the run read that are gone.
    pub removed: Vec<PathBuf>,
    /// Files rewritten since (another size or modification time).
    pub modified: Vec<PathBuf>,
}

fn names(paths: &[PathBuf]) -> String {
    let mut shown: Vec<String> = paths
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > 5 {
        shown.push(format!("and {} more", paths.len() - 5));
    }
    shown.join(", ")
}

impl FolderChanges {
    /// One line per kind of change, naming the files (the first five of each).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.added.is_empty() {
            out.push(format!(
                "{} file(s) added to the data set since training, not used in this evaluation: {}",
                self.added.len(),
                names(&self.added)
            ));
        }
        if !self.removed.is_empty() {
            out.push(format!(
                "{} file(s) the run read are gone from the data set: {}",
                self.removed.len(),
                names(&self.removed)
            ));
        }
        if !self.modified.is_empty() {
            out.push(format!(
                "{} file(s) changed since training (scored as they are now): {}",
                self.modified.len(),
                names(&self.modified)
            ));
        }
        out
    }
}

impl Manifest {
    /// The files of `dataset`, their states read now (right after it was read).
    pub fn of(dataset: &Dataset) -> Self {
        let root = &dataset.root;
        let entry = |path: &Path, class: Option<String>, part: Part| {
            file_state(path).map(|state| ManifestEntry {
                path: path.strip_prefix(root).unwrap_or(path).to_path_buf(),
                class,
                part,
                state,
            })
        };
        let of_samples = |samples: &[Sample], part: Part| -> Vec<ManifestEntry> {
            samples
                .iter()
                .filter_map(|s| entry(&s.path, Some(dataset.classes[s.label].clone()), part))
                .collect()
        };
        let mut files = of_samples(&dataset.train, Part::Train);
        files.extend(of_samples(&dataset.val, Part::Val));
        files.extend(of_samples(&dataset.test, Part::Test));
        files.extend(
            dataset
                .excluded
                .iter()
                .filter_map(|p| entry(p, None, Part::Excluded)),
        );
        files.extend(
            dataset
                .skipped
                .iter()
                .filter(|s| s.path.starts_with(root) && !s.reason.is_scan_finding())
                .filter_map(|s| entry(&s.path, None, Part::Skipped)),
        );
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        Self { files }
    }

    /// The validation files (absolute, under `root`) with their class names.
    pub fn validation(&self, root: &Path) -> Vec<(PathBuf, String)> {
        self.part(root, Part::Val)
    }

    /// The files of `part` (absolute, under `root`) with their class names.
    pub fn part(&self, root: &Path, part: Part) -> Vec<(PathBuf, String)> {
        self.files
            .iter()
            .filter(|e| e.part == part)
            .filter_map(|e| Some((root.join(&e.path), e.class.clone()?)))
            .collect()
    }

    /// What differs between this manifest and `found`, the image files under `root` now.
    pub fn changes(&self, root: &Path, found: &[PathBuf]) -> FolderChanges {
        let recorded: HashMap<&Path, &FileState> = self
            .files
            .iter()
            .map(|e| (e.path.as_path(), &e.state))
            .collect();
        let mut changes = FolderChanges::default();
        let mut present = std::collections::HashSet::new();
        for path in found {
            let rel = path.strip_prefix(root).unwrap_or(path);
            present.insert(rel.to_path_buf());
            match recorded.get(rel) {
                None => changes.added.push(rel.to_path_buf()),
                Some(state) if file_state(path).as_ref() != Some(*state) => {
                    changes.modified.push(rel.to_path_buf())
                }
                Some(_) => {}
            }
        }
        changes.removed = self
            .files
            .iter()
            .filter(|e| !present.contains(&e.path))
            .map(|e| e.path.clone())
            .collect();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_removals_and_rewrites_are_each_named() {
        let root = std::env::temp_dir().join(format!("graft-manifest-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a")).unwrap();
        for name in ["keep.png", "gone.png", "edit.png"] {
            std::fs::write(root.join("a").join(name), b"one").unwrap();
        }
        let entry = |name: &str, part| ManifestEntry {
            path: Path::new("a").join(name),
            class: Some("a".into()),
            part,
            state: file_state(&root.join("a").join(name)).unwrap(),
        };
        let manifest = Manifest {
            files: vec![
                entry("edit.png", Part::Train),
                entry("gone.png", Part::Val),
                entry("keep.png", Part::Val),
            ],
        };
        std::fs::remove_file(root.join("a/gone.png")).unwrap();
        std::fs::write(root.join("a/edit.png"), b"longer").unwrap();
        std::fs::write(root.join("a/new.png"), b"new").unwrap();
        let found: Vec<PathBuf> = ["edit.png", "keep.png", "new.png"]
            .iter()
            .map(|n| root.join("a").join(n))
            .collect();
        let changes = manifest.changes(&root, &found);
        assert_eq!(changes.added, [Path::new("a/new.png")]);
        assert_eq!(changes.removed, [Path::new("a/gone.png")]);
        assert_eq!(changes.modified, [Path::new("a/edit.png")]);
        assert_eq!(changes.describe().len(), 3);
        assert_eq!(manifest.validation(&root).len(), 2);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
