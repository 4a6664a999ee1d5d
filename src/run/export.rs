//! Taking a trained run away: weights as safetensors with the PyTorch port's parameter names,
//! the labels, the preprocessing, and a parity check that reloads what was written.

use std::path::{Path, PathBuf};

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use image::RgbImage;
use serde::Serialize;

use super::eval::{EvalError, eval_set, evaluate_samples};
use super::folder::RunSettings;
use super::onnx::runtime::run_onnx;
use super::onnx::{OnnxError, OnnxModel, write_onnx};
use super::predict::{Predictor, TrainedRun, softmax};
use crate::data::Sample;
use crate::data::preprocess::{eval_view, resize_side};
use crate::models::{ModelKind, Network, NetworkSpec, export_remap, load_weights};
use crate::platform::fsutil::{
    InsideDataSet, ensure_outside, set_normal_permissions, temp_path, write_atomic,
    write_json_atomic,
};

/// `preprocessing.json`: how to turn an image into the exported model's input.
#[derive(Clone, Debug, Serialize)]
pub struct Preprocessing {
    /// Input side in pixels (square).
    pub input_size: u32,
    /// Resize (bicubic, antialiased) so the shorter side is this, keeping the aspect ratio…
    pub resize_shorter_side_to: u32,
    /// …then take the centred `input_size` square.
    pub center_crop: u32,
    /// Colour order of the input channels.
    pub channels: &'static str,
    /// Tensor layout of `model.safetensors`' input.
    pub layout: &'static str,
    /// What `model.onnx` takes: the crop itself, which its graph normalises.
    pub onnx_input: &'static str,
    /// Subtracted per channel from pixels in 0..=255.
    pub mean: [f32; 3],
    /// Then divided by, per channel.
    pub std: [f32; 3],
    /// Transparent pixels are composited on this colour first.
    pub alpha_background: [u8; 3],
}

impl Preprocessing {
    /// How `predictor` turns an image into its input.
    pub fn of(predictor: &Predictor) -> Self {
        let input_size = predictor.input_size();
        let norm = predictor.normalization();
        Self {
            input_size,
            resize_shorter_side_to: resize_side(input_size),
            center_crop: input_size,
            channels: "RGB",
            layout: "NCHW",
            onnx_input: "uint8 [N, S, S, 3]: the RGB crop, not normalised",
            mean: norm.mean,
            std: norm.std,
            alpha_background: [255, 255, 255],
        }
    }
}

/// What an export wrote and how faithful it is.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// The export folder.
    pub dir: PathBuf,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Validation images re-scored.
    pub images: usize,
    /// Validation accuracy of the run's checkpoint.
    pub accuracy_before: f64,
    /// Validation accuracy of the exported file, reloaded.
    pub accuracy_after: f64,
    /// Largest absolute logit difference between the two.
    pub max_logit_diff: f32,
    /// Validation crops run through `model.onnx` by the ONNX runtime.
    pub onnx_check_images: usize,
    /// Largest absolute probability difference between Graft and the runtime on them.
    pub onnx_max_probability_diff: f32,
    /// What changed in the data set since training, in words.
    pub warnings: Vec<String>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run could not be loaded or evaluated.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The export folder is inside the data set.
    #[error(transparent)]
    InsideDataSet(#[from] InsideDataSet),
    /// The ONNX file could not be written or run.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The ONNX runtime's probabilities differ from Graft's.
    #[error(
        "the ONNX file does not compute what the run computes: probabilities differ by up to {diff:e} (more than {ONNX_TOLERANCE:e}); nothing was exported"
    )]
    OnnxMismatch {
        /// The largest difference.
        diff: f32,
    },
    /// The export folder already holds something other than an export.
    #[error(
        "{dir} cannot receive the export: {reason}; choose an empty folder or an earlier export"
    )]
    NotAnExport {
        /// The folder.
        dir: PathBuf,
        /// What is in it.
        reason: String,
    },
    /// A file could not be written or read back.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl Fn(String) -> ExportError + '_ {
    move |reason| ExportError::Io {
        path: path.to_path_buf(),
        reason,
    }
}

/// Writes `network` (of `kind`) as safetensors with the PyTorch reference implementation's
/// parameter names and layouts (the store writes a scratch file and renames it).
pub fn save_pytorch_named(
    network: &Network,
    kind: ModelKind,
    path: &Path,
) -> Result<(), ExportError> {
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("graft_model", kind.name());
    for (from, to) in export_remap(kind) {
        store = store.with_key_remapping(&from, &to);
    }
    network
        .save_into(&mut store)
        .map_err(|e| io_error(path)(e.to_string()))?;
    set_normal_permissions(path).map_err(|e| io_error(path)(e.to_string()))
}

