//! Weight files found on disk by name, checked against the catalogue's sha256 before use. Each
//! version of a file (path, size, modification time) is hashed once; the answer is kept in the
//! user's weights folder so the next run does not read the file again.

use std::io::Read;
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

/// Whether `actual` (64 hex digits) matches `expected`, a whole hash or a prefix of one.
pub fn hash_matches(expected: &str, actual: &str) -> bool {
    !expected.is_empty() && actual.starts_with(&expected.to_ascii_lowercase())
}

/// Feeds everything `reader` holds to `hasher`.
pub fn feed_file(reader: &mut impl Read, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// The digest in hex.
pub fn hex_digest(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sha256 of the file at `path`, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    feed_file(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex_digest(hasher))
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
    !entry.sha256.is_empty()
        && known_sha256(path).is_some_and(|actual| hash_matches(entry.sha256, &actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_whole_or_by_prefix() {
        let h = "f37072fd47e89c7ab9d1ad1e1a1c1b5b0d3b0c1a7b2f5a6e8d9c0b1a2f3e4d5c";
        assert!(hash_matches("f37072fd", h));
        assert!(hash_matches(h, h));
        assert!(hash_matches("F37072FD", h));
        assert!(!hash_matches("b627a593", h));
        assert!(!hash_matches("", h));
    }

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
