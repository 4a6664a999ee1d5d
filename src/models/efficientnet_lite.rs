//! EfficientNet-Lite (Google, 2020): EfficientNet without squeeze-excite and with ReLU6, built for
//! mobile accelerators. Keys follow lukemelas' `efficientnet_pytorch` port of Google's checkpoints.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::layers::{Act, ImageLayout, conv_bn_act, conv_bn_add_act};

/// One stage of inverted-residual blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Blocks in the stage before depth scaling.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Expansion ratio of the 1×1 expand convolution.
    pub expand: usize,
    /// Output channels before width scaling.
    pub out: usize,
}

const fn stage(repeats: usize, kernel: usize, stride: usize, expand: usize, out: usize) -> Stage {
    Stage {
        repeats,
        kernel,
        stride,
        expand,
        out,
    }
}

/// The seven EfficientNet-B0 stages that every Lite size scales.
pub const LITE_STAGES: [Stage; 7] = [
    stage(1, 3, 1, 1, 16),
    stage(2, 3, 2, 6, 24),
    stage(2, 5, 2, 6, 40),
    stage(3, 3, 2, 6, 80),
    stage(3, 5, 1, 6, 112),
    stage(4, 5, 2, 6, 192),
    stage(1, 3, 1, 6, 320),
];

/// The shape of one EfficientNet-Lite network.
#[derive(Clone, Debug, PartialEq)]
pub struct LiteArch {
    /// Width multiplier for the stages (never the stem or the head).
    pub width: f64,
    /// Depth multiplier for the stages (never the first or the last).
    pub depth: f64,
    /// Stem output channels.
    pub stem: usize,
    /// Head convolution output channels (the feature size).
    pub head: usize,
    /// The stages before scaling.
    pub stages: Vec<Stage>,
}

impl LiteArch {
    /// Lite0/1/2 (and larger): width, depth; stem 32 and head 1280 fixed.
    pub fn scaled(width: f64, depth: f64) -> Self {
        Self {
            width,
            depth,
            stem: 32,
            head: 1280,
            stages: LITE_STAGES.to_vec(),
        }
    }

    /// A very small random-initialised Lite-shaped network, for smoke tests of a backend.
    pub fn tiny() -> Self {
        Self {
            width: 1.0,
            depth: 1.0,
            stem: 8,
            head: 32,
            stages: vec![stage(1, 3, 1, 1, 8), stage(1, 3, 2, 2, 16)],
        }
    }

    /// TensorFlow's `round_filters`: scale, round to a multiple of 8, never drop below 90 %.
    fn round_filters(&self, filters: usize) -> usize {
        let scaled = filters as f64 * self.width;
        let mut rounded = (((scaled + 4.0) as usize) / 8 * 8).max(8);
        if (rounded as f64) < 0.9 * scaled {
            rounded += 8;
        }
        rounded
    }

    /// The concrete blocks: (in, out, kernel, stride, expand) for each, in order.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let last = self.stages.len() - 1;
        let mut blocks = Vec::new();
        let mut channels = self.stem;
        for (i, s) in self.stages.iter().enumerate() {
            let out = self.round_filters(s.out);
            // Lite keeps the first and the last stage's depth.
            let repeats = if i == 0 || i == last {
                s.repeats
            } else {
                (s.repeats as f64 * self.depth).ceil() as usize
            };
            for r in 0..repeats {
                blocks.push(BlockSpec {
                    input: channels,
                    output: out,
                    kernel: s.kernel,
                    stride: if r == 0 { s.stride } else { 1 },
                    expand: s.expand,
                });
                channels = out;
            }
        }
        blocks
    }
}

/// One inverted-residual block's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    /// Input channels.
    pub input: usize,
    /// Output channels.
    pub output: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Expansion ratio.
    pub expand: usize,
}

/// BatchNorm as the TF checkpoints were trained: eps 1e-3, momentum 0.01.
fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-3)
        .with_momentum(0.01)
        .init(device)
}

/// A convolution with TensorFlow "SAME" padding (asymmetric on stride 2: more at bottom/right).
fn conv(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device)
}

/// Convolution, BatchNorm, ReLU6: the stem and the head convolution.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

impl ConvBnAct {
    fn new(input: usize, output: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv: conv(input, output, kernel, stride, 1, device),
            bn: batch_norm(output, device),
        }
    }

    /// Runs the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn_act(&self.conv, &self.bn, Act::Relu6, x)
    }

    /// Runs the layer, its output laid out as `output` where Graft's dense kernels run it.
    pub fn forward_laid_out(&self, x: Tensor<4>, output: ImageLayout) -> Tensor<4> {
        conv_bn_add_act(&self.conv, &self.bn, Act::Relu6, x, None, output)
    }
}

/// An inverted-residual (MBConv) block without squeeze-excite.
#[derive(Module, Debug)]
pub struct MbConv {
    /// 1×1 expansion (absent when the expansion ratio is 1). PyTorch: `_expand_conv`.
    pub expand_conv: Option<Conv2d>,
    /// BatchNorm after the expansion. PyTorch: `_bn0`.
    pub bn0: Option<BatchNorm>,
    /// Depthwise convolution. PyTorch: `_depthwise_conv`.
    pub depthwise_conv: Conv2d,
    /// PyTorch: `_bn1`.
    pub bn1: BatchNorm,
    /// 1×1 projection. PyTorch: `_project_conv`.
    pub project_conv: Conv2d,
    /// PyTorch: `_bn2`.
    pub bn2: BatchNorm,
    /// Whether the input is added to the output (stride 1, same channels).
    pub residual: bool,
}

