//! Convolutions with fast training passes on the CPU: depthwise ones and dense ones (one group).
//!
//! A burn backend extension: on the flex (CPU) backend, with or without autodiff, a depthwise
//! convolution runs all three passes through the loops in [`super::conv_kernels`]; a dense one runs all three passes through the
//! AVX-512 (or AVX2) kernels in [`super::dense_kernels`] where the CPU has them and the channel
//! counts fit, and through burn otherwise. On any other device [`conv2d`] uses burn's convolution.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Shape, Tensor};

use super::conv_kernels::{self, Geometry, conv_options};
use super::depthwise_last;
use super::flex_values::{
    channels_last_f32, channels_last_tensor, contiguous_f32, flex_tensor, slice,
};

/// Which weights a convolution has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// One `k`×`k` kernel per channel: weight `[C, 1, k, k]`.
    Depthwise,
    /// Every output channel sees every input channel: weight `[O, C, kh, kw]`.
    Dense,
}

/// What a convolution does besides its weights (dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Depthwise or dense.
    pub kind: ConvKind,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding as `[top, left, bottom, right]`.
    pub padding: [usize; 4],
}

impl ConvSpec {
    /// burn's options for this convolution, whose weight has `out_channels` rows.
    pub(super) fn burn_options(&self, out_channels: usize) -> ConvOptions<2> {
        let groups = match self.kind {
            ConvKind::Depthwise => out_channels,
            ConvKind::Dense => 1,
        };
        conv_options(self.stride, self.padding, groups)
    }
}

/// The range a fused convolution clamps its output to after the bias: its activation when that
/// is ReLU (`[0, ∞)`) or ReLU6 (`[0, 6]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl Clamp {
    /// No clamp.
    pub const NONE: Self = Self {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    /// ReLU.
    pub const RELU: Self = Self {
        min: 0.0,
        max: f32::INFINITY,
    };
    /// ReLU6.
    pub const RELU6: Self = Self { min: 0.0, max: 6.0 };

    /// `v` clamped to the range. Comparisons rather than `f32::clamp`, whose NaN rule keeps
    /// the compiler from using vector instructions.
    #[inline(always)]
    pub fn apply(&self, v: f32) -> f32 {
        let v = if v < self.min { self.min } else { v };
        if v > self.max { self.max } else { v }
    }
}

/// What an inference convolution does to its output after the weights: adds each channel's
/// bias and the matching value of `residual`, where given, then clamps.
#[derive(Clone, Copy)]
pub(super) struct Finish<'a> {
    /// One value per output channel.
    pub bias: &'a FlexTensor,
    /// A tensor of the output's shape.
    pub residual: Option<&'a FlexTensor>,
    /// The output's range.
    pub clamp: Clamp,
}

/// `y` clamped to `clamp` by burn's operation.
pub(super) fn clamp_by_burn<B: Backend>(y: FloatTensor<B>, clamp: Clamp) -> FloatTensor<B> {
    match clamp {
        Clamp::NONE => y,
        Clamp::RELU => B::relu(y),
        Clamp { min, max } => B::float_clamp(y, min.into(), max.into()),
    }
}

/// The operation as a backend extension. Its default bodies are burn's convolution and its
/// gradients, correct on any backend; flex overrides what it computes faster, autodiff the
/// forward pass.
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// `x` `[N, C, H, W]` convolved with `weight`.
    fn graft_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let options = spec.burn_options(weight.shape()[0]);
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient of the loss with respect to `x`, given the output's gradient.
    fn graft_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let options = spec.burn_options(weight.shape()[0]);
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of the loss with respect to `weight`, given the output's gradient.
    fn graft_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        let options = spec.burn_options(weight.shape()[0]);
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }

    /// Both gradients, `(x, weight)`, sharing the work they have in common.
    fn graft_conv2d_grads(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let dx = Self::graft_conv2d_x_grad(x.clone(), weight.clone(), output_grad.clone(), spec);
        let dw = Self::graft_conv2d_weight_grad(x, weight, output_grad, spec);
        (dx, dw)
    }
}

impl ConvBackend for Flex {
    fn graft_conv2d(x: FlexTensor, weight: FlexTensor, spec: ConvSpec) -> FlexTensor {
        let fast = match spec.kind {
            ConvKind::Dense => dense::forward(&x, &weight, spec),
            ConvKind::Depthwise => depthwise_forward(&x, &weight, None, spec, Clamp::NONE),
        };
        if let Some(y) = fast {
            return y;
        }
        let options = spec.burn_options(weight.shape()[0]);
        Self::conv2d(x, weight, None, options)
    }

