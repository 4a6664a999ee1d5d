//! Broken files, odd files and too few classes: reported clearly, never fatal for the good
//! files, and the data set folder is never written to.

mod common;

use std::path::Path;

use common::TempDir;
use graft::config::{DevicePreference, TrainConfig};
use graft::data::DecodeError;
use graft::train::TrainEvent;

/// A PNG whose header claims 100 000 × 100 000 pixels.
fn huge_png_header() -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&common::crc32(&body).to_be_bytes());
        c
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn config(data: &Path, runs: &Path) -> TrainConfig {
    TrainConfig {
        data: data.to_path_buf(),
        runs_dir: Some(runs.to_path_buf()),
        input_size: Some(32),
        batch_size: 8,
        epochs: 1,
        device: DevicePreference::Cpu,
        ..TrainConfig::default()
    }
}

#[test]
fn bad_files_are_skipped_with_reasons_and_the_rest_trains() {
    let data = TempDir::new("bad-data");
    let root = data.path();
    common::demo_subset(root, &["bird", "fruit"], 4);
    std::fs::create_dir_all(root.join("empty_class")).unwrap();
    let jpeg = common::jpeg_bytes(64, 48);
    std::fs::write(root.join("bird/truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(root.join("bird/zero.png"), b"").unwrap();
    std::fs::write(
        root.join("bird/text.jpg"),
        b"this is a text file, not a JPEG\n",
    )
    .unwrap();
    std::fs::write(root.join("fruit/huge.png"), huge_png_header()).unwrap();
    let tests_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::copy(tests_data.join("cmyk.jpg"), root.join("fruit/cmyk.jpg")).unwrap();
    std::fs::write(root.join("fruit/pomme_café_苹果.jpg"), &jpeg).unwrap();
    let before = common::snapshot(root);

    let runs = TempDir::new("bad-runs");
    let events = common::run_to_end(config(root, runs.path()));
    assert!(
        matches!(events.last(), Some(TrainEvent::Finished(_))),
        "run did not finish: {:?}",
        events.last()
    );
    let data_event = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::DataReady(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(data_event.classes, ["bird", "fruit"]);
    assert_eq!(data_event.empty_classes, ["empty_class"]);
    let reason = |name: &str| {
        data_event
            .skipped
            .iter()
            .find(|s| s.path.file_name().unwrap() == name)
            .map(|s| s.reason.clone())
    };
    assert!(matches!(
        reason("truncated.jpg"),
        Some(DecodeError::Corrupt(_))
    ));
    assert_eq!(reason("zero.png"), Some(DecodeError::Empty));
    assert_eq!(reason("text.jpg"), Some(DecodeError::NotAnImage));
    assert!(matches!(reason("huge.png"), Some(DecodeError::TooLarge(_))));
    assert_eq!(data_event.skipped.len(), 4, "{:?}", data_event.skipped);
    // CMYK and the unicode name are fine images: used, not skipped.
    let used: usize = data_event
        .train_counts
        .iter()
        .chain(&data_event.val_counts)
        .sum();
    assert_eq!(used, 4 + 4 + 2);
    // Each bad file is also reported as a warning naming it.
    let warnings: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Warning(w) => Some(w),
            _ => None,
        })
        .collect();
    for name in [
        "truncated.jpg",
        "zero.png",
        "text.jpg",
        "huge.png",
        "empty_class",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(name)),
            "no warning names {name}: {warnings:?}"
        );
    }
    assert_eq!(
        common::snapshot(root),
        before,
        "the data set folder was written to"
    );
}

#[test]
fn one_class_is_a_clear_error() {
    let data = TempDir::new("one-class");
    common::demo_subset(data.path(), &["bird"], 3);
    std::fs::create_dir_all(data.path().join("nothing_here")).unwrap();
    let runs = TempDir::new("one-class-runs");
    let events = common::run_to_end(config(data.path(), runs.path()));
    match events.last() {
        Some(TrainEvent::Failed(m)) => {
            assert!(m.contains("at least two"), "{m}");
            assert!(m.contains("bird"), "{m}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_file_instead_of_a_folder_is_a_clear_error() {
    let runs = TempDir::new("not-folder-runs");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cmyk.jpg");
    let events = common::run_to_end(config(&file, runs.path()));
    match events.last() {
        Some(TrainEvent::Failed(m)) => assert!(m.contains("is not a folder"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn exif_rotation_is_applied() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exif_right_top.jpg");
    let img = graft::data::decode::decode_file(&path).unwrap();
    // Stored 40×20 with orientation 6 (rotate 90° clockwise): shown 20×40.
    assert_eq!(img.dimensions(), (20, 40));
}

#[test]
fn graft_clean_names_a_bad_decisions_file_and_copies_with_good_ones() {
    use std::process::Command;
    let dir = TempDir::new("clean-cli");
    let data = dir.path().join("data");
    common::demo_subset(&data, &["bird", "fruit"], 3);
    let bird = common::first_file(&data.join("bird"));
    let name = bird.file_name().unwrap().to_str().unwrap().to_string();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, br#"{"exlude": ["bird/x.png"]}"#).unwrap();
    let bin = env!("CARGO_BIN_EXE_graft");
    let run = |decisions: &Path, out: &str| {
        Command::new(bin)
            .args(["clean", "--data"])
            .arg(&data)
            .arg("--decisions")
            .arg(decisions)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let refused = run(&bad, "out-bad");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.json") && stderr.contains("exlude"),
        "{stderr}"
    );
    assert!(!dir.path().join("out-bad").exists());

    let good = dir.path().join("good.json");
    let decisions = format!(r#"{{"relabel": [{{"file": "bird/{name}", "class": "fruit"}}]}}"#);
    std::fs::write(&good, decisions).unwrap();
    let copied = run(&good, "out");
    assert!(copied.status.success(), "{copied:?}");
    let out = dir.path().join("out");
    assert!(out.join("fruit").join(&name).is_file());
    assert!(!out.join("bird").join(&name).exists());
    assert!(bird.is_file(), "the original stays where it was");
}
