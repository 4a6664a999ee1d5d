//! MobileNetV2 (Sandler et al., 2018) and MobileNetV3-Small/Large (Howard et al., 2019) as
//! torchvision builds them, loaded from torchvision's parameter names.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::{Act, ConvBn, ImageLayout, conv_forward, hard_sigmoid, torch_conv};

/// One inverted-residual block's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSpec {
    /// Input channels.
    pub input: usize,
    /// Depthwise kernel.
    pub kernel: usize,
    /// Channels after the expansion.
    pub expanded: usize,
    /// Output channels.
    pub output: usize,
    /// Squeeze-excite after the depthwise convolution.
    pub se: bool,
    /// Activation of the expansion and depthwise convolutions.
    pub act: Act,
    /// Depthwise stride.
    pub stride: usize,
}

/// A MobileNet's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct MobileNetArch {
    /// Stem output channels.
    pub stem: usize,
    /// Stem activation.
    pub stem_act: Act,
    /// The blocks, `features.1` on.
    pub blocks: Vec<BlockSpec>,
    /// Output channels of the last 1×1 convolution.
    pub last: usize,
    /// Its activation.
    pub last_act: Act,
    /// BatchNorm epsilon.
    pub eps: f64,
    /// V3: the pre-trained hidden layer of the classifier (`classifier.0`).
    pub classifier_hidden: Option<usize>,
    /// Whether the PyTorch file names the block's layers `conv` (V2) or `block` (V3).
    pub v3: bool,
}

/// torchvision's `_make_divisible(v, 8)`.
fn divisible8(v: usize) -> usize {
    let new = ((v + 4) / 8 * 8).max(8);
    if (new as f64) < 0.9 * v as f64 {
        new + 8
    } else {
        new
    }
}

impl MobileNetArch {
    /// MobileNetV2, width 1.0.
    pub fn v2() -> Self {
        let settings = [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ];
        let mut blocks = Vec::new();
        let mut input = 32;
        for (t, c, n, s) in settings {
            for i in 0..n {
                blocks.push(BlockSpec {
                    input,
                    kernel: 3,
                    expanded: input * t,
                    output: c,
                    se: false,
                    act: Act::Relu6,
                    stride: if i == 0 { s } else { 1 },
                });
                input = c;
            }
        }
        Self {
            stem: 32,
            stem_act: Act::Relu6,
            blocks,
            last: 1280,
            last_act: Act::Relu6,
            eps: 1e-5,
            classifier_hidden: None,
            v3: false,
        }
    }

    fn v3(rows: &[(usize, usize, usize, usize, bool, bool, usize)], last_hidden: usize) -> Self {
        let blocks: Vec<BlockSpec> = rows
            .iter()
            .map(
                |&(input, kernel, expanded, output, se, hs, stride)| BlockSpec {
                    input,
                    kernel,
                    expanded,
                    output,
                    se,
                    act: if hs { Act::HardSwish } else { Act::Relu },
                    stride,
                },
            )
            .collect();
        let out = blocks.last().map_or(16, |b| b.output);
        Self {
            stem: 16,
            stem_act: Act::HardSwish,
            blocks,
            last: 6 * out,
            last_act: Act::HardSwish,
            eps: 1e-3,
            classifier_hidden: Some(last_hidden),
            v3: true,
        }
    }

    /// MobileNetV3-Small.
    pub fn v3_small() -> Self {
        Self::v3(
            &[
                (16, 3, 16, 16, true, false, 2),
                (16, 3, 72, 24, false, false, 2),
                (24, 3, 88, 24, false, false, 1),
                (24, 5, 96, 40, true, true, 2),
                (40, 5, 240, 40, true, true, 1),
                (40, 5, 240, 40, true, true, 1),
                (40, 5, 120, 48, true, true, 1),
                (48, 5, 144, 48, true, true, 1),
                (48, 5, 288, 96, true, true, 2),
                (96, 5, 576, 96, true, true, 1),
                (96, 5, 576, 96, true, true, 1),
            ],
            1024,
        )
    }

    /// MobileNetV3-Large.
    pub fn v3_large() -> Self {
        Self::v3(
            &[
                (16, 3, 16, 16, false, false, 1),
                (16, 3, 64, 24, false, false, 2),
                (24, 3, 72, 24, false, false, 1),
                (24, 5, 72, 40, true, false, 2),
                (40, 5, 120, 40, true, false, 1),
                (40, 5, 120, 40, true, false, 1),
                (40, 3, 240, 80, false, true, 2),
                (80, 3, 200, 80, false, true, 1),
                (80, 3, 184, 80, false, true, 1),
                (80, 3, 184, 80, false, true, 1),
                (80, 3, 480, 112, true, true, 1),
                (112, 3, 672, 112, true, true, 1),
                (112, 5, 672, 160, true, true, 2),
                (160, 5, 960, 160, true, true, 1),
                (160, 5, 960, 160, true, true, 1),
            ],
            1280,
        )
    }

