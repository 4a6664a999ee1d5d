//! After training: evaluation, export with PyTorch names and its parity check, and the
//! `graft eval` / `graft predict` commands.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::TempDir;
use graft::train::{self, TrainEvent};

fn train_tiny_run(data: &std::path::Path, runs: &std::path::Path) -> (std::path::PathBuf, f64) {
    let mut handle = train::spawn(common::small_config(data, runs), None);
    while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
        match e {
            TrainEvent::Failed(m) => panic!("run failed: {m}"),
            TrainEvent::Finished(s) => return (s.run_dir, s.best_val_accuracy.unwrap()),
            _ => {}
        }
    }
    panic!("no Finished event");
}

fn safetensors_names(path: &std::path::Path) -> BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.names().into_iter().map(String::from).collect()
}

#[test]
fn evaluate_export_and_the_commands_agree() {
    let data = TempDir::new("eval-data");
    common::demo_subset(data.path(), &["bird", "fruit", "vehicle"], 8);
    let runs = TempDir::new("eval-runs");
    let (run_dir, best_accuracy) = train_tiny_run(data.path(), runs.path());
    let device = burn::tensor::Device::flex();

    // Evaluation on the run's own validation split reproduces the accuracy training reported.
    let evaluation = graft::run::eval::evaluate_run(&run_dir, None, &device).unwrap();
    let m = &evaluation.metrics;
    let total: usize = m.confusion.iter().flatten().sum();
    assert_eq!(total, 6, "2 validation images per class");
    assert!((m.accuracy - best_accuracy).abs() < 1e-9);
    let wrong = total - (0..3).map(|c| m.confusion[c][c]).sum::<usize>();
    assert_eq!(evaluation.mistakes.len(), wrong);
    assert!(
        evaluation
            .mistakes
            .windows(2)
            .all(|w| w[0].loss >= w[1].loss)
    );
    // Those are the scores the run stored with its checkpoint (no image was classified), and
    // classifying the images again with the checkpoint gives the same numbers.
    assert!(evaluation.stored_epoch.is_some());
    let rescored = graft::run::eval::rescore_run(&run_dir, None, &device).unwrap();
    assert_eq!(rescored.stored_epoch, None);
    assert_same_scores(&evaluation, &rescored);

    // Export: PyTorch (lukemelas) names, reloaded with identical predictions.
    let out = TempDir::new("eval-export");
    let report = graft::run::export::export_run(&run_dir, out.path(), &device).unwrap();
    assert_eq!(report.accuracy_before, report.accuracy_after);
    assert!(report.max_logit_diff < 1e-5, "{}", report.max_logit_diff);
    let names = safetensors_names(&out.path().join("model.safetensors"));
    assert!(names.contains("_blocks.15._project_conv.weight"));
    assert!(names.contains("_fc.weight") && names.contains("_bn1.running_var"));
    // As many tensors as the original checkpoint loads (its batch counters aside); the parity
    // check's reload already refuses any name it cannot place.
    let original = graft::models::ModelKind::EfficientNetLite0
        .find_weights()
        .unwrap();
    let spec = graft::models::NetworkSpec {
        kind: graft::models::ModelKind::EfficientNetLite0,
        classes: 1000,
        head: Default::default(),
        input_size: 224,
    };
    let (_, load) =
        graft::models::Network::pretrained(&spec, &original, true, None, &device).unwrap();
    assert_eq!(load.applied, names.len());
    let labels: Vec<String> =
        serde_json::from_slice(&std::fs::read(out.path().join("labels.json")).unwrap()).unwrap();
    assert_eq!(labels, ["bird", "fruit", "vehicle"]);
    assert!(out.path().join("preprocessing.json").is_file());

    // Export refuses to write into the data set.
    let inside = data.path().join("export");
    assert!(graft::run::export::export_run(&run_dir, &inside, &device).is_err());

    // `graft eval` prints the tables.
    let bin = env!("CARGO_BIN_EXE_graft");
    let eval = Command::new(bin)
        .args(["eval", "--run"])
        .arg(&run_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&eval.stdout);
    assert!(eval.status.success(), "{text}");
    for column in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "support",
        "confusion matrix",
        "mistakes",
        "scores stored with the checkpoint",
    ] {
        assert!(
            text.contains(column),
            "`graft eval` output lacks {column}:\n{text}"
        );
    }

    // `graft predict`: a bad path is reported, the good image still predicted.
    let good = common::first_file(&data.path().join("fruit"));
    let predict = Command::new(bin)
        .args(["predict", "--run"])
        .arg(&run_dir)
        .arg(data.path().join("no-such-image.png"))
        .arg(&good)
        .output()
        .unwrap();
    let out_text = String::from_utf8_lossy(&predict.stdout);
    let err_text = String::from_utf8_lossy(&predict.stderr);
    assert!(err_text.contains("no-such-image.png"), "{err_text}");
    assert!(out_text.contains(&good.display().to_string()), "{out_text}");
    assert_eq!(
        out_text.matches(" %  ").count(),
        3,
        "top-3 lines:\n{out_text}"
    );
    assert!(
        !predict.status.success(),
        "a failed file makes the exit code non-zero"
    );

    // A folder stands for every image below it.
    let folder = data.path().join("fruit");
    let images = folder.read_dir().unwrap().count();
    let predict = Command::new(bin)
        .args(["predict", "--top", "1", "--run"])
        .arg(&run_dir)
        .arg(&folder)
        .output()
        .unwrap();
    let out_text = String::from_utf8_lossy(&predict.stdout);
    assert!(predict.status.success(), "{out_text}");
    assert_eq!(out_text.matches(" %  ").count(), images, "{out_text}");

    graft_explain_writes_overlays_and_names_bad_files(bin, &run_dir, data.path());

    // A validation image rewritten since the run: its stored score no longer holds, so the
    // images are classified again, and the change is named.
    let rewritten = &evaluation.predictions[0].path;
    let other = common::first_file(&data.path().join("fruit"));
    let mut bytes = std::fs::read(&other).unwrap();
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(rewritten, bytes).unwrap();
    let again = graft::run::eval::evaluate_run(&run_dir, None, &device).unwrap();
    assert_eq!(again.stored_epoch, None);
    assert!(
        again
            .warnings
            .iter()
            .any(|w| w.contains("changed since training")),
        "{:?}",
        again.warnings
    );
}

