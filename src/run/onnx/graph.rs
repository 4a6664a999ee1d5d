//! Building an ONNX graph node by node from burn modules: each layer becomes the few ONNX
//! operators that compute it in inference form (BatchNorm folded into the convolution before
//! it, dropout left out).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};

use super::OnnxError;
use crate::models::layers::{Act, conv_padding};

/// A height and a width.
pub type Side = [usize; 2];

/// The nodes and weights written so far.
#[derive(Default)]
pub struct Graph {
    /// Operators, in an order where every input is computed before it is used.
    pub nodes: Vec<NodeProto>,
    /// Weights and constants.
    pub initializers: Vec<TensorProto>,
    names: usize,
}

/// An integer-list attribute.
pub fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// A float attribute.
pub fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

/// The values of a tensor on any device, as f32.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, OnnxError> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| OnnxError::Weights(e.to_string()))
}

fn dims_i64(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

impl Graph {
    fn fresh(&mut self, stem: &str) -> String {
        self.names += 1;
        format!("{stem}_{}", self.names)
    }

    /// Adds an f32 constant and returns its name.
    pub fn constant(&mut self, stem: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims_i64(dims),
            data_type: DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds an operator with one output, named `output` or a fresh name.
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        output: Option<&str>,
    ) -> String {
        let output = output.map_or_else(|| self.fresh(&op.to_lowercase()), str::to_string);
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: output.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    /// Adds an operator with one freshly named output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.node_named(op, inputs, attribute, None)
    }

    /// A convolution, with the BatchNorm after it folded into its weights and bias:
    /// `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`. Returns the output and its side.
    pub fn conv(
        &mut self,
        x: &str,
        conv: &Conv2d,
        bn: Option<&BatchNorm>,
        side: Side,
    ) -> Result<(String, Side), OnnxError> {
        let dims = conv.weight.dims();
        let [out, _, kh, kw] = dims;
        let mut weight = values(conv.weight.val())?;
        let mut bias = match &conv.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; out],
        };
        if let Some(bn) = bn {
            let gamma = values(bn.gamma.val())?;
            let beta = values(bn.beta.val())?;
            let mean = values(bn.running_mean.value())?;
            let var = values(bn.running_var.value())?;
            let per_out = weight.len() / out;
            for o in 0..out {
                let scale = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
                for w in &mut weight[o * per_out..(o + 1) * per_out] {
                    *w *= scale;
                }
                bias[o] = (bias[o] - mean[o]) * scale + beta[o];
            }
        }
        let [top, left, bottom, right] = conv_padding(conv, side[0], side[1]);
        let [sh, sw] = conv.stride;
        let [dh, dw] = conv.dilation;
        let out_side = [
            (side[0] + top + bottom - dh * (kh - 1) - 1) / sh + 1,
            (side[1] + left + right - dw * (kw - 1) - 1) / sw + 1,
        ];
        let w = self.constant("w", &dims, &weight);
        let b = self.constant("b", &[out], &bias);
        let y = self.node(
            "Conv",
            &[x, &w, &b],
            vec![
                ints("kernel_shape", &dims_i64(&[kh, kw])),
                ints("strides", &dims_i64(&conv.stride)),
                ints("dilations", &dims_i64(&conv.dilation)),
                ints("pads", &dims_i64(&[top, left, bottom, right])),
                int("group", conv.groups as i64),
            ],
        );
        Ok((y, out_side))
    }

    /// `relu6(x + 3) / 6`.
    pub fn hard_sigmoid(&mut self, x: &str) -> String {
        self.node(
            "HardSigmoid",
            &[x],
            vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
        )
    }

    /// An activation.
    pub fn act(&mut self, x: &str, act: Act) -> String {
        match act {
            Act::Identity => x.to_string(),
            Act::Relu => self.node("Relu", &[x], vec![]),
            Act::Relu6 => {
                let lo = self.constant("zero", &[], &[0.0]);
                let hi = self.constant("six", &[], &[6.0]);
                self.node("Clip", &[x, &lo, &hi], vec![])
            }
            Act::HardSwish => {
                let gate = self.hard_sigmoid(x);
                self.node("Mul", &[x, &gate], vec![])
            }
        }
    }

    /// Convolution, folded BatchNorm, activation.
    pub fn conv_bn_act(
        &mut self,
        x: &str,
        conv: &Conv2d,
        bn: &BatchNorm,
        act: Act,
        side: Side,
    ) -> Result<(String, Side), OnnxError> {
        let (y, side) = self.conv(x, conv, Some(bn), side)?;
        Ok((self.act(&y, act), side))
    }

    /// `a + b`.
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    /// `[n, c, h, w]` → `[n, c]` by the mean over positions.
    pub fn pool(&mut self, x: &str) -> String {
        let pooled = self.node("GlobalAveragePool", &[x], vec![]);
        self.node("Flatten", &[&pooled], vec![int("axis", 1)])
    }

    /// A dense layer (burn's weight is `[inputs, outputs]`, so no transpose).
    pub fn linear(
        &mut self,
        x: &str,
        linear: &Linear,
        output: Option<&str>,
    ) -> Result<String, OnnxError> {
        let dims = linear.weight.dims();
        let w = self.constant("w", &dims, &values(linear.weight.val())?);
        let bias = match &linear.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; dims[1]],
        };
        let b = self.constant("b", &[dims[1]], &bias);
        Ok(self.node_named("Gemm", &[x, &w, &b], vec![], output))
    }
}
