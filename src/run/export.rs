//! Taking a trained run away: weights as safetensors with the PyTorch port's parameter names,
//! the labels, the preprocessing, and a parity check that reloads what was written.

use std::path::{Path, PathBuf};

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::Serialize;

use super::eval::{EvalError, eval_set, evaluate_samples};
use super::folder::RunSettings;
use super::predict::{Predictor, TrainedRun};
use crate::models::{ModelKind, Network, NetworkSpec, export_remap, load_weights};
use crate::platform::fsutil::{
    InsideDataSet, ensure_outside, set_normal_permissions, write_json_atomic,
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
    /// Tensor layout.
    pub layout: &'static str,
    /// Subtracted per channel from pixels in 0..=255.
    pub mean: [f32; 3],
    /// Then divided by, per channel.
    pub std: [f32; 3],
    /// Transparent pixels are composited on this colour first.
    pub alpha_background: [u8; 3],
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

/// Writes `model.safetensors`, `labels.json` and `preprocessing.json` for the run in `run_dir`
/// into `out`, reloads the weights and re-scores the validation set with them.
pub fn export_run(
    run_dir: &Path,
    out: &Path,
    device: &Device,
) -> Result<ExportReport, ExportError> {
    let TrainedRun {
        settings: RunSettings { config, classes },
        predictor,
        ..
    } = TrainedRun::open(run_dir, device).map_err(EvalError::from)?;
    ensure_outside(out, &config.data)?;
    std::fs::create_dir_all(out).map_err(|e| io_error(out)(e.to_string()))?;

    let weights = out.join("model.safetensors");
    save_pytorch_named(predictor.network(), config.model, &weights)?;
    let labels = out.join("labels.json");
    write_json_atomic(&labels, &classes).map_err(|e| io_error(&labels)(e.to_string()))?;
    let input_size = predictor.input_size();
    let norm = predictor.normalization();
    let preprocessing = out.join("preprocessing.json");
    write_json_atomic(
        &preprocessing,
        &Preprocessing {
            input_size,
            resize_shorter_side_to: crate::data::preprocess::resize_side(input_size),
            center_crop: input_size,
            channels: "RGB",
            layout: "NCHW",
            mean: norm.mean,
            std: norm.std,
            alpha_background: [255, 255, 255],
        },
    )
    .map_err(|e| io_error(&preprocessing)(e.to_string()))?;

    // Parity: reload the file as a user would and score the validation set with both.
    let spec = config.network_spec(classes.len());
    let reloaded = Predictor::from_network(
        load_exported(&spec, &weights, device)?,
        classes.clone(),
        config.model,
        input_size,
        device,
    );
    let set = eval_set(run_dir, &config, &classes, None, input_size)?;
    let samples = set.samples;
    let before = evaluate_samples(&predictor, &samples)?;
    let after = evaluate_samples(&reloaded, &samples)?;
    let max_logit_diff = before
        .predictions
        .iter()
        .zip(&after.predictions)
        .flat_map(|(a, b)| a.logits.iter().zip(&b.logits))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    Ok(ExportReport {
        dir: out.to_path_buf(),
        files: vec![weights, labels, preprocessing],
        images: samples.len(),
        accuracy_before: before.metrics.accuracy,
        accuracy_after: after.metrics.accuracy,
        max_logit_diff,
        warnings: set.warnings,
    })
}
