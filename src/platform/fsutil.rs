//! Where Graft may write, and file writes that never leave a half-written file behind.

use std::io::Write;

use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// A file's size and modification time: when either differs, the file was rewritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileState {
    /// Bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when unknown).
    pub modified_ns: u64,
}

/// The state of the file at `path` now, or `None` when it cannot be read.
pub fn file_state(path: &Path) -> Option<FileState> {
    let meta = std::fs::metadata(path).ok()?;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Some(FileState {
        size: meta.len(),
        modified_ns,
    })
}

/// A path Graft refuses to write to because it lies inside a data set folder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is inside the data set folder {}; Graft never writes into a data set: choose a folder outside it",
    path.display(),
    data_root.display()
)]
pub struct InsideDataSet {
    /// The refused path.
    pub path: PathBuf,
    /// The data set folder it lies in.
    pub data_root: PathBuf,
}

/// Refuses `path` when it is `data_root` or lies anywhere below it, links resolved. Every writer
/// calls this before it creates anything, so the part of `path` that does not exist yet is
/// compared as written (with `.` and `..` applied).
pub fn ensure_outside(path: &Path, data_root: &Path) -> Result<(), InsideDataSet> {
    if data_root.as_os_str().is_empty() {
        return Ok(());
    }
    if resolved(path).starts_with(resolved(data_root)) {
        return Err(InsideDataSet {
            path: path.to_path_buf(),
            data_root: data_root.to_path_buf(),
        });
    }
    Ok(())
}

/// `path` made absolute: its longest existing ancestor canonicalised (links resolved), then the
/// rest of its components applied lexically.
fn resolved(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let components: Vec<Component> = absolute.components().collect();
    for split in (0..=components.len()).rev() {
        let existing: PathBuf = components[..split].iter().collect();
        let Ok(mut out) = existing.canonicalize() else {
            continue;
        };
        for component in &components[split..] {
            match component {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        return out;
    }
    absolute
}

/// Gives a file that a library wrote through a private temporary file (mode 0600) the
/// permissions of a newly created file: 0666 less the process's umask.
pub fn set_normal_permissions(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666 & !umask()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// The process's umask, read without changing it (Linux reports it in `/proc/self/status`);
/// the usual 022 where it cannot be read.
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// The temporary sibling of `path` that a save writes before renaming it into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file in the same folder, then renames it.
///
/// A reader sees either the old file or the whole new one, never a partial write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("graft-fsutil-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_inside_the_data_root_are_refused_before_they_exist() {
        let root = std::env::temp_dir().join(format!("graft-guard-{}", std::process::id()));
        let data = root.join("data");
        std::fs::create_dir_all(data.join("cats")).unwrap();
        assert!(ensure_outside(&data, &data).is_err());
        assert!(ensure_outside(&data.join("cats/new/deeper"), &data).is_err());
        assert!(ensure_outside(&root.join("runs/../data/x"), &data).is_err());
        assert!(ensure_outside(&root.join("runs"), &data).is_ok());
        assert!(ensure_outside(&root.join("data-2"), &data).is_ok());
        assert!(
            !data.join("cats/new").exists(),
            "the check created something"
        );
        #[cfg(unix)]
        {
            let link = root.join("link");
            std::os::unix::fs::symlink(&data, &link).unwrap();
            let err = ensure_outside(&link.join("run"), &data).unwrap_err();
            assert!(err.to_string().contains("never writes"), "{err}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn saved_files_get_the_umask_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("graft-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.bin");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        set_normal_permissions(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
