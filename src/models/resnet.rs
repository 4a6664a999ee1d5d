//! ResNet-18/34/50/101 (He et al., 2015) as torchvision builds them (stride on the 3×3
//! convolution of a bottleneck, "v1.5"), with torchvision's parameter names.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::layers::{Act, ConvBn, ImageLayout, batch_norm, conv_bn_add_act, torch_conv};

/// How the layers' outputs are laid out where Graft's dense kernels run them.
const LAST: ImageLayout = ImageLayout::ChannelsLast;
use crate::ops::pool::{PoolSpec, max_pool2d};

/// Which residual block and how many per stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetArch {
    /// Bottleneck (ResNet-50 and deeper) or basic blocks.
    pub bottleneck: bool,
    /// Blocks in `layer1`…`layer4`.
    pub layers: [usize; 4],
}

impl ResNetArch {
    /// ResNet-18.
    pub const R18: Self = Self {
        bottleneck: false,
        layers: [2, 2, 2, 2],
    };
    /// ResNet-34.
    pub const R34: Self = Self {
        bottleneck: false,
        layers: [3, 4, 6, 3],
    };
    /// ResNet-50.
    pub const R50: Self = Self {
        bottleneck: true,
        layers: [3, 4, 6, 3],
    };
    /// ResNet-101.
    pub const R101: Self = Self {
        bottleneck: true,
        layers: [3, 4, 23, 3],
    };

    /// Channels out of the last block (the head's input).
    pub fn features(&self) -> usize {
        if self.bottleneck { 2048 } else { 512 }
    }
}

/// The 1×1 projection on the shortcut when the shape changes. PyTorch: `downsample.0`/`.1`.
#[derive(Module, Debug)]
pub struct Downsample {
    /// PyTorch: `downsample.0`.
    pub conv: Conv2d,
    /// PyTorch: `downsample.1`.
    pub bn: BatchNorm,
}

/// A residual block: two 3×3 convolutions (basic) or 1×1, 3×3, 1×1 (bottleneck).
#[derive(Module, Debug)]
pub struct ResBlock {
    /// PyTorch: `conv1` + `bn1`.
    pub conv1: Conv2d,
    /// PyTorch: `bn1`.
    pub bn1: BatchNorm,
    /// PyTorch: `conv2`.
    pub conv2: Conv2d,
    /// PyTorch: `bn2`.
    pub bn2: BatchNorm,
    /// PyTorch: `conv3` (bottleneck only).
    pub conv3: Option<Conv2d>,
    /// PyTorch: `bn3` (bottleneck only).
    pub bn3: Option<BatchNorm>,
    /// PyTorch: `downsample`.
    pub downsample: Option<Downsample>,
}

