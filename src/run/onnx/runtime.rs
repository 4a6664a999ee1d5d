//! Running a written ONNX file with tract, a pure-Rust runtime that shares no code with the
//! writer's network: what it computes is what any runtime given the file should compute.

use std::path::Path;

use image::RgbImage;
use prost::Message;
use tract_onnx::prelude::*;

use super::OnnxError;

/// The two outputs for a batch of images, one row per image.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxOutputs {
    /// `logits`.
    pub logits: Vec<Vec<f32>>,
    /// `probabilities`.
    pub probabilities: Vec<Vec<f32>>,
}

fn runtime_error(path: &Path) -> impl Fn(TractError) -> OnnxError + '_ {
    move |e| OnnxError::Runtime {
        path: path.to_path_buf(),
        reason: format!("{e:#}"),
    }
}

fn rows(value: &TValue, n: usize, path: &Path) -> Result<Vec<Vec<f32>>, OnnxError> {
    let view = value
        .to_plain_array_view::<f32>()
        .map_err(runtime_error(path))?;
    let flat: Vec<f32> = view.iter().copied().collect();
    Ok(flat
        .chunks(flat.len() / n.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}

/// Runs the file at `path` on `crops` (each already at the model's input size).
pub fn run_onnx(path: &Path, crops: &[RgbImage]) -> Result<OnnxOutputs, OnnxError> {
    let n = crops.len();
    let side = crops.first().map_or(0, |c| c.width() as usize);
    let err = runtime_error(path);
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| {
            m.with_input_fact(
                0,
                InferenceFact::dt_shape(u8::datum_type(), tvec!(n, side, side, 3)),
            )
        })
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(&err)?;
    let pixels: Vec<u8> = crops
        .iter()
        .flat_map(|c| c.as_raw().iter().copied())
        .collect();
    let input = tract_ndarray::Array4::from_shape_vec((n, side, side, 3), pixels)
        .map_err(|e| err(e.into()))?;
    let outputs = model
        .run(tvec!(Tensor::from(input).into_tvalue()))
        .map_err(&err)?;
    if outputs.len() != 2 {
        return Err(OnnxError::Runtime {
            path: path.to_path_buf(),
            reason: format!(
                "{} outputs, expected logits and probabilities",
                outputs.len()
            ),
        });
    }
    Ok(OnnxOutputs {
        logits: rows(&outputs[0], n, path)?,
        probabilities: rows(&outputs[1], n, path)?,
    })
}

/// The `metadata_props` of the file at `path`.
pub fn read_metadata(path: &Path) -> Result<Vec<(String, String)>, OnnxError> {
    let bytes = std::fs::read(path).map_err(|e| OnnxError::Runtime {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let model =
        tract_onnx::pb::ModelProto::decode(bytes.as_slice()).map_err(|e| OnnxError::Runtime {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(model
        .metadata_props
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}