    /// torchvision names → ours for this shape, as literal prefixes, e.g.
    /// `features.3.conv.1.0.` → `backbone.blocks.2.depthwise.conv.` (V2),
    /// `features.4.block.2.fc1.` → `backbone.blocks.3.se.fc1.` (V3),
    /// `classifier.1.` → `head.fc.`.
    pub fn key_prefixes(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            (
                "features.0.0.".to_string(),
                "backbone.stem.conv.".to_string(),
            ),
            ("features.0.1.".into(), "backbone.stem.bn.".into()),
        ];
        let last = self.blocks.len() + 1;
        pairs.push((format!("features.{last}.0."), "backbone.last.conv.".into()));
        pairs.push((format!("features.{last}.1."), "backbone.last.bn.".into()));
        for (i, b) in self.blocks.iter().enumerate() {
            let from = format!(
                "features.{}.{}.",
                i + 1,
                if self.v3 { "block" } else { "conv" }
            );
            let to = format!("backbone.blocks.{i}.");
            // The block's layers in file order: expansion, depthwise, squeeze-excite, projection.
            let mut parts = Vec::new();
            if b.expanded != b.input {
                parts.push("expand");
            }
            parts.push("depthwise");
            if b.se {
                parts.push("se");
            }
            for (k, part) in parts.iter().enumerate() {
                if *part == "se" {
                    pairs.push((format!("{from}{k}.fc1."), format!("{to}se.fc1.")));
                    pairs.push((format!("{from}{k}.fc2."), format!("{to}se.fc2.")));
                } else {
                    pairs.push((format!("{from}{k}.0."), format!("{to}{part}.conv.")));
                    pairs.push((format!("{from}{k}.1."), format!("{to}{part}.bn.")));
                }
            }
            let k = parts.len();
            if self.v3 {
                pairs.push((format!("{from}{k}.0."), format!("{to}project.conv.")));
                pairs.push((format!("{from}{k}.1."), format!("{to}project.bn.")));
            } else {
                // V2 keeps the projection's convolution and BatchNorm as two siblings.
                pairs.push((format!("{from}{k}."), format!("{to}project.conv.")));
                pairs.push((format!("{from}{}.", k + 1), format!("{to}project.bn.")));
            }
        }
        if self.v3 {
            pairs.push(("classifier.0.".into(), "head.hidden.".into()));
            pairs.push(("classifier.3.".into(), "head.fc.".into()));
        } else {
            pairs.push(("classifier.1.".into(), "head.fc.".into()));
            pairs.push(("fc_hidden.".into(), "head.hidden.".into()));
        }
        pairs
    }

    /// [`MobileNetArch::key_prefixes`] as a remap from the file's names to ours.
    pub fn key_remap(&self) -> Vec<(String, String)> {
        self.key_prefixes()
            .into_iter()
            .map(|(theirs, ours)| (format!("^{}", escape(&theirs)), ours))
            .collect()
    }

    /// [`MobileNetArch::key_prefixes`] as a remap from our names to the file's.
    pub fn export_remap(&self) -> Vec<(String, String)> {
        self.key_prefixes()
            .into_iter()
            .map(|(theirs, ours)| (format!("^{}", escape(&ours)), theirs))
            .collect()
    }
}

/// A key prefix as a regular expression (keys hold only letters, digits, `_` and `.`).
fn escape(prefix: &str) -> String {
    prefix.replace('.', r"\.")
}

/// Squeeze-and-excitation: channel weights from the pooled features. PyTorch: `fc1`, `fc2`.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// 1×1 convolution to the squeezed width, with bias.
    pub fc1: Conv2d,
    /// 1×1 convolution back, with bias.
    pub fc2: Conv2d,
}

impl SqueezeExcite {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pooled = x.clone().mean_dims(&[2, 3]);
        let scale = hard_sigmoid(conv_forward(
            &self.fc2,
            relu(conv_forward(&self.fc1, pooled)),
        ));
        x * scale
    }
}

