//! A corpus of awkward folders and files, each checked for: no panic, a bounded finish, not one
//! byte changed under the data root, and a message that names the file and the problem.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use graft::config::TrainConfig;
use graft::data::DecodeError;
use graft::run::DataSummary;
use graft::train::TrainEvent;

/// Every entry below `dir`, links not followed: its path bytes, its kind, and for a regular
/// file a hash of its bytes (so a rewrite of the same size shows), for a link its target.
fn tree(dir: &Path) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = if meta.file_type().is_symlink() {
                format!("link to {:?}", std::fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "folder".to_string()
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for b in &bytes {
                    hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
                }
                format!("file {} bytes {hash:x} mode {:o}", bytes.len(), mode(&meta))
            } else {
                "special".to_string()
            };
            out.push((path.as_os_str().as_bytes().to_vec(), kind));
        }
    }
    out.sort();
    out
}

fn mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A JPEG whose main image is cut off in the middle, carrying a whole EXIF-style thumbnail
/// (with its own end-of-image marker) in an APP1 segment near the start.
fn cut_jpeg_with_thumbnail() -> Vec<u8> {
    let thumb = common::jpeg_bytes(16, 12);
    let main = common::jpeg_bytes(160, 120);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((thumb.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&thumb);
    out.extend_from_slice(&main[2..main.len() / 2]);
    out
}

/// A PNG header claiming `side`×`side` pixels, with no pixel data to speak of.
fn png_header(side: u32) -> Vec<u8> {
    let mut full = png(1, 1);
    full[16..20].copy_from_slice(&side.to_be_bytes());
    full[20..24].copy_from_slice(&side.to_be_bytes());
    // Re-stamp the IHDR chunk's CRC so that only the size is odd.
    let crc = common::crc32(&full[12..29]);
    full[29..33].copy_from_slice(&crc.to_be_bytes());
    full
}

fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// [`common::small_config`] at 32 px for one epoch.
fn config(data: &Path, runs: &Path) -> TrainConfig {
    TrainConfig {
        input_size: Some(32),
        epochs: 1,
        ..common::small_config(data, runs)
    }
}

fn warnings(events: &[TrainEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Warning(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

fn data_summary(events: &[TrainEvent]) -> DataSummary {
    events
        .iter()
        .find_map(|e| match e {
            TrainEvent::DataReady(d) => Some(d.clone()),
            _ => None,
        })
        .expect("no DataReady event")
}

fn finished_run(events: &[TrainEvent]) -> PathBuf {
    match events.last() {
        Some(TrainEvent::Finished(s)) => s.run_dir.clone(),
        other => panic!("the run did not finish: {other:?}"),
    }
}

fn failure(events: &[TrainEvent]) -> String {
    match events.last() {
        Some(TrainEvent::Failed(m)) => m.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Two demo classes and one whose folder name is not UTF-8, each of six images, with every
/// awkward entry the scan and the decoder must survive.
fn awkward_corpus(root: &Path) -> bool {
    common::demo_subset(root, &["bird", "fruit"], 6);
    let odd_class = root.join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir_all(&odd_class).unwrap();
    for i in 0..6 {
        let name = format!("img{i}.png");
        std::fs::write(odd_class.join(name), png(40 + i, 36)).unwrap();
    }
    std::fs::write(
        root.join("bird").join(OsStr::from_bytes(b"\xff\xfe.png")),
        png(30, 30),
    )
    .unwrap();
    for (link, to) in [
        ("bird/loop", "."),
        ("bird/again", "."),
        ("fruit/up", ".."),
        ("fruit/up2", ".."),
    ] {
        std::os::unix::fs::symlink(to, root.join(link)).unwrap();
    }
    std::fs::write(root.join("fruit/cut_thumb.jpg"), cut_jpeg_with_thumbnail()).unwrap();
    std::fs::write(root.join("fruit/thin.png"), png(1, 10_000)).unwrap();
    std::fs::write(root.join("fruit/huge.png"), png_header(12_000)).unwrap();
    mkfifo(&root.join("bird/pipe.png"))
}

#[test]
fn an_awkward_folder_trains_on_what_is_usable_and_says_what_is_not() {
    let data = TempDir::new("awkward");
    let root = data.path();
    let has_fifo = awkward_corpus(root);
    let before = tree(root);
    let runs = TempDir::new("awkward-runs");
    let events = common::run_to_end(config(root, runs.path()));
    let run_dir = finished_run(&events);
    let summary = data_summary(&events);
    assert_eq!(summary.classes, ["bird", "caf\u{FFFD}", "fruit"]);
    let used: usize = summary.train_counts.iter().chain(&summary.val_counts).sum();
    assert_eq!(
        used,
        6 + 1 + 6 + 6,
        "each image once, the non-UTF-8 name too"
    );

    let reason = |name: &str| {
        summary
            .skipped
            .iter()
            .find(|s| s.path.file_name() == Some(OsStr::new(name)))
            .map(|s| s.reason.clone())
    };
    assert!(matches!(
        reason("cut_thumb.jpg"),
        Some(DecodeError::Corrupt(_))
    ));
    assert_eq!(
        reason("thin.png"),
        Some(DecodeError::ExtremeAspect {
            width: 1,
            height: 10_000
        })
    );
    assert!(matches!(reason("huge.png"), Some(DecodeError::TooLarge(_))));
    assert_eq!(reason("loop"), Some(DecodeError::FolderSeen));
    if has_fifo {
        assert_eq!(
            reason("pipe.png"),
            Some(DecodeError::NotRegular("a named pipe".into()))
        );
    }
    let warnings = warnings(&events);
    for (name, words) in [
        ("cut_thumb.jpg", "cut off"),
        ("thin.png", "centre crop"),
        ("huge.png", "MiB"),
        ("loop", "followed once"),
        ("up2", "followed once"),
    ] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(name) && w.contains(words)),
            "no warning names {name} with `{words}`: {warnings:#?}"
        );
    }
    for w in &warnings {
        assert!(!w.contains(" { "), "Debug output in a warning: {w}");
    }
    assert_eq!(tree(root), before, "the data set folder changed");

    for file in ["model.safetensors", "run.json", "files.json", "labels.json"] {
        let meta = std::fs::metadata(run_dir.join(file)).unwrap();
        assert_eq!(
            mode(&meta) & 0o044,
            0o044 & mode_of_new_file(runs.path()),
            "{file}"
        );
    }
    after_training(root, &run_dir, &before);
}

/// The mode a file created now gets (0666 less the umask).
fn mode_of_new_file(dir: &Path) -> u32 {
    let probe = dir.join("probe");
    std::fs::write(&probe, b"").unwrap();
    let m = mode(&std::fs::metadata(&probe).unwrap());
    std::fs::remove_file(&probe).unwrap();
    m
}

/// What is done with a trained run: export into the data set (refused before anything is
/// created), labels that do not fit the checkpoint, predicting on a folder without images, and
/// evaluating after the folder changed.
fn after_training(root: &Path, run_dir: &Path, before: &[(Vec<u8>, String)]) {
    let device = burn::tensor::Device::flex();
    let inside = root.join("exports");
    let err = graft::run::export::export_run(run_dir, &inside, &device).unwrap_err();
    assert!(
        err.to_string().contains("never writes into a data set"),
        "{err}"
    );
    assert_eq!(tree(root), before, "export touched the data set");

    let copy = TempDir::new("labels-mismatch");
    for file in ["config.json", "model.safetensors", "run.json"] {
        std::fs::copy(run_dir.join(file), copy.path().join(file)).unwrap();
    }
    std::fs::write(copy.path().join("labels.json"), r#"["a","b","c","d"]"#).unwrap();
    let err = graft::run::predict::Predictor::from_run(copy.path(), &device)
        .err()
        .expect("a 4-label run over a 3-class checkpoint loaded");
    let message = err.to_string();
    assert!(
        message.contains("labels.json") && message.contains("3 outputs"),
        "{message}"
    );
    assert!(!message.contains("ShapeMismatch"), "{message}");

    let empty = TempDir::new("no-images");
    std::fs::write(empty.path().join("notes.txt"), b"no images here").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["predict", "--run"])
        .arg(run_dir)
        .arg(empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0 on a folder without images");
    assert!(
        stderr.contains("no images found") && stderr.contains("no-images"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR"),
        "probed for a GPU: {stderr}"
    );

    changed_folder(root, run_dir);
}

/// Evaluation after files were added, removed and rewritten: the recorded validation images
/// are scored, and each change is named.
fn changed_folder(root: &Path, run_dir: &Path) {
    let device = burn::tensor::Device::flex();
    let first = graft::run::eval::evaluate_run(run_dir, None, &device).unwrap();
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let scored = first.predictions.len();
    let val_file = first.predictions[0].path.clone();
    std::fs::remove_file(&val_file).unwrap();
    std::fs::write(root.join("bird/added.png"), png(50, 40)).unwrap();
    let rewritten = std::fs::read_dir(root.join("fruit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".png")
                && !["thin.png", "huge.png"].contains(&name.as_ref())
                && *p != val_file
        })
        .unwrap();
    std::fs::write(&rewritten, png(44, 44)).unwrap();
    let before = tree(root);
    let second = graft::run::eval::evaluate_run(run_dir, None, &device).unwrap();
    assert_eq!(
        second.predictions.len(),
        scored - 1,
        "the removed file is not scored"
    );
    let said = second.warnings.join("\n");
    assert!(
        said.contains("added") && said.contains("added.png"),
        "{said}"
    );
    assert!(said.contains("gone"), "{said}");
    let name = rewritten.file_name().unwrap().to_string_lossy();
    assert!(
        said.contains("changed") && said.contains(name.as_ref()),
        "{said}"
    );
    assert_eq!(tree(root), before, "evaluation touched the data set");
}

#[test]
fn runs_inside_the_data_set_are_refused_before_anything_is_made() {
    let data = TempDir::new("inside");
    common::demo_subset(data.path(), &["bird", "fruit"], 3);
    let before = tree(data.path());
    let events = common::run_to_end(config(data.path(), &data.path().join("runs")));
    let message = failure(&events);
    assert!(
        message.contains("never writes into a data set"),
        "{message}"
    );
    assert!(message.contains("runs"), "{message}");
    assert_eq!(
        tree(data.path()),
        before,
        "something was created in the data set"
    );
}

#[test]
fn a_folder_given_as_weights_is_called_a_folder() {
    let data = TempDir::new("weights-folder");
    common::demo_subset(data.path(), &["bird", "fruit"], 3);
    let runs = TempDir::new("weights-folder-runs");
    let weights = TempDir::new("weights-dir");
    let mut config = config(data.path(), runs.path());
    config.weights = Some(weights.path().to_path_buf());
    let message = failure(&common::run_to_end(config));
    assert!(message.contains("is a folder"), "{message}");
    assert!(!message.contains("does not exist"), "{message}");
}

#[test]
fn train_and_val_with_different_classes_are_named() {
    let data = TempDir::new("mismatch");
    let root = data.path();
    common::demo_subset(&root.join("train"), &["bird", "fruit", "mammal"], 4);
    common::demo_subset(&root.join("val"), &["bird", "fruit", "vehicle"], 2);
    let before = tree(root);
    let runs = TempDir::new("mismatch-runs");
    let events = common::run_to_end(config(root, runs.path()));
    finished_run(&events);
    let summary = data_summary(&events);
    assert_eq!(summary.classes, ["bird", "fruit", "mammal"]);
    let warnings = warnings(&events).join("\n");
    assert!(
        warnings.contains("`mammal` has no validation image"),
        "{warnings}"
    );
    assert!(
        warnings.contains("`vehicle` has validation images but no training image"),
        "{warnings}"
    );
    assert_eq!(tree(root), before);
}

#[test]
fn every_demo_image_cut_short_is_skipped_with_a_reason() {
    let mut checked = 0;
    for class in std::fs::read_dir(common::demo()).unwrap() {
        let class = class.unwrap().path();
        if !class.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&class).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            assert!(graft::data::decode::decode_bytes(&bytes).is_ok());
            for k in 1..=20 {
                let cut = bytes.len() * k / 21;
                let result =
                    std::panic::catch_unwind(|| graft::data::decode::decode_bytes(&bytes[..cut]));
                match result {
                    Ok(Err(reason)) => assert!(!reason.to_string().is_empty()),
                    Ok(Ok(_)) => panic!("cut at {cut} of {} decoded", bytes.len()),
                    Err(_) => panic!("decoding a cut file panicked"),
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 20 * 300, "{checked}");
}
