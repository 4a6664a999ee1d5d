//! A trained network as an ONNX file that cannot be fed wrongly: the input is the uint8 RGB crop
//! itself (`[N, S, S, 3]`), and the graph does the cast, the normalisation and the change to
//! NCHW. BatchNorm is folded into the convolutions; dropout is left out.
//!
//! - [`graph`]: the node builder (one place that turns a layer into operators).
//! - [`architectures`]: every architecture of the zoo in those operators.
//! - [`runtime`]: running a written file with tract, a pure-Rust ONNX runtime.
//!
//! The messages are the ONNX protobuf schema as tract compiles it (`tract_onnx::pb`), written
//! with prost.

pub mod architectures;
pub mod graph;
pub mod runtime;

use std::path::Path;

use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{Tensor as TensorType, Value};
use tract_onnx::pb::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

use crate::models::{Network, Normalization};
use crate::platform::fsutil::write_atomic;
use graph::{Graph, ints};

/// The operator set the file declares.
pub const OPSET: i64 = 13;
/// The ONNX IR version that goes with [`OPSET`].
const IR_VERSION: i64 = 7;

/// Why an ONNX file could not be written or run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A weight could not be read off its device.
    #[error("could not read the network's weights: {0}")]
    Weights(String),
    /// The file could not be written.
    #[error("{path}: {reason}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The runtime refused or failed to run the file.
    #[error("the ONNX runtime could not run {path}: {reason}")]
    Runtime {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

/// What goes into the file besides the network.
pub struct OnnxModel<'a> {
    /// The trained network.
    pub network: &'a Network,
    /// Input side in pixels.
    pub input_size: u32,
    /// The normalisation the network was trained with.
    pub normalization: Normalization,
    /// `metadata_props`: key and value (JSON where the value is structured).
    pub metadata: Vec<(String, String)>,
}

fn tensor_info(name: &str, elem: DataType, dims: &[Dimension]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(TensorType {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim: dims.to_vec() }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn fixed(n: usize) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(n as i64)),
        ..Default::default()
    }
}

fn batch() -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimParam("N".into())),
        ..Default::default()
    }
}

/// `image` (uint8 NHWC) → the normalised NCHW floats the network takes.
fn preprocess(g: &mut Graph, norm: &Normalization) -> String {
    let floats = g.node(
        "Cast",
        &["image"],
        vec![graph::int("to", DataType::Float as i64)],
    );
    let mean = g.constant("mean", &[3], &norm.mean);
    let std = g.constant("std", &[3], &norm.std);
    let centred = g.node("Sub", &[&floats, &mean], vec![]);
    let scaled = g.node("Div", &[&centred, &std], vec![]);
    g.node("Transpose", &[&scaled], vec![ints("perm", &[0, 3, 1, 2])])
}

/// The whole model as an ONNX `ModelProto`.
pub fn model_proto(model: &OnnxModel) -> Result<ModelProto, OnnxError> {
    let mut g = Graph::default();
    let side = model.input_size as usize;
    let x = preprocess(&mut g, &model.normalization);
    let (features, _) = architectures::backbone(&mut g, &model.network.backbone, &x, [side, side])?;
    architectures::head(&mut g, &model.network.head, &features)?;
    let classes = model.network.head.fc.weight.dims()[1];
    let outputs = ["logits", "probabilities"]
        .map(|name| tensor_info(name, DataType::Float, &[batch(), fixed(classes)]));
    let graph = GraphProto {
        name: "graft".into(),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![tensor_info(
            "image",
            DataType::Uint8,
            &[batch(), fixed(side), fixed(side), fixed(3)],
        )],
        output: outputs.to_vec(),
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "graft".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: model
            .metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// Writes the model to `path` (through a temporary file renamed into place).
pub fn write_onnx(model: &OnnxModel, path: &Path) -> Result<(), OnnxError> {
    let bytes = model_proto(model)?.encode_to_vec();
    write_atomic(path, &bytes).map_err(|e| OnnxError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