/// An inverted-residual block.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion (absent when it would not widen).
    pub expand: Option<ConvBn>,
    /// Depthwise convolution.
    pub depthwise: ConvBn,
    /// Squeeze-excite (V3, some blocks).
    pub se: Option<SqueezeExcite>,
    /// 1×1 projection, no activation.
    pub project: ConvBn,
    /// Whether the input is added to the output.
    pub residual: bool,
}

impl InvertedResidual {
    fn new(b: &BlockSpec, eps: f64, device: &Device) -> Self {
        Self {
            expand: (b.expanded != b.input)
                .then(|| ConvBn::new(b.input, b.expanded, 1, 1, 1, b.act, eps, device)),
            depthwise: ConvBn::new(
                b.expanded, b.expanded, b.kernel, b.stride, b.expanded, b.act, eps, device,
            ),
            se: b.se.then(|| {
                let squeezed = divisible8(b.expanded / 4);
                SqueezeExcite {
                    fc1: torch_conv(b.expanded, squeezed, 1, 1, 1, true, device),
                    fc2: torch_conv(squeezed, b.expanded, 1, 1, 1, true, device),
                }
            }),
            project: ConvBn::new(b.expanded, b.output, 1, 1, 1, Act::Identity, eps, device),
            residual: b.stride == 1 && b.input == b.output,
        }
    }

    /// Runs the block.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = expand.forward_add(x, None, for_depthwise(expand.act));
        }
        x = self.depthwise.forward(x);
        if let Some(se) = &self.se {
            x = se.forward(x);
        }
        // The next block's expansion, a dense convolution, reads the output.
        let residual = self.residual.then_some(input);
        self.project
            .forward_add(x, residual, ImageLayout::ChannelsLast)
    }

    /// Output channels.
    pub fn output_channels(&self) -> usize {
        self.project.conv.weight.dims()[0]
    }

    /// Depthwise kernel and stride.
    pub fn kernel_stride(&self) -> (usize, usize) {
        (
            self.depthwise.conv.weight.dims()[2],
            self.depthwise.conv.stride[0],
        )
    }
}

/// How a layer read by a depthwise convolution lays its output out: channels-last (the depthwise
/// convolution then runs channels-last too) unless a Hardswish, which burn's operations apply,
/// comes after it.
fn for_depthwise(act: Act) -> ImageLayout {
    match act {
        Act::HardSwish => ImageLayout::ChannelsFirst,
        Act::Identity | Act::Relu | Act::Relu6 => ImageLayout::ChannelsLast,
    }
}

/// The feature extractor: stem, blocks, last 1×1 convolution. PyTorch: `features.N`.
#[derive(Module, Debug)]
pub struct MobileNet {
    /// PyTorch: `features.0`.
    pub stem: ConvBn,
    /// PyTorch: `features.1`…
    pub blocks: Vec<InvertedResidual>,
    /// PyTorch: the last `features.N`.
    pub last: ConvBn,
}

impl MobileNet {
    /// A randomly initialised MobileNet of shape `arch`.
    pub fn new(arch: &MobileNetArch, device: &Device) -> Self {
        let input = arch.blocks.last().map_or(arch.stem, |b| b.output);
        Self {
            stem: ConvBn::new(3, arch.stem, 3, 2, 1, arch.stem_act, arch.eps, device),
            blocks: arch
                .blocks
                .iter()
                .map(|b| InvertedResidual::new(b, arch.eps, device))
                .collect(),
            last: ConvBn::new(input, arch.last, 1, 1, 1, arch.last_act, arch.eps, device),
        }
    }

    /// Layer groups: stem, each block, the last convolution.
    pub fn groups(&self) -> usize {
        self.blocks.len() + 2
    }

    /// Runs the groups in `range`.
    pub fn forward_groups(&self, x: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        super::layers::forward_stem_blocks_last(
            x,
            range,
            self.blocks.len(),
            |x| self.stem.forward_add(x, None, for_depthwise(self.stem.act)),
            |i, x| self.blocks[i].forward(x),
            |x| self.last.forward(x),
        )
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
            last: super::params::freeze_if(self.last, frozen(n + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        // _make_divisible(v // 4, 8) for the SE widths of MobileNetV3-Small.
        assert_eq!(divisible8(16 / 4), 8);
        assert_eq!(divisible8(96 / 4), 24);
        assert_eq!(divisible8(240 / 4), 64);
        assert_eq!(divisible8(120 / 4), 32);
        assert_eq!(divisible8(144 / 4), 40);
        assert_eq!(divisible8(576 / 4), 144);
    }
}
