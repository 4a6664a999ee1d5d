//! Building blocks shared by the torchvision architectures: convolution + BatchNorm with
//! PyTorch's symmetric padding, the activations (ReLU6 is Graft's own one-pass operation on the
//! CPU), and the convolution paths that train fast on the CPU.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor};

use crate::ops::batch_norm::batch_norm_forward;
use crate::ops::conv::{Clamp, ConvKind, ConvSpec, conv2d, dense_kernels_take};
use crate::ops::folded::{BatchNormStats, FoldSpec, conv2d_bn_clamp};

pub use crate::ops::folded::ImageLayout;

pub use crate::ops::relu6::relu6;

/// `relu6(x + 3) / 6`, PyTorch's `Hardsigmoid`.
pub fn hard_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu6(x + 3.0) / 6.0
}

/// `x · relu6(x + 3) / 6`, PyTorch's `Hardswish`.
pub fn hard_swish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * hard_sigmoid(x)
}

/// The activation after a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// None.
    Identity,
    /// ReLU.
    Relu,
    /// ReLU6.
    Relu6,
    /// Hardswish.
    HardSwish,
}

impl Act {
    /// Applies the activation.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Identity => x,
            Self::Relu => relu(x),
            Self::Relu6 => relu6(x),
            Self::HardSwish => hard_swish(x),
        }
    }
}

/// burn's "same" padding, or the explicit one, as `[top, left, bottom, right]` for `conv` on an
/// `h`×`w` input: "same" pads as much as `ceil(size / stride)` outputs need, the odd row or column
/// at the bottom or right.
pub fn conv_padding(conv: &Conv2d, h: usize, w: usize) -> [usize; 4] {
    let kernel = conv.weight.dims()[2];
    let stride = conv.stride[0];
    match &conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [*top, *left, *bottom, *right],
        PaddingConfig2d::Same => {
            let same = |size: usize| {
                let total = (size.div_ceil(stride).saturating_sub(1) * stride + kernel)
                    .saturating_sub(size);
                (total / 2, total - total / 2)
            };
            let ((top, bottom), (left, right)) = (same(h), same(w));
            [top, left, bottom, right]
        }
    }
}

/// The kind, stride and padding of `conv` on an input of shape `x_dims` where Graft's
/// convolutions run it (a square kernel, one stride, no dilation, depthwise or one group).
fn graft_spec(conv: &Conv2d, x_dims: [usize; 4]) -> Option<ConvSpec> {
    let [out, per_group, kh, kw] = conv.weight.dims();
    let [_, channels, h, w] = x_dims;
    if kh != kw || conv.stride[0] != conv.stride[1] || conv.dilation != [1, 1] {
        return None;
    }
    let kind = if per_group == 1 && conv.groups == channels && out == channels {
        ConvKind::Depthwise
    } else if conv.groups == 1 {
        ConvKind::Dense
    } else {
        return None;
    };
    Some(ConvSpec {
        kind,
        stride: conv.stride[0],
        padding: conv_padding(conv, h, w),
    })
}

/// Runs `conv` by the fastest path on burn's CPU backend, which computes convolutions and their
/// gradients slowly (through im2col, and its general transposed and grouped convolutions):
/// - depthwise convolutions, and convolutions with one group that Graft's kernels take (see
///   [`dense_kernels_take`]; any that is not 1×1 with stride 1), go through Graft's [`conv2d`];
/// - a plain 1×1 convolution that trains (stride 1, no padding, one group) that they do not take
///   is a matrix product; without gradients burn's convolution is the faster of the two.
///
/// Most of a network's training time is in these. Each path falls back to burn's convolution on
/// other devices.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(spec) = graft_spec(conv, x.dims()) else {
        return conv.forward(x);
    };
    let [out, _, kernel, _] = conv.weight.dims();
    let [n, channels, h, w] = x.dims();
    let pointwise = kernel == 1 && spec.stride == 1 && spec.padding == [0; 4];
    let y = if spec.kind == ConvKind::Depthwise
        || !pointwise
        || dense_kernels_take(&x.device(), channels, out)
    {
        conv2d(x, conv.weight.val(), spec)
    } else if conv.weight.val().is_require_grad() {
        let weight = conv.weight.val().reshape([1, out, channels]);
        weight
            .matmul(x.reshape([n, channels, h * w]))
            .reshape([n, out, h, w])
    } else {
        return conv.forward(x);
    };
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, out, 1, 1]),
        None => y,
    }
}

/// `act(bn(conv(x)))`. Where nothing in it needs a gradient on the CPU backend (a frozen layer,
/// validation, prediction, feature extraction) it runs as one inference operation: the
/// BatchNorm's running statistics folded into the convolution's weights and a bias, and a ReLU
/// or ReLU6 applied to each output value as the convolution writes it. The output is laid out
/// channels-first, for a depthwise convolution or a pool to read.
pub fn conv_bn_act(conv: &Conv2d, bn: &BatchNorm, act: Act, x: Tensor<4>) -> Tensor<4> {
    conv_bn_add_act(conv, bn, act, x, None, ImageLayout::ChannelsFirst)
}