/// Loads weights written by [`export_run`] into a fresh network of `spec`.
pub fn load_exported(
    spec: &NetworkSpec,
    path: &Path,
    device: &Device,
) -> Result<Network, ExportError> {
    let mut network = Network::new(spec, device);
    load_weights(&mut network, &spec.kind.family(), path, true)
        .map_err(|e| io_error(path)(e.to_string()))?;
    Ok(network)
}

/// The files an export folder holds; a folder with anything else in it is not replaced.
pub const EXPORT_FILES: [&str; 6] = [
    "model.safetensors",
    "model.onnx",
    "labels.json",
    "preprocessing.json",
    "check.safetensors",
    "predict.py",
];

/// Validation crops stored with the export and run through the written ONNX file.
const CHECK_IMAGES: usize = 8;

/// The largest probability difference between Graft and the ONNX runtime that passes.
pub const ONNX_TOLERANCE: f32 = 1e-4;

/// `predict.py`, written into every export.
const PREDICT_PY: &str = include_str!("predict.py");

/// Refuses an export folder that holds the data set or anything but an earlier export.
fn check_destination(out: &Path, data_root: &Path) -> Result<(), ExportError> {
    ensure_outside(out, data_root)?;
    ensure_outside(&temp_path(out), data_root)?;
    if !data_root.as_os_str().is_empty() && ensure_outside(data_root, out).is_err() {
        return Err(ExportError::NotAnExport {
            dir: out.to_path_buf(),
            reason: format!("it holds the data set {}", data_root.display()),
        });
    }
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !EXPORT_FILES.iter().any(|f| name == *f) {
            return Err(ExportError::NotAnExport {
                dir: out.to_path_buf(),
                reason: format!(
                    "it holds {}, which no export writes",
                    name.to_string_lossy()
                ),
            });
        }
    }
    Ok(())
}

/// Moves the finished `staged` folder to `out`, replacing an earlier export there whole.
fn swap_into_place(staged: &Path, out: &Path) -> Result<(), ExportError> {
    let io = |path: &Path, e: std::io::Error| io_error(path)(e.to_string());
    if out.exists() {
        let mut old_name = out.file_name().unwrap_or_default().to_os_string();
        old_name.push(format!(".old-{}", std::process::id()));
        let old = out.with_file_name(old_name);
        std::fs::rename(out, &old).map_err(|e| io(out, e))?;
        if let Err(e) = std::fs::rename(staged, out) {
            // Put the earlier export back: the folder is as it was before.
            let _ = std::fs::rename(&old, out);
            return Err(io(out, e));
        }
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))
    } else {
        std::fs::rename(staged, out).map_err(|e| io(out, e))
    }
}

/// Writes `model.safetensors`, `model.onnx`, `labels.json`, `preprocessing.json`,
/// `check.safetensors` and `predict.py` for the run in `run_dir` into `out`, checks both model
/// files against the run (the safetensors file reloaded and the validation set re-scored; the
/// ONNX file run by tract on the check crops), and only then puts the folder in place: an
/// earlier export in `out` is replaced whole, or left as it was when anything fails.
pub fn export_run(
    run_dir: &Path,
    out: &Path,
    device: &Device,
) -> Result<ExportReport, ExportError> {
    let run = TrainedRun::open(run_dir, device).map_err(EvalError::from)?;
    check_destination(out, &run.settings.config.data)?;
    let staged = temp_path(out);
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged).map_err(|e| io_error(&staged)(e.to_string()))?;
    let report = write_export(run_dir, &run, &staged, device);
    let report = report.and_then(|r| swap_into_place(&staged, out).map(|()| r));
    if report.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    let mut report = report?;
    report.dir = out.to_path_buf();
    report.files = EXPORT_FILES.iter().map(|f| out.join(f)).collect();
    Ok(report)
}

