//! Downloading pre-trained weights into the user's cache: streamed to a `.part` file with
//! progress, resumed with an HTTP range request when a `.part` is left from an interrupted
//! download, checked against the catalogue's sha256 and renamed into place only when whole.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use super::verify::{feed_file, hash_matches, hex_digest};
use super::zoo::ZooEntry;

/// Why a download failed. After any of these but [`DownloadError::Cancelled`], no partial file
/// is left behind.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The catalogue has no address for the file.
    #[error("{0} cannot be downloaded: choose the weight file by hand")]
    NoUrl(String),
    /// The server could not be reached or answered with an error.
    #[error("cannot download {url}: {reason}")]
    Http {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The connection ended before the whole file arrived.
    #[error("the download of {url} stopped after {got} of {expected} bytes; try again")]
    Truncated {
        /// The address.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The file is not the one the catalogue describes.
    #[error(
        "{url} does not have the expected content (sha256 {actual}, expected {expected}…); it was not kept"
    )]
    HashMismatch {
        /// The address.
        url: String,
        /// The catalogue's hash (or its prefix).
        expected: String,
        /// The downloaded file's hash.
        actual: String,
    },
    /// The cache folder could not be written.
    #[error("cannot write {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The user stopped it; the `.part` file stays for the next attempt.
    #[error("download cancelled")]
    Cancelled,
}

/// Where an unfinished download of `dest` is kept.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DownloadError + '_ {
    move |e| DownloadError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Downloads `url` to `dest`, calling `progress(done, total)` as bytes arrive, and checks the
/// result against `sha256` (whole or prefix). An existing `dest.part` is resumed when the server
/// supports ranges, otherwise the download restarts.
pub fn fetch(
    url: &str,
    dest: &Path,
    sha256: &str,
    progress: &dyn Fn(u64, Option<u64>),
    cancel: &AtomicBool,
) -> Result<PathBuf, DownloadError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let part = partial_path(dest);
    let result = fetch_to_part(url, &part, sha256, progress, cancel);
    match result {
        Ok(()) => {
            std::fs::rename(&part, dest).map_err(io(dest))?;
            Ok(dest.to_path_buf())
        }
        Err(DownloadError::Cancelled) => Err(DownloadError::Cancelled),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// The partial file to append to (its bytes hashed first) when resuming, else a new one.
fn open_part(part: &Path, resumed: bool, hasher: &mut Sha256) -> Result<File, DownloadError> {
    if !resumed {
        return File::create(part).map_err(io(part));
    }
    let mut existing = File::open(part).map_err(io(part))?;
    feed_file(&mut existing, hasher).map_err(io(part))?;
    File::options().append(true).open(part).map_err(io(part))
}

fn fetch_to_part(
    url: &str,
    part: &Path,
    sha256: &str,
    progress: &dyn Fn(u64, Option<u64>),
    cancel: &AtomicBool,
) -> Result<(), DownloadError> {
    let http = |reason: String| DownloadError::Http {
        url: url.to_string(),
        reason,
    };
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = ureq::get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| http(e.to_string()))?;
    let status = response.status().as_u16();
    let resumed = status == 206 && have > 0;
    let length: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut hasher = Sha256::new();
    let mut file = open_part(part, resumed, &mut hasher)?;
    let start = if resumed { have } else { 0 };
    let total = length.map(|l| l + start);
    let mut done = start;
    progress(done, total);
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if cancel.load(Ordering::Relaxed) {
            let _ = file.flush();
            return Err(DownloadError::Cancelled);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // A connection that drops mid-body is a short file; the length check says so.
            Err(_) => break,
        };
        file.write_all(&buf[..n]).map_err(io(part))?;
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    file.sync_all().map_err(io(part))?;
    if let Some(expected) = total
        && done < expected
    {
        return Err(DownloadError::Truncated {
            url: url.to_string(),
            got: done,
            expected,
        });
    }
    let actual = hex_digest(hasher);
    if !hash_matches(sha256, &actual) {
        return Err(DownloadError::HashMismatch {
            url: url.to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The local file for `entry`: found in the bundled assets, Graft's cache or PyTorch's hub
/// cache (no network then), or downloaded into Graft's cache.
pub fn ensure(
    entry: &ZooEntry,
    progress: &dyn Fn(u64, Option<u64>),
    cancel: &AtomicBool,
) -> Result<PathBuf, DownloadError> {
    if let Some(path) = entry.kind.find_weights() {
        return Ok(path);
    }
    let url = entry
        .url
        .ok_or_else(|| DownloadError::NoUrl(entry.file_name.to_string()))?;
    let dest = crate::platform::assets::weights_cache_dir().join(entry.file_name);
    fetch(url, &dest, entry.sha256, progress, cancel)
}
