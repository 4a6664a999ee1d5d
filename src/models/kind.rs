//! Which networks Graft can build: their names, input sizes, ImageNet figures, input
//! normalisation and where their pre-trained weights are.

use serde::{Deserialize, Serialize};

use super::efficientnet_lite::LiteArch;
use super::layers::Act;
use super::mobilenet::MobileNetArch;
use super::resnet::ResNetArch;

/// The architectures Graft can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModelKind {
    /// EfficientNet-Lite0, 224 px, 4.7 M parameters.
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0,
    /// EfficientNet-Lite1, 240 px.
    #[serde(rename = "efficientnet-lite1")]
    EfficientNetLite1,
    /// EfficientNet-Lite2, 260 px.
    #[serde(rename = "efficientnet-lite2")]
    EfficientNetLite2,
    /// ResNet-18 (torchvision).
    #[serde(rename = "resnet18")]
    ResNet18,
    /// ResNet-34 (torchvision).
    #[serde(rename = "resnet34")]
    ResNet34,
    /// ResNet-50 (torchvision).
    #[serde(rename = "resnet50")]
    ResNet50,
    /// ResNet-101 (torchvision).
    #[serde(rename = "resnet101")]
    ResNet101,
    /// MobileNetV2 (torchvision).
    #[serde(rename = "mobilenet-v2")]
    MobileNetV2,
    /// MobileNetV3-Small (torchvision).
    #[serde(rename = "mobilenet-v3-small")]
    MobileNetV3Small,
    /// MobileNetV3-Large (torchvision).
    #[serde(rename = "mobilenet-v3-large")]
    MobileNetV3Large,
    /// A tiny Lite-shaped network with no pre-trained weights, for smoke tests of a backend.
    #[serde(rename = "tiny-test")]
    TinyTest,
}

/// An architecture family and its shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// EfficientNet-Lite.
    Lite(LiteArch),
    /// ResNet.
    ResNet(ResNetArch),
    /// MobileNetV2/V3.
    MobileNet(MobileNetArch),
}

impl Family {
    /// Channels of the pooled features, and the pre-trained hidden classifier layer (width,
    /// activation) that MobileNetV3 keeps in front of its new output layer.
    pub fn head_input(&self) -> (usize, Option<(usize, Act)>) {
        match self {
            Family::Lite(arch) => (arch.head, None),
            Family::ResNet(arch) => (arch.features(), None),
            Family::MobileNet(arch) => (
                arch.last,
                arch.classifier_hidden.map(|h| (h, Act::HardSwish)),
            ),
        }
    }
}

/// How pixels in 0..=255 become the network's input: `(x − mean) / std` per RGB channel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean, in 0..=255 units.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in 0..=255 units.
    pub std: [f32; 3],
}

impl ModelKind {
    /// Every kind, in the order a picker shows them.
    pub const ALL: [ModelKind; 11] = [
        Self::EfficientNetLite0,
        Self::EfficientNetLite1,
        Self::EfficientNetLite2,
        Self::ResNet18,
        Self::ResNet34,
        Self::ResNet50,
        Self::ResNet101,
        Self::MobileNetV2,
        Self::MobileNetV3Small,
        Self::MobileNetV3Large,
        Self::TinyTest,
    ];

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::EfficientNetLite0 => "efficientnet-lite0",
            Self::EfficientNetLite1 => "efficientnet-lite1",
            Self::EfficientNetLite2 => "efficientnet-lite2",
            Self::ResNet18 => "resnet18",
            Self::ResNet34 => "resnet34",
            Self::ResNet50 => "resnet50",
            Self::ResNet101 => "resnet101",
            Self::MobileNetV2 => "mobilenet-v2",
            Self::MobileNetV3Small => "mobilenet-v3-small",
            Self::MobileNetV3Large => "mobilenet-v3-large",
            Self::TinyTest => "tiny-test",
        }
    }

    /// Parses [`ModelKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The input side the pre-trained weights were trained at.
    pub fn input_size(self) -> u32 {
        match self {
            Self::EfficientNetLite1 => 240,
            Self::EfficientNetLite2 => 260,
            Self::TinyTest => 32,
            _ => 224,
        }
    }

    /// The architecture's family and shape.
    pub fn family(self) -> Family {
        match self {
            Self::EfficientNetLite0 => Family::Lite(LiteArch::scaled(1.0, 1.0)),
            Self::EfficientNetLite1 => Family::Lite(LiteArch::scaled(1.0, 1.1)),
            Self::EfficientNetLite2 => Family::Lite(LiteArch::scaled(1.1, 1.2)),
            Self::TinyTest => Family::Lite(LiteArch::tiny()),
            Self::ResNet18 => Family::ResNet(ResNetArch::R18),
            Self::ResNet34 => Family::ResNet(ResNetArch::R34),
            Self::ResNet50 => Family::ResNet(ResNetArch::R50),
            Self::ResNet101 => Family::ResNet(ResNetArch::R101),
            Self::MobileNetV2 => Family::MobileNet(MobileNetArch::v2()),
            Self::MobileNetV3Small => Family::MobileNet(MobileNetArch::v3_small()),
            Self::MobileNetV3Large => Family::MobileNet(MobileNetArch::v3_large()),
        }
    }

    /// ImageNet-1k top-1 accuracy of the pre-trained weights (Google's and torchvision's
    /// published figures).
    pub fn imagenet_top1(self) -> Option<f32> {
        match self {
            Self::EfficientNetLite0 => Some(75.1),
            Self::EfficientNetLite1 => Some(76.7),
            Self::EfficientNetLite2 => Some(77.6),
            Self::ResNet18 => Some(69.758),
            Self::ResNet34 => Some(73.314),
            Self::ResNet50 => Some(76.130),
            Self::ResNet101 => Some(77.374),
            Self::MobileNetV2 => Some(71.878),
            Self::MobileNetV3Small => Some(67.668),
            Self::MobileNetV3Large => Some(74.042),
            Self::TinyTest => None,
        }
    }

    /// The input normalisation the weights were trained with.
    pub fn normalization(self) -> Normalization {
        match self.family() {
            // Google's Lite checkpoints: (x - 127) / 128.
            Family::Lite(_) => Normalization {
                mean: [127.0; 3],
                std: [128.0; 3],
            },
            // torchvision: ImageNet mean and std on 0..1.
            _ => Normalization {
                mean: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
                std: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
            },
        }
    }
}