    fn graft_conv2d_x_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        spec: ConvSpec,
    ) -> FlexTensor {
        let fast = match spec.kind {
            ConvKind::Depthwise => depthwise_x_grad(&x, &weight, &output_grad, spec),
            ConvKind::Dense => dense::x_grad(&x, &weight, &output_grad, spec),
        };
        fast.unwrap_or_else(|| {
            let options = spec.burn_options(weight.shape()[0]);
            Self::conv2d_x_backward(x, weight, output_grad, options)
        })
    }

    fn graft_conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        spec: ConvSpec,
    ) -> FlexTensor {
        let fast = match spec.kind {
            ConvKind::Depthwise => depthwise_weight_grad(&x, &weight, &output_grad, spec),
            ConvKind::Dense => dense::weight_grad(&x, &weight, &output_grad, spec),
        };
        fast.unwrap_or_else(|| {
            let options = spec.burn_options(weight.shape()[0]);
            Self::conv2d_weight_backward(x, weight, output_grad, options)
        })
    }

    fn graft_conv2d_grads(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        spec: ConvSpec,
    ) -> (FlexTensor, FlexTensor) {
        if spec.kind == ConvKind::Dense
            && let Some(grads) = dense::grads(&x, &weight, &output_grad, spec)
        {
            return grads;
        }
        let dx = Self::graft_conv2d_x_grad(x.clone(), weight.clone(), output_grad.clone(), spec);
        let dw = Self::graft_conv2d_weight_grad(x, weight, output_grad, spec);
        (dx, dw)
    }
}

/// A depthwise convolution by direct loops, each value plus its channel's `bias` (where given)
/// and clamped to `clamp`; `None` where a value is not `f32` or the shapes are not a depthwise
/// convolution's.
pub(super) fn depthwise_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    spec: ConvSpec,
    clamp: Clamp,
) -> Option<FlexTensor> {
    let [batch, channels, in_h, in_w]: [usize; 4] = x.shape().as_slice().try_into().ok()?;
    let [c_out, one, kernel, kw]: [usize; 4] = weight.shape().as_slice().try_into().ok()?;
    let [top, left, bottom, right] = spec.padding;
    let stride = spec.stride;
    if c_out != channels || one != 1 || kw != kernel || stride == 0 {
        return None;
    }
    let out = |size: usize, pad: usize| (size + pad).checked_sub(kernel).map(|v| v / stride + 1);
    let g = Geometry {
        batch,
        channels,
        kernel,
        stride,
        pad_top: top,
        pad_left: left,
        in_h,
        in_w,
        out_h: out(in_h, top + bottom)?,
        out_w: out(in_w, left + right)?,
    };
    let w = contiguous_f32(weight)?;
    let bias = match bias {
        Some(b) => slice(&contiguous_f32(b)?).to_vec(),
        None => vec![0.0; channels],
    };
    // A channels-last input (a frozen expansion's output) gives a channels-last output, for the
    // projection after it.
    if let Some(values) = channels_last_f32(x) {
        let taps = depthwise_last::taps_by_channel(slice(&w), channels, kernel);
        if let Some(y) = depthwise_last::forward(values, &taps, &bias, clamp, &g) {
            return Some(channels_last_tensor(y, [batch, channels, g.out_h, g.out_w]));
        }
    }
    let xv = contiguous_f32(x)?;
    let y = conv_kernels::depthwise_forward(slice(&xv), slice(&w), &bias, clamp, &g);
    Some(flex_tensor(
        y,
        Shape::from([batch, channels, g.out_h, g.out_w]),
    ))
}

/// A depthwise convolution's input gradient by direct loops; `None` for a non-`f32` tensor.
fn depthwise_x_grad(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    spec: ConvSpec,
) -> Option<FlexTensor> {
    let (w, dy) = (contiguous_f32(weight)?, contiguous_f32(output_grad)?);
    let shape = x.shape();
    let g = Geometry::from_shapes(
        &shape,
        &weight.shape(),
        &dy.shape(),
        spec.stride,
        spec.padding,
    );
    let dx = conv_kernels::depthwise_input_grad(slice(&dy), slice(&w), &g);
    Some(flex_tensor(dx, shape))
}

