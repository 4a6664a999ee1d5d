//! "Export cleaned copy": a new folder with the user's decisions applied (excluded files left
//! out, relabelled files under their new class), laid out like the original. Files are hard
//! links where the file system allows and copies (written to a temporary file, then renamed)
//! where it does not. The data folder is only read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DataError, curate, scan_folder};
use crate::config::Curation;
use crate::platform::fsutil::{
    InsideDataSet, ensure_outside, set_normal_permissions, temp_path, write_json_atomic,
};

/// Why a cleaned copy could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// The data folder cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The destination lies inside the data folder.
    #[error(transparent)]
    InsideDataSet(#[from] InsideDataSet),
    /// The destination already holds files.
    #[error(
        "{0} already exists and is not empty: choose a new or empty folder for the cleaned copy"
    )]
    NotEmpty(PathBuf),
    /// A file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What a cleaned copy holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanedCopy {
    /// The new folder.
    #[serde(skip)]
    pub dir: PathBuf,
    /// Files in it.
    pub files: usize,
    /// Of those, how many are hard links to the originals.
    pub linked: usize,
    /// Files left out by the decisions.
    pub excluded: usize,
    /// Files placed under another class.
    pub relabelled: usize,
    /// Decisions that could not be applied, in words.
    pub notes: Vec<String>,
}

impl CleanedCopy {
    /// The copy in one sentence.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "Wrote {} images to {} ({} hard-linked, {} copied); {} left out, {} under a new class.",
            self.files,
            self.dir.display(),
            self.linked,
            self.files - self.linked,
            self.excluded,
            self.relabelled
        );
        if self.linked > 0 {
            text.push_str(" A hard link shares its bytes with the original: edit copies, not links, in place.");
        }
        for note in &self.notes {
            text.push(' ');
            text.push_str(note);
        }
        text
    }
}

/// The record a cleaned copy keeps of how it was made.
const RECORD: &str = "graft-cleaned.json";

/// Writes `root` with `curation` applied into `out`, which must be new or empty and outside
/// `root`.
pub fn export_cleaned(
    root: &Path,
    curation: &Curation,
    out: &Path,
) -> Result<CleanedCopy, CleanError> {
    ensure_outside(out, root)?;
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(CleanError::NotEmpty(out.to_path_buf()));
    }
    let mut scan = scan_folder(root)?;
    let folder_names = class_folder_names(&scan);
    let applied = curate::apply(&mut scan, curation);
    let mut copy = CleanedCopy {
        dir: out.to_path_buf(),
        excluded: applied.excluded.len(),
        relabelled: applied.relabelled,
        notes: applied.notes,
        ..CleanedCopy::default()
    };
    let lead = if scan.layout.is_given() { 2 } else { 1 };
    for file in &scan.files {
        let rel = file.path.strip_prefix(root).unwrap_or(&file.path);
        let mut parts = rel.components().map(|c| c.as_os_str().to_os_string());
        let mut target = out.to_path_buf();
        if lead == 2 {
            target.push(parts.next().unwrap_or_default());
        }
        let folder = parts.next().unwrap_or_default();
        target.push(folder_names[file.class].clone().unwrap_or(folder));
        target.extend(parts);
        let linked = place(&file.path, &free_name(target))?;
        copy.files += 1;
        copy.linked += usize::from(linked);
    }
    std::fs::create_dir_all(out).map_err(write_error(out))?;
    let record = out.join(RECORD);
    write_json_atomic(&record, &(&copy, curation)).map_err(write_error(&record))?;
    Ok(copy)
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> CleanError + '_ {
    move |e| CleanError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Each class's folder name as the file system spells it (classes are shown lossily).
fn class_folder_names(scan: &super::Scan) -> Vec<Option<OsString>> {
    let lead = if scan.layout.is_given() { 1 } else { 0 };
    let mut names = vec![None; scan.classes.len()];
    for file in &scan.files {
        let rel = file.path.strip_prefix(&scan.root).unwrap_or(&file.path);
        if names[file.class].is_none() {
            names[file.class] = rel.components().nth(lead).map(|c| c.as_os_str().into());
        }
    }
    names
}

/// `path`, or `name-2.ext`, `name-3.ext`, … when a relabelled file's name is taken.
fn free_name(path: PathBuf) -> PathBuf {
    if !path.exists() {
        return path;
    }
    let stem = path.file_stem().map(OsString::from).unwrap_or_default();
    let ext = path.extension().map(OsString::from);
    (2..)
        .map(|n| {
            let mut name = stem.clone();
            name.push(format!("-{n}"));
            if let Some(ext) = &ext {
                name.push(".");
                name.push(ext);
            }
            path.with_file_name(name)
        })
        .find(|p| !p.exists())
        .unwrap_or(path)
}

/// Hard-links `from` at `to`, or copies it through a temporary file; whether it linked.
fn place(from: &Path, to: &Path) -> Result<bool, CleanError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(true);
    }
    let tmp = temp_path(to);
    let copied = std::fs::copy(from, &tmp)
        .and_then(|_| set_normal_permissions(&tmp))
        .and_then(|()| std::fs::rename(&tmp, to));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_error(to)(e));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Decision;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("graft-clean-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn decisions_shape_the_copy_and_the_data_stays() {
        let root = temp("data");
        for (class, name) in [
            ("a", "1.png"),
            ("a", "2.png"),
            ("b", "2.png"),
            ("b", "3.png"),
        ] {
            std::fs::create_dir_all(root.join(class)).unwrap();
            std::fs::write(root.join(class).join(name), format!("{class}{name}")).unwrap();
        }
        let mut curation = Curation::default();
        curation.decide(Path::new("a/1.png"), Some(Decision::Exclude));
        curation.decide(Path::new("a/2.png"), Some(Decision::Relabel("b".into())));
        let out = temp("out").join("cleaned");
        let copy = export_cleaned(&root, &curation, &out).unwrap();
        assert_eq!((copy.files, copy.excluded, copy.relabelled), (3, 1, 1));
        assert!(!out.join("a").exists(), "class a has no image left");
        let mut names: Vec<_> = std::fs::read_dir(out.join("b"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["2-2.png", "2.png", "3.png"]);
        let mut both = [
            std::fs::read(out.join("b/2.png")).unwrap(),
            std::fs::read(out.join("b/2-2.png")).unwrap(),
        ];
        both.sort();
        assert_eq!(both, [b"a2.png".to_vec(), b"b2.png".to_vec()]);
        assert!(root.join("a/1.png").exists() && root.join("a/2.png").exists());
        assert!(out.join(RECORD).is_file());
        assert!(matches!(
            export_cleaned(&root, &curation, &out),
            Err(CleanError::NotEmpty(_))
        ));
        assert!(matches!(
            export_cleaned(&root, &curation, &root.join("inside")),
            Err(CleanError::InsideDataSet(_))
        ));
        assert!(!root.join("inside").exists());
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
    }
}