/// Two evaluations of the same images agree on every prediction, within float noise on logits.
fn assert_same_scores(a: &graft::run::eval::Evaluation, b: &graft::run::eval::Evaluation) {
    assert_eq!(a.metrics, b.metrics);
    assert_eq!(a.predictions.len(), b.predictions.len());
    for (p, q) in a.predictions.iter().zip(&b.predictions) {
        assert_eq!(
            (&p.path, p.truth, p.predicted),
            (&q.path, q.truth, q.predicted)
        );
        let diff = p
            .logits
            .iter()
            .zip(&q.logits)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{}: logits differ by {diff}", p.path.display());
    }
}

/// `graft explain`: one PNG per good image (at the crop's size), the raw maps as JSON, a bad
/// file named and the rest explained, an output folder inside the data set refused.
fn graft_explain_writes_overlays_and_names_bad_files(
    bin: &str,
    run_dir: &std::path::Path,
    data: &std::path::Path,
) {
    let good = common::first_file(&data.join("bird"));
    let scratch = TempDir::new("explain-bad");
    let broken = scratch.path().join("broken.png");
    std::fs::write(&broken, b"not a png at all").unwrap();
    let out = TempDir::new("explain-out");
    let json = out.path().join("maps.json");
    let explain = Command::new(bin)
        .args(["explain", "--run"])
        .arg(run_dir)
        .arg(&good)
        .arg(&broken)
        .arg(data.join("fruit"))
        .arg("--out")
        .arg(out.path().join("overlays"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let err_text = String::from_utf8_lossy(&explain.stderr);
    assert!(
        !explain.status.success(),
        "a bad file makes the exit code non-zero"
    );
    assert!(err_text.contains("broken.png"), "{err_text}");
    let fruit = data.join("fruit").read_dir().unwrap().count();
    let written: Vec<_> = out.path().join("overlays").read_dir().unwrap().collect();
    assert_eq!(written.len(), 1 + fruit, "one overlay per good image");
    let stem = good.file_stem().unwrap().to_string_lossy().to_string();
    let overlay = image::open(out.path().join("overlays").join(format!("{stem}.cam.png"))).unwrap();
    assert_eq!(
        (overlay.width(), overlay.height()),
        (64, 64),
        "the 64 px crop"
    );
    let maps: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let images = maps["images"].as_array().unwrap();
    assert_eq!(images.len(), 1 + fruit);
    let grid = images[0]["map"].as_array().unwrap();
    assert!(!grid.is_empty());
    let values: Vec<f64> = grid
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)), "{values:?}");
    assert!(values.contains(&1.0), "scaled to its maximum: {values:?}");
    assert!(images[0]["probability"].as_f64().unwrap() > 0.0);

    // --class picks the evidence for another class; an unknown one is named.
    let other = Command::new(bin)
        .args(["explain", "--class", "cat", "--run"])
        .arg(run_dir)
        .arg(&good)
        .arg("--out")
        .arg(out.path().join("cat"))
        .output()
        .unwrap();
    let err_text = String::from_utf8_lossy(&other.stderr);
    assert!(
        err_text.contains("no class `cat`") && err_text.contains("bird"),
        "{err_text}"
    );

    // Never into the data set.
    let inside = Command::new(bin)
        .args(["explain", "--run"])
        .arg(run_dir)
        .arg(&good)
        .arg("--out")
        .arg(data.join("maps"))
        .output()
        .unwrap();
    assert!(!inside.status.success());
    assert!(!data.join("maps").exists());
}
