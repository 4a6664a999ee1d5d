//! The feature extractors Graft can build, behind one type: each is a list of layer groups that
//! can run in parts (for the feature cache) and be frozen one by one.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::efficientnet_lite::LiteBackbone;
use super::kind::Family;
use super::mobilenet::MobileNet;
use super::params::param_count;
use super::resnet::ResNet;

/// A feature extractor. burn puts the variant's name in parameter paths
/// (`backbone.ResNet.layer1.0.conv1.weight`); PyTorch files match without it.
#[derive(Module, Debug)]
pub enum Backbone {
    /// EfficientNet-Lite.
    Lite(LiteBackbone),
    /// ResNet.
    ResNet(ResNet),
    /// MobileNetV2 and V3.
    MobileNet(MobileNet),
}

/// One group as the layer list shows it, before its output side is known.
pub struct GroupInfo {
    /// Stable name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Trainable parameters.
    pub params: usize,
    /// Output channels.
    pub channels: usize,
    /// Spatial stride of the group.
    pub stride: usize,
}

impl Backbone {
    /// A randomly initialised backbone of shape `family`.
    pub fn from_family(family: &Family, device: &Device) -> Self {
        match family {
            Family::Lite(arch) => Self::Lite(LiteBackbone::new(arch, device)),
            Family::ResNet(arch) => Self::ResNet(ResNet::new(*arch, device)),
            Family::MobileNet(arch) => Self::MobileNet(MobileNet::new(arch, device)),
        }
    }

    /// Layer groups before the head.
    pub fn groups(&self) -> usize {
        match self {
            Self::Lite(b) => b.groups(),
            Self::ResNet(b) => b.groups(),
            Self::MobileNet(b) => b.groups(),
        }
    }

    /// Runs only the groups in `range`.
    pub fn forward_groups(&self, x: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        match self {
            Self::Lite(b) => b.forward_groups(x, range),
            Self::ResNet(b) => b.forward_groups(x, range),
            Self::MobileNet(b) => b.forward_groups(x, range),
        }
    }

    /// Freezes (`true`) or thaws each group.
    pub fn with_frozen(self, frozen: impl Fn(usize) -> bool) -> Self {
        match self {
            Self::Lite(b) => Self::Lite(b.with_frozen(frozen)),
            Self::ResNet(b) => Self::ResNet(b.with_frozen(frozen)),
            Self::MobileNet(b) => Self::MobileNet(b.with_frozen(frozen)),
        }
    }

    /// The groups, input first.
    pub fn group_info(&self) -> Vec<GroupInfo> {
        match self {
            Self::Lite(b) => lite_groups(b),
            Self::ResNet(b) => resnet_groups(b),
            Self::MobileNet(b) => mobilenet_groups(b),
        }
    }
}

fn out_channels(conv: &burn::nn::conv::Conv2d) -> usize {
    conv.weight.dims()[0]
}

fn lite_groups(b: &LiteBackbone) -> Vec<GroupInfo> {
    let mut groups = vec![GroupInfo {
        name: "stem".into(),
        description: "3×3 conv, stride 2".into(),
        params: param_count(&b.stem),
        channels: out_channels(&b.stem.conv),
        stride: 2,
    }];
    for (i, block) in b.blocks.iter().enumerate() {
        let [_, _, k, _] = block.depthwise_conv.weight.dims();
        let stride = block.depthwise_conv.stride[0];
        groups.push(GroupInfo {
            name: format!("block{i}"),
            description: format!("MBConv {k}×{k}, stride {stride}"),
            params: param_count(block),
            channels: out_channels(&block.project_conv),
            stride,
        });
    }
    groups.push(GroupInfo {
        name: "head_conv".into(),
        description: "1×1 conv to features".into(),
        params: param_count(&b.head_conv),
        channels: out_channels(&b.head_conv.conv),
        stride: 1,
    });
    groups
}

fn resnet_groups(b: &ResNet) -> Vec<GroupInfo> {
    let mut groups = vec![GroupInfo {
        name: "stem".into(),
        description: "7×7 conv, stride 2, max pool".into(),
        params: param_count(&b.stem),
        channels: out_channels(&b.stem.conv.conv),
        stride: 4,
    }];
    for (name, block) in b.blocks() {
        let kind = if block.conv3.is_some() {
            "bottleneck"
        } else {
            "basic block"
        };
        groups.push(GroupInfo {
            description: format!("{kind}, stride {}", block.stride()),
            name,
            params: param_count(block),
            channels: block.output_channels(),
            stride: block.stride(),
        });
    }
    groups
}

fn mobilenet_groups(b: &MobileNet) -> Vec<GroupInfo> {
    let mut groups = vec![GroupInfo {
        name: "features.0".into(),
        description: "3×3 conv, stride 2".into(),
        params: param_count(&b.stem),
        channels: out_channels(&b.stem.conv),
        stride: 2,
    }];
    for (i, block) in b.blocks.iter().enumerate() {
        let (k, stride) = block.kernel_stride();
        let se = if block.se.is_some() { " + SE" } else { "" };
        groups.push(GroupInfo {
            name: format!("features.{}", i + 1),
            description: format!("inverted residual {k}×{k}{se}, stride {stride}"),
            params: param_count(block),
            channels: block.output_channels(),
            stride,
        });
    }
    groups.push(GroupInfo {
        name: format!("features.{}", b.blocks.len() + 1),
        description: "1×1 conv to features".into(),
        params: param_count(&b.last),
        channels: out_channels(&b.last.conv),
        stride: 1,
    });
    groups
}
