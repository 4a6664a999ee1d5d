//! Weight downloads against a small HTTP server on 127.0.0.1: a whole file, a resumed one, a
//! truncated one, one with the wrong content, a 404, a cancel, and the hub cache used offline.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::TempDir;
use graft::models::download::{DownloadError, fetch, partial_path};
use sha2::{Digest, Sha256};

/// What the server saw: requests with a Range header.
#[derive(Default)]
struct Seen {
    ranges: AtomicUsize,
}

/// Serves `body` at `/good`, `/noranges` (ignores Range), `/truncated` (announces the whole
/// length, sends half), `/wrong` (right length, wrong bytes), anything else 404. Returns the
/// base address.
fn serve(body: Vec<u8>, seen: Arc<Seen>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range_start = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("range: bytes=") {
                    range_start = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            if range_start.is_some() {
                seen.ranges.fetch_add(1, Ordering::Relaxed);
            }
            let n = body.len();
            let (head, bytes): (String, Vec<u8>) = match path.as_str() {
                "/good" if range_start.is_some_and(|s| s < n) => {
                    let s = range_start.unwrap_or(0);
                    (
                        format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{n}\r\n",
                            n - s,
                            n - 1
                        ),
                        body[s..].to_vec(),
                    )
                }
                "/good" | "/noranges" => (
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n"),
                    body.clone(),
                ),
                "/truncated" => (
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n"),
                    body[..n / 2].to_vec(),
                ),
                "/wrong" => (
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n"),
                    body.iter().map(|b| b ^ 0x5a).collect(),
                ),
                _ => (
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n".into(),
                    b"not found".to_vec(),
                ),
            };
            let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
        }
    });
    base
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn fixture_body() -> Vec<u8> {
    // A real weight file when the fixtures are here, otherwise a megabyte of varied bytes.
    common::fixtures()
        .and_then(|f| std::fs::read(f.join("reference/mobilenet_v3_small.pth")).ok())
        .unwrap_or_else(|| (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect())
}

#[test]
fn downloads_verify_resume_and_never_leave_partial_files() {
    let body = fixture_body();
    let hash = sha256_hex(&body);
    let seen = Arc::new(Seen::default());
    let base = serve(body.clone(), seen.clone());
    let cache = TempDir::new("download-cache");
    let never = AtomicBool::new(false);
    let dest = cache.path().join("model-abcd.pth");

    // A whole file, checked against the full hash, with progress up to the total.
    let last = Mutex::new((0u64, None));
    let path = fetch(
        &format!("{base}/good"),
        &dest,
        &hash,
        &|done, total| *last.lock().unwrap() = (done, total),
        &never,
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(
        *last.lock().unwrap(),
        (body.len() as u64, Some(body.len() as u64))
    );
    assert_eq!(files_in(cache.path()), ["model-abcd.pth"]);
    std::fs::remove_file(&dest).unwrap();

    // Resumed from a partial file with a range request; a hash prefix is enough.
    std::fs::write(partial_path(&dest), &body[..body.len() / 3]).unwrap();
    fetch(
        &format!("{base}/good"),
        &dest,
        &hash[..8],
        &|_, _| {},
        &never,
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(seen.ranges.load(Ordering::Relaxed), 1);
    assert_eq!(files_in(cache.path()), ["model-abcd.pth"]);
    std::fs::remove_file(&dest).unwrap();

    // A server that ignores ranges: the stale partial file is replaced, not appended to.
    std::fs::write(partial_path(&dest), b"stale bytes from another file").unwrap();
    fetch(
        &format!("{base}/noranges"),
        &dest,
        &hash,
        &|_, _| {},
        &never,
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    std::fs::remove_file(&dest).unwrap();

    // Truncated, wrong content, missing: a clear error and nothing left in the cache.
    let err = fetch(
        &format!("{base}/truncated"),
        &dest,
        &hash,
        &|_, _| {},
        &never,
    )
    .unwrap_err();
    assert!(matches!(err, DownloadError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("/truncated"));
    assert!(
        files_in(cache.path()).is_empty(),
        "{:?}",
        files_in(cache.path())
    );

    let err = fetch(&format!("{base}/wrong"), &dest, &hash, &|_, _| {}, &never).unwrap_err();
    assert!(matches!(err, DownloadError::HashMismatch { .. }), "{err}");
    assert!(files_in(cache.path()).is_empty());

    let err = fetch(&format!("{base}/missing"), &dest, &hash, &|_, _| {}, &never).unwrap_err();
    assert!(matches!(err, DownloadError::Http { .. }), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert!(files_in(cache.path()).is_empty());

    // Cancelled: the partial file stays for the next try, the final name does not exist.
    let cancel = AtomicBool::new(false);
    let err = fetch(
        &format!("{base}/noranges"),
        &dest,
        &hash,
        &|done, _| {
            if done > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, DownloadError::Cancelled));
    assert_eq!(files_in(cache.path()), ["model-abcd.pth.part"]);
}

#[test]
fn files_in_the_pytorch_hub_cache_are_used_without_downloading_once_their_hash_fits() {
    let home = TempDir::new("download-home");
    let torch = TempDir::new("download-torch");
    let no_assets = TempDir::new("download-no-assets");
    let hub = torch.path().join("hub/checkpoints");
    std::fs::create_dir_all(&hub).unwrap();
    let lite0 = graft::models::zoo::entry(graft::models::ModelKind::EfficientNetLite0).unwrap();
    let bundled = common::demo()
        .parent()
        .unwrap()
        .join("weights")
        .join(lite0.file_name);
    std::fs::copy(&bundled, hub.join(lite0.file_name)).unwrap();
    // Right name, wrong content: passed over, not used.
    let small = graft::models::zoo::entry(graft::models::ModelKind::MobileNetV3Small).unwrap();
    std::fs::write(hub.join(small.file_name), b"weights").unwrap();
    // SAFETY: this test binary's other test does not read these variables.
    unsafe {
        std::env::set_var("GRAFT_HOME", home.path());
        std::env::set_var("TORCH_HOME", torch.path());
        std::env::set_var("GRAFT_ASSETS", no_assets.path());
    }
    let found =
        graft::models::download::ensure(lite0, &|_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(found, hub.join(lite0.file_name));
    assert_eq!(small.kind.find_weights(), None);
    assert_eq!(small.kind.rejected_weights(), [hub.join(small.file_name)]);
    // Nothing was downloaded; only the record of the hashes is kept.
    assert_eq!(files_in(&home.path().join("weights")), ["hashes.json"]);
}