/// `act(bn(conv(x)) + residual)`: a residual block's last layer, the sum made as the
/// convolution writes its output where [`conv_bn_act`] runs as inference. `output` is how Graft's
/// dense kernels lay the output out, where they run it: channels-last where a dense convolution
/// reads it next (see [`FoldSpec::output`]).
pub fn conv_bn_add_act(
    conv: &Conv2d,
    bn: &BatchNorm,
    act: Act,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    output: ImageLayout,
) -> Tensor<4> {
    let tracked = residual.as_ref().is_some_and(Tensor::is_tracked);
    let Some(spec) = inference_spec(conv, bn, &x).filter(|_| !tracked) else {
        let y = batch_norm_forward(bn, conv_forward(conv, x));
        let y = match residual {
            Some(r) => y + r,
            None => y,
        };
        return act.forward(y);
    };
    let clamp = match act {
        Act::Relu => Clamp::RELU,
        Act::Relu6 => Clamp::RELU6,
        Act::Identity | Act::HardSwish => Clamp::NONE,
    };
    let stats = BatchNormStats {
        gamma: bn.gamma.val(),
        beta: bn.beta.val(),
        mean: bn.running_mean.value_sync(),
        var: bn.running_var.value_sync(),
    };
    let fold = FoldSpec {
        conv: spec,
        epsilon: bn.epsilon,
        clamp,
        output,
    };
    let y = conv2d_bn_clamp(x, conv.weight.val(), stats, residual, fold);
    match act {
        Act::HardSwish => hard_swish(y),
        _ => y,
    }
}

/// The convolution's spec where `conv` then `bn` can run as inference on `x`: the CPU backend,
/// `f32`, nothing requiring a gradient, BatchNorm on running statistics, no convolution bias.
fn inference_spec(conv: &Conv2d, bn: &BatchNorm, x: &Tensor<4>) -> Option<ConvSpec> {
    let device = x.device();
    // `is_require_grad` is only true of leaves: an activation computed from trained weights is
    // tracked without requiring a gradient itself.
    let needs_grad = x.is_tracked()
        || conv.weight.val().is_require_grad()
        || bn.gamma.val().is_require_grad()
        || bn.beta.val().is_require_grad();
    let batch_statistics = device.is_autodiff() && bn.training.is_enabled();
    if device.without_autodiff() != Device::flex()
        || x.dtype() != DType::F32
        || needs_grad
        || batch_statistics
        || conv.bias.is_some()
    {
        return None;
    }
    graft_spec(conv, x.dims())
}

/// Runs the groups `range` of a backbone laid out as a stem (group 0), `blocks` blocks, and a
/// last layer (group `blocks + 1`).
pub fn forward_stem_blocks_last(
    mut x: Tensor<4>,
    range: std::ops::Range<usize>,
    blocks: usize,
    stem: impl Fn(Tensor<4>) -> Tensor<4>,
    block: impl Fn(usize, Tensor<4>) -> Tensor<4>,
    last: impl Fn(Tensor<4>) -> Tensor<4>,
) -> Tensor<4> {
    for g in range {
        x = match g {
            0 => stem(x),
            g if g == blocks + 1 => last(x),
            g => block(g - 1, x),
        };
    }
    x
}

/// A convolution as torchvision builds it: padding `(kernel − 1) / 2` on every side.
pub fn torch_conv(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let p = (kernel - 1) / 2;
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device)
}

/// BatchNorm with the given epsilon (torchvision: 1e-5, MobileNetV3: 1e-3).
pub fn batch_norm(channels: usize, epsilon: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(epsilon)
        .init(device)
}

/// Convolution, BatchNorm and an activation: torchvision's `Conv2dNormActivation`
/// (PyTorch keys `N.0.weight` for the convolution and `N.1.*` for the BatchNorm).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
    /// The activation after it.
    #[module(skip)]
    pub act: Act,
}

impl ConvBn {
    /// A new layer; `eps` is the BatchNorm epsilon.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Act,
        eps: f64,
        device: &Device,
    ) -> Self {
        Self {
            conv: torch_conv(input, output, kernel, stride, groups, false, device),
            bn: batch_norm(output, eps, device),
            act,
        }
    }

    /// Runs the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn_act(&self.conv, &self.bn, self.act, x)
    }

    /// Runs the layer with `residual` added before its activation, the output laid out as
    /// `output` (see [`conv_bn_add_act`]).
    pub fn forward_add(
        &self,
        x: Tensor<4>,
        residual: Option<Tensor<4>>,
        output: ImageLayout,
    ) -> Tensor<4> {
        conv_bn_add_act(&self.conv, &self.bn, self.act, x, residual, output)
    }
}