impl ResBlock {
    fn new(input: usize, planes: usize, stride: usize, bottleneck: bool, device: &Device) -> Self {
        let bn = |c| batch_norm(c, 1e-5, device);
        let out = if bottleneck { planes * 4 } else { planes };
        let downsample = (stride != 1 || input != out).then(|| Downsample {
            conv: torch_conv(input, out, 1, stride, 1, false, device),
            bn: bn(out),
        });
        if bottleneck {
            Self {
                conv1: torch_conv(input, planes, 1, 1, 1, false, device),
                bn1: bn(planes),
                conv2: torch_conv(planes, planes, 3, stride, 1, false, device),
                bn2: bn(planes),
                conv3: Some(torch_conv(planes, out, 1, 1, 1, false, device)),
                bn3: Some(bn(out)),
                downsample,
            }
        } else {
            Self {
                conv1: torch_conv(input, planes, 3, stride, 1, false, device),
                bn1: bn(planes),
                conv2: torch_conv(planes, planes, 3, 1, 1, false, device),
                bn2: bn(planes),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    /// Runs the block. Every layer's output is read by a dense convolution (or added to its
    /// output), so each is laid out channels-last where Graft's kernels run it.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let layer = |conv, bn, act, x, residual| conv_bn_add_act(conv, bn, act, x, residual, LAST);
        let shortcut = match &self.downsample {
            Some(d) => layer(&d.conv, &d.bn, Act::Identity, input.clone(), None),
            None => input.clone(),
        };
        let x = layer(&self.conv1, &self.bn1, Act::Relu, input, None);
        // The last convolution adds the shortcut before its ReLU.
        match self.conv3.as_ref().zip(self.bn3.as_ref()) {
            Some((conv3, bn3)) => {
                let x = layer(&self.conv2, &self.bn2, Act::Relu, x, None);
                layer(conv3, bn3, Act::Relu, x, Some(shortcut))
            }
            None => layer(&self.conv2, &self.bn2, Act::Relu, x, Some(shortcut)),
        }
    }

    /// Output channels.
    pub fn output_channels(&self) -> usize {
        match &self.conv3 {
            Some(c) => c.weight.dims()[0],
            None => self.conv2.weight.dims()[0],
        }
    }

    /// The stride of the block.
    pub fn stride(&self) -> usize {
        self.conv1.stride[0].max(self.conv2.stride[0])
    }
}

/// The stem's max pool (what `ResNetStem::pool` is configured with).
const STEM_POOL: PoolSpec = PoolSpec {
    kernel: 3,
    stride: 2,
    padding: 1,
};

/// The stem: 7×7 convolution, BatchNorm, ReLU, 3×3 max pool. PyTorch: `conv1`, `bn1`.
#[derive(Module, Debug)]
pub struct ResNetStem {
    /// PyTorch: `conv1` + `bn1`.
    pub conv: ConvBn,
    /// 3×3 max pool, stride 2.
    pub pool: MaxPool2d,
}

/// The feature extractor: stem and `layer1`…`layer4`.
#[derive(Module, Debug)]
pub struct ResNet {
    /// PyTorch: `conv1`, `bn1`.
    pub stem: ResNetStem,
    /// PyTorch: `layer1`.
    pub layer1: Vec<ResBlock>,
    /// PyTorch: `layer2`.
    pub layer2: Vec<ResBlock>,
    /// PyTorch: `layer3`.
    pub layer3: Vec<ResBlock>,
    /// PyTorch: `layer4`.
    pub layer4: Vec<ResBlock>,
}

impl ResNet {
    /// A randomly initialised ResNet.
    pub fn new(arch: ResNetArch, device: &Device) -> Self {
        let mut input = 64;
        let mut layer = |planes: usize, blocks: usize, stride: usize| -> Vec<ResBlock> {
            (0..blocks)
                .map(|i| {
                    let block = ResBlock::new(
                        input,
                        planes,
                        if i == 0 { stride } else { 1 },
                        arch.bottleneck,
                        device,
                    );
                    input = block.output_channels();
                    block
                })
                .collect()
        };
        let layer1 = layer(64, arch.layers[0], 1);
        let layer2 = layer(128, arch.layers[1], 2);
        let layer3 = layer(256, arch.layers[2], 2);
        let layer4 = layer(512, arch.layers[3], 2);
        Self {
            stem: ResNetStem {
                conv: ConvBn::new(3, 64, 7, 2, 1, Act::Relu, 1e-5, device),
                pool: MaxPool2dConfig::new([STEM_POOL.kernel; 2])
                    .with_strides([STEM_POOL.stride; 2])
                    .with_padding(PaddingConfig2d::Explicit(
                        STEM_POOL.padding,
                        STEM_POOL.padding,
                        STEM_POOL.padding,
                        STEM_POOL.padding,
                    ))
                    .init(),
            },
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// Every block in order, with its PyTorch name (`layer2.1`).
    pub fn blocks(&self) -> Vec<(String, &ResBlock)> {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .enumerate()
            .flat_map(|(l, blocks)| {
                blocks
                    .iter()
                    .enumerate()
                    .map(move |(i, b)| (format!("layer{}.{i}", l + 1), b))
            })
            .collect()
    }

    /// Layer groups: the stem, then each block.
    pub fn groups(&self) -> usize {
        1 + self.layer1.len() + self.layer2.len() + self.layer3.len() + self.layer4.len()
    }

    /// Runs the groups in `range`.
    pub fn forward_groups(&self, mut x: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        let blocks = self.blocks();
        for g in range {
            x = if g == 0 {
                let stem = self.stem.conv.forward_add(x, None, LAST);
                max_pool2d(stem, STEM_POOL)
            } else {
                blocks[g - 1].1.forward(x)
            };
        }
        x
    }

    /// Freezes (`true`) or thaws each group.
    pub fn with_frozen(self, frozen: impl Fn(usize) -> bool) -> Self {
        let mut g = 1;
        let mut layer = |blocks: Vec<ResBlock>| -> Vec<ResBlock> {
            blocks
                .into_iter()
                .map(|b| {
                    let b = super::params::freeze_if(b, frozen(g));
                    g += 1;
                    b
                })
                .collect()
        };
        let layer1 = layer(self.layer1);
        let layer2 = layer(self.layer2);
        let layer3 = layer(self.layer3);
        let layer4 = layer(self.layer4);
        Self {
            stem: super::params::freeze_if(self.stem, frozen(0)),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

/// torchvision names → ours, e.g. `layer2.0.downsample.1.running_mean` →
/// `backbone.layer2.0.downsample.bn.running_mean`, `fc.weight` → `head.fc.weight`.
pub const KEY_REMAP: &[(&str, &str)] = &[
    (r"^conv1\.", "backbone.stem.conv.conv."),
    (r"^bn1\.", "backbone.stem.conv.bn."),
    (
        r"^(layer\d\.\d+)\.downsample\.0\.",
        "backbone.$1.downsample.conv.",
    ),
    (
        r"^(layer\d\.\d+)\.downsample\.1\.",
        "backbone.$1.downsample.bn.",
    ),
    (r"^(layer\d\.\d+\.(conv|bn)\d)\.", "backbone.$1."),
    (r"^fc\.", "head.fc."),
];

/// Our names → torchvision's for a ResNet, e.g. `backbone.layer2.0.downsample.bn.weight` →
/// `layer2.0.downsample.1.weight`. A configured hidden head layer is written as `fc_hidden`.
pub const EXPORT_REMAP: &[(&str, &str)] = &[
    (r"^backbone\.stem\.conv\.conv\.", "conv1."),
    (r"^backbone\.stem\.conv\.bn\.", "bn1."),
    (
        r"^backbone\.(layer\d\.\d+)\.downsample\.conv\.",
        "$1.downsample.0.",
    ),
    (
        r"^backbone\.(layer\d\.\d+)\.downsample\.bn\.",
        "$1.downsample.1.",
    ),
    (r"^backbone\.(layer\d\.\d+)\.", "$1."),
    (r"^head\.fc\.", "fc."),
    (r"^head\.hidden\.", "fc_hidden."),
];
