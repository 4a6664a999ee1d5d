//! Weight files found on disk by name, checked against the catalogue's sha256 before use. Each
//! version of a file (path, size, modification time) is hashed once; the answer is kept in the
//! user's weights folder so the next run does not read the file again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::zoo::ZooEntry;
use crate::platform::fsutil::{FileState, file_state, write_json_atomic};

/// One file's hash as it was when hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Hashed {
    #[serde(with = "crate::platform::paths::as_path")]
    path: PathBuf,
    state: FileState,
    sha256: String,
}

fn record_path() -> PathBuf {
    crate::platform::assets::weights_cache_dir().join("hashes.json")
}

/// The sha256 of the file at `path`, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The file's sha256, from the record when this version of it was hashed before.
fn known_sha256(path: &Path) -> Option<String> {
    let state = file_state(path)?;
    let mut records: Vec<Hashed> = std::fs::read(record_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(r) = records.iter().find(|r| r.path == path && r.state == state) {
        return Some(r.sha256.clone());
    }
    let sha256 = sha256_file(path).ok()?;
    records.retain(|r| r.path != path);
    records.push(Hashed {
        path: path.to_path_buf(),
        state,
        sha256: sha256.clone(),
    });
    // Only a cache: failing to keep it costs a re-hash next time, nothing more.
    let record = record_path();
    if record
        .parent()
        .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
    {
        let _ = write_json_atomic(&record, &records);
    }
    Some(sha256)
}

/// Whether the file at `path` is the one the catalogue describes for `entry` (its hash matches
/// the catalogue's, whole or by prefix).
pub fn is_catalogue_file(entry: &ZooEntry, path: &Path) -> bool {
    let expected = entry.sha256.to_ascii_lowercase();
    !expected.is_empty() && known_sha256(path).is_some_and(|actual| actual.starts_with(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_hashed_once_per_version() {
        let dir = std::env::temp_dir().join(format!("graft-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.pth");
        std::fs::write(&file, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&file).unwrap(), abc);
        let entry = |sha256| ZooEntry {
            kind: crate::models::ModelKind::TinyTest,
            file_name: "w.pth",
            url: None,
            sha256,
            size_mb: 0.0,
            licence: "",
        };
        assert!(is_catalogue_file(&entry("ba7816bf"), &file));
        assert!(!is_catalogue_file(&entry("00000000"), &file));
        std::fs::write(&file, b"abd").unwrap();
        assert!(!is_catalogue_file(&entry("ba7816bf"), &file));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