fn write_export(
    run_dir: &Path,
    run: &TrainedRun,
    dir: &Path,
    device: &Device,
) -> Result<ExportReport, ExportError> {
    let RunSettings { config, classes } = &run.settings;
    let predictor = &run.predictor;
    let weights = dir.join("model.safetensors");
    save_pytorch_named(predictor.network(), config.model, &weights)?;
    let labels = dir.join("labels.json");
    write_json_atomic(&labels, classes).map_err(|e| io_error(&labels)(e.to_string()))?;
    let preprocessing = Preprocessing::of(predictor);
    let path = dir.join("preprocessing.json");
    write_json_atomic(&path, &preprocessing).map_err(|e| io_error(&path)(e.to_string()))?;
    let path = dir.join("predict.py");
    write_atomic(&path, PREDICT_PY.as_bytes()).map_err(|e| io_error(&path)(e.to_string()))?;

    let set = eval_set(run_dir, config, classes, None, predictor.input_size())?;
    let onnx_diff = write_onnx_checked(run_dir, predictor, &preprocessing, &set.samples, dir)?;

    // Parity: reload the file as a user would and score the validation set with both.
    let spec = config.network_spec(classes.len());
    let reloaded = Predictor::from_network(
        load_exported(&spec, &weights, device)?,
        classes.clone(),
        config.model,
        predictor.input_size(),
        device,
    );
    let before = evaluate_samples(predictor, &set.samples)?;
    let after = evaluate_samples(&reloaded, &set.samples)?;
    let max_logit_diff = before
        .predictions
        .iter()
        .zip(&after.predictions)
        .flat_map(|(a, b)| a.logits.iter().zip(&b.logits))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    Ok(ExportReport {
        dir: dir.to_path_buf(),
        files: Vec::new(),
        images: set.samples.len(),
        accuracy_before: before.metrics.accuracy,
        accuracy_after: after.metrics.accuracy,
        max_logit_diff,
        onnx_check_images: CHECK_IMAGES.min(set.samples.len()),
        onnx_max_probability_diff: onnx_diff,
        warnings: set.warnings,
    })
}

/// Writes `model.onnx` and `check.safetensors` (the first validation crops, uint8
/// `[n, S, S, 3]`, with Graft's probabilities), runs the crops through the written file and
/// returns the largest probability difference; over [`ONNX_TOLERANCE`] is an error.
fn write_onnx_checked(
    run_dir: &Path,
    predictor: &Predictor,
    preprocessing: &Preprocessing,
    samples: &[Sample],
    dir: &Path,
) -> Result<f32, ExportError> {
    let onnx_path = dir.join("model.onnx");
    let metadata = vec![
        ("classes".into(), json(predictor.classes())),
        ("preprocessing".into(), json(preprocessing)),
        ("graft_version".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "run".into(),
            run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    ];
    let model = OnnxModel {
        network: predictor.network(),
        input_size: predictor.input_size(),
        normalization: predictor.normalization(),
        metadata,
    };
    write_onnx(&model, &onnx_path)?;
    let side = predictor.input_size();
    // Images that can no longer be read are left out of the check.
    let crops: Vec<RgbImage> = samples
        .iter()
        .filter_map(|s| s.load().ok())
        .take(CHECK_IMAGES)
        .map(|image| eval_view(&image, side))
        .collect();
    let expected: Vec<Vec<f32>> = predictor
        .logits_of_crops(&crops)
        .map_err(EvalError::from)?
        .iter()
        .map(|l| softmax(l))
        .collect();
    write_check_file(&dir.join("check.safetensors"), &crops, &expected)?;
    let got = run_onnx(&onnx_path, &crops)?;
    let diff = max_abs_diff(&expected, &got.probabilities);
    if diff.is_nan() || diff > ONNX_TOLERANCE {
        return Err(ExportError::OnnxMismatch { diff });
    }
    Ok(diff)
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The largest absolute difference between two tables of the same shape (NaN if any is NaN or
/// the shapes differ).
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
        return f32::NAN;
    }
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y))
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) })
}

/// `check.safetensors`: `crops` uint8 `[n, S, S, 3]` and `probabilities` f32 `[n, classes]`.
fn write_check_file(
    path: &Path,
    crops: &[RgbImage],
    probabilities: &[Vec<f32>],
) -> Result<(), ExportError> {
    use safetensors::tensor::{Dtype, TensorView};
    let err = |e: String| io_error(path)(e);
    let side = crops.first().map_or(0, |c| c.width() as usize);
    let pixels: Vec<u8> = crops
        .iter()
        .flat_map(|c| c.as_raw().iter().copied())
        .collect();
    let probs: Vec<u8> = probabilities
        .iter()
        .flatten()
        .flat_map(|p| p.to_le_bytes())
        .collect();
    let classes = probabilities.first().map_or(0, Vec::len);
    let n = crops.len();
    let tensors = [
        (
            "crops",
            TensorView::new(Dtype::U8, vec![n, side, side, 3], &pixels),
        ),
        (
            "probabilities",
            TensorView::new(Dtype::F32, vec![n, classes], &probs),
        ),
    ];
    let views: Vec<(&str, TensorView)> = tensors
        .into_iter()
        .map(|(name, view)| view.map(|v| (name, v)).map_err(|e| err(e.to_string())))
        .collect::<Result<_, _>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| err(e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
}
