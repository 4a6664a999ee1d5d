//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use graft::config::{DevicePreference, TrainConfig};

/// `../shared/fixtures`, when this checkout has it.
pub fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    dir.is_dir().then_some(dir)
}

/// The bundled demo data set (clipart5).
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

/// A fresh, empty temporary folder, removed when the guard drops.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "graft-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the first `per_class` images of each of `classes` from the demo set into `dest`.
pub fn demo_subset(dest: &Path, classes: &[&str], per_class: usize) {
    for class in classes {
        let src = demo().join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        std::fs::create_dir_all(dest.join(class)).unwrap();
        for f in files.into_iter().take(per_class) {
            std::fs::copy(&f, dest.join(class).join(f.file_name().unwrap())).unwrap();
        }
    }
}

/// Every file below `dir` with its size and modification time, sorted: a fingerprint that
/// changes if anything is written there.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.len(), m.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// A quick CPU run: 64 px, batch 8, 2 epochs, no augmentation.
pub fn small_config(data: &std::path::Path, runs: &std::path::Path) -> TrainConfig {
    let mut config = TrainConfig {
        data: data.to_path_buf(),
        runs_dir: Some(runs.to_path_buf()),
        input_size: Some(64),
        batch_size: 8,
        epochs: 2,
        device: DevicePreference::Cpu,
        ..TrainConfig::default()
    };
    config.augment.enabled = false;
    config
}

/// Trains `config` to the end and returns its epoch metrics; panics if the run fails.
#[allow(dead_code)] // not every test binary uses every helper
pub fn run_epochs(config: TrainConfig) -> Vec<graft::train::EpochMetrics> {
    run_with_summary(config).0
}

/// Trains `config` to the end and returns its epoch metrics and how it ended; panics if the
/// run fails.
pub fn run_with_summary(
    config: TrainConfig,
) -> (Vec<graft::train::EpochMetrics>, graft::run::RunSummary) {
    use graft::train::TrainEvent;
    let mut handle = graft::train::spawn(config, None);
    let mut out = Vec::new();
    while let Some(e) = handle.next_timeout(std::time::Duration::from_secs(600)) {
        match e {
            TrainEvent::Epoch(m) => out.push(m),
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            TrainEvent::Finished(summary) => return (out, summary),
            _ => {}
        }
    }
    panic!("the run did not finish");
}

/// The first file in `dir` (sorted by the file system's order).
#[allow(dead_code)]
pub fn first_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// The CRC-32 a PNG chunk carries.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A `width`×`height` JPEG of a colour gradient.
pub fn jpeg_bytes(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// Every event of a run up to its end; panics when it has not ended within ten minutes.
pub fn run_to_end(config: TrainConfig) -> Vec<graft::train::TrainEvent> {
    let mut handle = graft::train::spawn(config, None);
    let mut events = Vec::new();
    while let Some(e) = handle.next_timeout(std::time::Duration::from_secs(600)) {
        let end = e.is_terminal();
        events.push(e);
        if end {
            return events;
        }
    }
    panic!("the run did not end: {events:?}");
}