impl MbConv {
    fn new(spec: BlockSpec, device: &Device) -> Self {
        let hidden = spec.input * spec.expand;
        let (expand_conv, bn0) = if spec.expand != 1 {
            (
                Some(conv(spec.input, hidden, 1, 1, 1, device)),
                Some(batch_norm(hidden, device)),
            )
        } else {
            (None, None)
        };
        Self {
            expand_conv,
            bn0,
            depthwise_conv: conv(hidden, hidden, spec.kernel, spec.stride, hidden, device),
            bn1: batch_norm(hidden, device),
            project_conv: conv(hidden, spec.output, 1, 1, 1, device),
            bn2: batch_norm(spec.output, device),
            residual: spec.stride == 1 && spec.input == spec.output,
        }
    }

    /// Runs the block.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(expand), Some(bn)) = (&self.expand_conv, &self.bn0) {
            // Read by the depthwise convolution, which runs channels-last on channels-last input.
            x = conv_bn_add_act(expand, bn, Act::Relu6, x, None, ImageLayout::ChannelsLast);
        }
        x = conv_bn_act(&self.depthwise_conv, &self.bn1, Act::Relu6, x);
        let residual = self.residual.then_some(input);
        // The next block's expansion, a dense convolution, reads the output.
        let (conv, bn, last) = (&self.project_conv, &self.bn2, ImageLayout::ChannelsLast);
        conv_bn_add_act(conv, bn, Act::Identity, x, residual, last)
    }
}

/// The feature extractor: stem, blocks, head convolution. Output: `[batch, head, h, w]`.
#[derive(Module, Debug)]
pub struct LiteBackbone {
    /// PyTorch: `_conv_stem` + `_bn0`.
    pub stem: ConvBnAct,
    /// PyTorch: `_blocks.N`.
    pub blocks: Vec<MbConv>,
    /// PyTorch: `_conv_head` + `_bn1`.
    pub head_conv: ConvBnAct,
}

impl LiteBackbone {
    /// A randomly initialised backbone of the given shape.
    pub fn new(arch: &LiteArch, device: &Device) -> Self {
        let blocks = arch.blocks();
        let last = blocks.last().map_or(arch.stem, |b| b.output);
        Self {
            stem: ConvBnAct::new(3, arch.stem, 3, 2, device),
            blocks: blocks.into_iter().map(|b| MbConv::new(b, device)).collect(),
            head_conv: ConvBnAct::new(last, arch.head, 1, 1, device),
        }
    }

    /// Runs the backbone.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_groups(x, 0..self.groups())
    }

    /// Freezes (`true`) or thaws each group.
    pub fn with_frozen(self, frozen: impl Fn(usize) -> bool) -> Self {
        let n = self.blocks.len();
        Self {
            stem: super::params::freeze_if(self.stem, frozen(0)),
            blocks: self
                .blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| super::params::freeze_if(b, frozen(i + 1)))
                .collect(),
            head_conv: super::params::freeze_if(self.head_conv, frozen(n + 1)),
        }
    }

    /// Layer groups: stem, each block, head convolution.
    pub fn groups(&self) -> usize {
        self.blocks.len() + 2
    }

    /// Runs only the groups in `range` (0 is the stem, `groups() - 1` the head convolution).
    pub fn forward_groups(&self, x: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        super::layers::forward_stem_blocks_last(
            x,
            range,
            self.blocks.len(),
            // The first block's depthwise convolution reads it.
            |x| self.stem.forward_laid_out(x, ImageLayout::ChannelsLast),
            |i, x| self.blocks[i].forward(x),
            |x| self.head_conv.forward(x),
        )
    }
}

/// Key remap from lukemelas' names to ours, e.g. `_blocks.3._depthwise_conv.weight` →
/// `backbone.blocks.3.depthwise_conv.weight`, `_fc.weight` → `head.fc.weight`.
pub const KEY_REMAP: &[(&str, &str)] = &[
    (r"^_conv_stem\.", "backbone.stem.conv."),
    (r"^_bn0\.", "backbone.stem.bn."),
    (r"^_blocks\.(\d+)\._", "backbone.blocks.$1."),
    (r"^_conv_head\.", "backbone.head_conv.conv."),
    (r"^_bn1\.", "backbone.head_conv.bn."),
    (r"^_fc\.", "head.fc."),
];

/// Our names → the lukemelas `efficientnet_pytorch` names, e.g. `backbone.blocks.3.bn1.weight`
/// → `_blocks.3._bn1.weight`. The optional hidden head layer has no counterpart there and is
/// written as `_fc_hidden`.
pub const EXPORT_REMAP: &[(&str, &str)] = &[
    (r"^backbone\.stem\.conv\.", "_conv_stem."),
    (r"^backbone\.stem\.bn\.", "_bn0."),
    (r"^backbone\.blocks\.(\d+)\.", "_blocks.$1._"),
    (r"^backbone\.head_conv\.conv\.", "_conv_head."),
    (r"^backbone\.head_conv\.bn\.", "_bn1."),
    (r"^head\.fc\.", "_fc."),
    (r"^head\.hidden\.", "_fc_hidden."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite_sizes_match_the_checkpoints() {
        // Block counts and widths read off the .pth files in the fixtures.
        let lite0 = LiteArch::scaled(1.0, 1.0).blocks();
        assert_eq!(lite0.len(), 16);
        let lite1 = LiteArch::scaled(1.0, 1.1).blocks();
        assert_eq!(lite1.len(), 21);
        let lite2 = LiteArch::scaled(1.1, 1.2).blocks();
        assert_eq!(lite2.len(), 21);
        let outs: Vec<usize> = lite2.iter().map(|b| b.output).collect();
        assert_eq!(outs[0], 16);
        assert_eq!(outs[4], 48);
        assert_eq!(outs[7], 88);
        assert_eq!(outs[11], 120);
        assert_eq!(outs[15], 208);
        assert_eq!(outs[20], 352);
    }
}