/// A depthwise convolution's weight gradient by direct loops; `None` for a non-`f32` tensor.
fn depthwise_weight_grad(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    spec: ConvSpec,
) -> Option<FlexTensor> {
    let (xv, dy) = (contiguous_f32(x)?, contiguous_f32(output_grad)?);
    let w_shape = weight.shape();
    let g = Geometry::from_shapes(&x.shape(), &w_shape, &dy.shape(), spec.stride, spec.padding);
    let dw = conv_kernels::depthwise_weight_grad(slice(&xv), slice(&dy), &g);
    Some(flex_tensor(dw, w_shape))
}

#[cfg(target_arch = "x86_64")]
#[path = "conv_dense.rs"]
pub(super) mod dense;

/// Stand-ins where the kernels do not exist: burn's convolution runs instead.
#[cfg(not(target_arch = "x86_64"))]
pub(super) mod dense {
    use burn::backend::flex::FlexTensor;

    use super::super::flex_values::ImageLayout;
    use super::{ConvSpec, Finish};

    pub fn available(_: usize, _: usize) -> bool {
        false
    }

    pub fn forward(_: &FlexTensor, _: &FlexTensor, _: ConvSpec) -> Option<FlexTensor> {
        None
    }

    pub fn taps(_: &FlexTensor, _: &FlexTensor, _: ConvSpec) -> Option<Vec<f32>> {
        None
    }

    pub fn forward_taps(
        _: &FlexTensor,
        _: &[f32],
        _: [usize; 4],
        _: ConvSpec,
        _: Option<Finish>,
        _: ImageLayout,
    ) -> Option<FlexTensor> {
        None
    }

    pub fn x_grad(
        _: &FlexTensor,
        _: &FlexTensor,
        _: &FlexTensor,
        _: ConvSpec,
    ) -> Option<FlexTensor> {
        None
    }

    pub fn weight_grad(
        _: &FlexTensor,
        _: &FlexTensor,
        _: &FlexTensor,
        _: ConvSpec,
    ) -> Option<FlexTensor> {
        None
    }

    pub fn grads(
        _: &FlexTensor,
        _: &FlexTensor,
        _: &FlexTensor,
        _: ConvSpec,
    ) -> Option<(FlexTensor, FlexTensor)> {
        None
    }
}

impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn graft_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GraftConv2d;

        impl<B: ConvBackend> Backward<B, 2> for GraftConv2d {
            type State = (NodeId, NodeId, ConvSpec);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, spec) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
                match (node_x, node_weight) {
                    (Some(node_x), Some(node_weight)) => {
                        let (dx, dw) = B::graft_conv2d_grads(x, weight, grad, spec);
                        grads.register::<B>(node_x.id, dx);
                        grads.register::<B>(node_weight.id, dw);
                    }
                    (Some(node), None) => {
                        let dx = B::graft_conv2d_x_grad(x, weight, grad, spec);
                        grads.register::<B>(node.id, dx);
                    }
                    (None, Some(node)) => {
                        let dw = B::graft_conv2d_weight_grad(x, weight, grad, spec);
                        grads.register::<B>(node.id, dw);
                    }
                    (None, None) => {}
                }
            }
        }

        match GraftConv2d
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output =
                    B::graft_conv2d(x.primitive().clone(), weight.primitive().clone(), spec);
                prep.finish((x_state, weight_state, spec), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::graft_conv2d(
                x.primitive().clone(),
                weight.primitive().clone(),
                spec,
            )),
        }
    }
}

/// Whether Graft's own kernels run a dense convolution from `in_channels` to `out_channels` on
/// `device` (all three passes; otherwise burn's convolution does): the CPU backend on a CPU with
/// AVX-512 or AVX2 with FMA, and channel counts that fill whole registers.
pub fn dense_kernels_take(device: &Device, in_channels: usize, out_channels: usize) -> bool {
    *device == Device::flex() && dense::available(in_channels, out_channels)
}

/// A convolution without bias through the extension on the CPU backend, and burn's convolution
/// elsewhere.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, spec: ConvSpec) -> Tensor<4> {
    if x.device() != Device::flex() {
        let options = spec.burn_options(weight.dims()[0]);
        return burn::tensor::module::conv2d(x, weight, None, options);
    }
    let output =
        <Dispatch as ConvBackend>::graft_conv2d(x.into_dispatch(), weight.into_dispatch(), spec);
    Tensor::from_dispatch(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// Output, input gradient and weight gradient of `sum(conv(x, w) · probe)`, through the
    /// extension (`ours`) or through burn's convolution.
    fn run(
        ours: bool,
        x: &Tensor<4>,
        w: &Tensor<4>,
        probe: &Tensor<4>,
        spec: ConvSpec,
    ) -> [TensorData; 3] {
        let x = x.clone().require_grad();
        let w = w.clone().require_grad();
        let y = if ours {
            conv2d(x.clone(), w.clone(), spec)
        } else {
            let options = spec.burn_options(w.dims()[0]);
            burn::tensor::module::conv2d(x.clone(), w.clone(), None, options)
        };
        let grads = (y.clone() * probe.clone()).sum().backward();
        let dx = x.grad(&grads).expect("x has a gradient");
        let dw = w.grad(&grads).expect("w has a gradient");
        [y.into_data(), dx.into_data(), dw.into_data()]
    }

    fn spec(kind: ConvKind, stride: usize, padding: [usize; 4]) -> ConvSpec {
        ConvSpec {
            kind,
            stride,
            padding,
        }
    }

    #[test]
    fn matches_burns_convolution_and_its_gradients() {
        use ConvKind::{Dense, Depthwise};
        let device = Device::flex().autodiff();
        // (input channels, weight shape, spec): depthwise kernels, and dense ones the vector
        // kernels take (channel counts in whole registers) and ones they leave to burn.
        let cases = [
            (4, [4, 1, 3, 3], spec(Depthwise, 1, [1; 4])),
            (4, [4, 1, 3, 3], spec(Depthwise, 2, [1; 4])),
            (4, [4, 1, 5, 5], spec(Depthwise, 2, [1, 1, 2, 2])),
            (4, [4, 1, 5, 5], spec(Depthwise, 1, [2; 4])),
            (16, [64, 16, 3, 3], spec(Dense, 1, [1; 4])),
            (32, [32, 32, 3, 3], spec(Dense, 2, [1; 4])),
            (3, [16, 3, 7, 7], spec(Dense, 2, [3; 4])),
            (16, [32, 16, 1, 1], spec(Dense, 2, [0; 4])),
            (32, [16, 32, 1, 1], spec(Dense, 1, [0; 4])),
            (16, [16, 16, 3, 3], spec(Dense, 2, [0, 0, 1, 1])),
            (5, [6, 5, 3, 3], spec(Dense, 1, [1; 4])),
        ];
        for (channels, w_shape, spec) in cases {
            let x = Tensor::<4>::random(
                [2, channels, 11, 9],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let w = Tensor::<4>::random(w_shape, Distribution::Normal(0.0, 1.0), &device);
            let reference = run(false, &x, &w, &Tensor::zeros([1, 1, 1, 1], &device), spec);
            let out_shape = reference[0].shape().clone();
            let probe = Tensor::<4>::random(
                [out_shape[0], out_shape[1], out_shape[2], out_shape[3]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let expected = run(false, &x, &w, &probe, spec);
            let actual = run(true, &x, &w, &probe, spec);
            for (what, (a, e)) in ["output", "x gradient", "weight gradient"]
                .iter()
                .zip(actual.iter().zip(&expected))
            {
                assert_eq!(a.shape(), e.shape(), "{what} shape, {w_shape:?}, {spec:?}");
                a.assert_approx_eq::<f32>(e, burn::tensor::Tolerance::absolute(1e-3));
            }
        }
    }

    #[test]
    fn frozen_weights_still_pass_the_gradient_to_the_input() {
        let device = Device::flex().autodiff();
        for (w_shape, kind) in [
            ([3, 1, 3, 3], ConvKind::Depthwise),
            ([16, 3, 3, 3], ConvKind::Dense),
        ] {
            let x = Tensor::<4>::random([1, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let w = Tensor::<4>::random(w_shape, Distribution::Normal(0.0, 1.0), &device);
            let grads = conv2d(x.clone(), w.clone(), spec(kind, 2, [1; 4]))
                .sum()
                .backward();
            assert!(x.grad(&grads).is_some());
            assert!(w.grad(&grads).is_none());
        }
    }
}
