//! Pre-trained networks with a replaceable head, described as a list of layer groups that can be
//! frozen one by one.

pub mod backbone;
pub mod download;
pub mod efficientnet_lite;
pub mod layers;
pub mod mobilenet;
pub mod resnet;
mod weights;
pub mod zoo;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::HeadConfig;
pub use backbone::Backbone;
pub use efficientnet_lite::{LiteArch, LiteBackbone};
use layers::Act;
use mobilenet::MobileNetArch;
use resnet::ResNetArch;
pub use weights::{LoadReport, WeightsError, detect_kind, file_tensors, load_weights};

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

    /// The file name of the pre-trained ImageNet weights, if the kind has any.
    pub fn weights_file_name(self) -> Option<&'static str> {
        crate::models::zoo::entry(self).map(|e| e.file_name)
    }

    /// Where the pre-trained weights are found: the bundled assets, the user's cache, then
    /// PyTorch's hub cache.
    pub fn find_weights(self) -> Option<PathBuf> {
        let name = self.weights_file_name()?;
        crate::assets::weight_search_dirs()
            .into_iter()
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }
}

/// The classifier on top of the pooled features.
#[derive(Module, Debug)]
pub struct Head {
    /// Dropout on the features (and on the hidden layer's output).
    pub dropout: Dropout,
    /// Optional hidden dense layer: new (ReLU) from the head settings, or MobileNetV3's
    /// pre-trained `classifier.0` (Hardswish).
    pub hidden: Option<Linear>,
    /// The hidden layer's activation.
    #[module(skip)]
    pub hidden_act: Act,
    /// The output layer: one logit per class.
    pub fc: Linear,
}

impl Head {
    /// A freshly initialised head. `fixed_hidden` is an architecture's own hidden layer
    /// (width, activation), which replaces the configured one.
    pub fn new(
        features: usize,
        classes: usize,
        config: &HeadConfig,
        fixed_hidden: Option<(usize, Act)>,
        device: &Device,
    ) -> Self {
        let (width, act) = match fixed_hidden {
            Some((width, act)) => (Some(width), act),
            None => (config.hidden, Act::Relu),
        };
        let hidden = width.map(|width| LinearConfig::new(features, width).init(device));
        Self {
            dropout: DropoutConfig::new(config.dropout).init(),
            hidden,
            hidden_act: act,
            fc: LinearConfig::new(width.unwrap_or(features), classes).init(device),
        }
    }

    /// Pooled features `[batch, features]` → logits `[batch, classes]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let mut x = self.dropout.forward(features);
        if let Some(hidden) = &self.hidden {
            x = self
                .dropout
                .forward(self.hidden_act.forward(hidden.forward(x)));
        }
        self.fc.forward(x)
    }
}

/// A backbone and a head: the network that trains.
#[derive(Module, Debug)]
pub struct Network {
    /// Pre-trained feature extractor.
    pub backbone: Backbone,
    /// Classifier.
    pub head: Head,
}

/// What flows between two layer groups.
#[derive(Clone, Debug)]
pub enum Activation {
    /// Feature maps `[batch, channels, h, w]`.
    Map(Tensor<4>),
    /// Pooled features `[batch, channels]`, the head's input.
    Pooled(Tensor<2>),
}

impl Activation {
    /// Shape, batch first.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Self::Map(x) => x.dims().to_vec(),
            Self::Pooled(x) => x.dims().to_vec(),
        }
    }
}

fn pool(features: Tensor<4>) -> Tensor<2> {
    features.mean_dims(&[2, 3]).flatten::<2>(1, 3)
}

/// One row of the layer list: a unit that is frozen or trained as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerGroup {
    /// Stable name, used by freeze plans: `stem`, `block0`…, `head_conv`, `head`.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// Trainable parameters in the group.
    pub params: usize,
    /// Output shape for one image, `[channels, height, width]` (or `[classes]` for the head).
    pub output_shape: Vec<usize>,
}

/// What to build: an architecture, a head, an input size.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSpec {
    /// The architecture.
    pub kind: ModelKind,
    /// Output classes.
    pub classes: usize,
    /// Head settings.
    pub head: HeadConfig,
    /// Input side in pixels.
    pub input_size: u32,
}

impl Network {
    /// A randomly initialised network.
    pub fn new(spec: &NetworkSpec, device: &Device) -> Self {
        Self::build(spec, device, None)
    }

    /// A randomly initialised network whose weights depend only on `seed`.
    pub fn new_seeded(spec: &NetworkSpec, device: &Device, seed: u64) -> Self {
        Self::build(spec, device, Some(seed))
    }

    /// A randomly initialised network of any shape in a family (e.g. a ResNet with one block
    /// per stage), for loading files of shapes Graft does not list.
    pub fn from_family(
        family: &Family,
        classes: usize,
        head: &HeadConfig,
        device: &Device,
    ) -> Self {
        let (features, fixed_hidden) = family.head_input();
        let network = Self {
            backbone: Backbone::from_family(family, device),
            head: Head::new(features, classes, head, fixed_hidden, device),
        };
        network.visit(&mut DrawParams);
        network
    }

    fn build(spec: &NetworkSpec, device: &Device, seed: Option<u64>) -> Self {
        // The device's random generator is shared by the whole process and burn draws a
        // parameter on first use: seeding and drawing every parameter under one lock keeps a
        // seeded network the same whatever else builds networks meanwhile.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seed) = seed {
            device.seed(seed);
        }
        Self::from_family(&spec.kind.family(), spec.classes, &spec.head, device)
    }

    /// A network with pre-trained backbone weights from `path` and a new head (drawn from
    /// `seed` when given).
    ///
    /// With `keep_classifier`, the file's own classifier is loaded too (`classes` must then match
    /// it, 1000 for ImageNet).
    pub fn pretrained(
        spec: &NetworkSpec,
        path: &Path,
        keep_classifier: bool,
        seed: Option<u64>,
        device: &Device,
    ) -> Result<(Self, LoadReport), WeightsError> {
        let mut network = Self::build(spec, device, seed);
        let report =
            weights::load_weights(&mut network, &spec.kind.family(), path, keep_classifier)?;
        Ok((network, report))
    }

    /// Images `[batch, 3, h, w]` → logits `[batch, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_after(self.forward_until(images, 0), 0)
    }

    /// Layer groups before the head.
    pub fn backbone_groups(&self) -> usize {
        self.backbone.groups()
    }

    /// Runs the first `boundary` layer groups. At the last backbone group the output is pooled,
    /// since the head only needs the pooled features.
    pub fn forward_until(&self, images: Tensor<4>, boundary: usize) -> Activation {
        let boundary = boundary.min(self.backbone_groups());
        let x = self.backbone.forward_groups(images, 0..boundary);
        if boundary == self.backbone_groups() {
            Activation::Pooled(pool(x))
        } else {
            Activation::Map(x)
        }
    }

    /// Runs the layer groups from `boundary` on: `forward_after(forward_until(x, k), k)` equals
    /// `forward(x)` for every `k`.
    pub fn forward_after(&self, input: Activation, boundary: usize) -> Tensor<2> {
        let pooled = match input {
            Activation::Pooled(p) => p,
            Activation::Map(x) => pool(
                self.backbone
                    .forward_groups(x, boundary..self.backbone_groups()),
            ),
        };
        self.head.forward(pooled)
    }

    /// The layer groups, from input to head, with output shapes for `input_size`.
    pub fn layer_groups(&self, input_size: u32) -> Vec<LayerGroup> {
        let mut side = input_size as usize;
        let mut groups: Vec<LayerGroup> = self
            .backbone
            .group_info()
            .into_iter()
            .map(|g| {
                side = side.div_ceil(g.stride);
                LayerGroup {
                    name: g.name,
                    description: g.description,
                    params: g.params,
                    output_shape: vec![g.channels, side, side],
                }
            })
            .collect();
        let classes = self.head.fc.weight.dims()[1];
        groups.push(LayerGroup {
            name: "head".into(),
            description: match &self.head.hidden {
                Some(h) => format!("pool, dropout, dense {}, classifier", h.weight.dims()[1]),
                None => "pool, dropout, classifier".into(),
            },
            params: param_count(&self.head),
            output_shape: vec![classes],
        });
        groups
    }

    /// Freezes every BatchNorm layer of the backbone (weights and running statistics), whatever
    /// group it is in.
    pub fn with_batch_norm_frozen(self) -> Self {
        // Every BatchNorm field is named `bn`, `bn0`…`bn3`.
        match burn::module::ParamGroup::from_regex(r"\.bn\d?\.") {
            Ok(group) => Network {
                backbone: self.backbone.freeze_group(group),
                head: self.head,
            },
            Err(_) => self,
        }
    }

    /// Freezes (`true`) or unfreezes each group, in [`Network::layer_groups`] order.
    ///
    /// A frozen group keeps its weights and BatchNorm statistics; a thawed one trains, with its
    /// BatchNorm on batch statistics.
    pub fn with_frozen(self, frozen: &[bool]) -> Self {
        let f = |i: usize| frozen.get(i).copied().unwrap_or(false);
        let head_index = self.backbone.groups();
        Network {
            backbone: self.backbone.with_frozen(f),
            head: freeze_if(self.head, f(head_index)),
        }
    }
}

/// Touches every parameter, which draws the lazily initialised ones.
struct DrawParams;

impl ModuleVisitor for DrawParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Counts learnable values: BatchNorm running statistics are state, not parameters.
#[derive(Default)]
struct ParamCounter {
    path: Vec<String>,
    count: usize,
    /// Count only parameters that receive gradients.
    trainable_only: bool,
}

impl ModuleVisitor for ParamCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.last().map(String::as_str);
        let counted = !matches!(name, Some("running_mean" | "running_var"))
            && (!self.trainable_only || param.val().is_require_grad());
        if counted {
            self.count += param.shape().num_elements();
        }
    }
}

/// Parameters of a module (on an autodiff device) that training updates now.
pub fn trainable_param_count<M: Module>(module: &M) -> usize {
    let mut counter = ParamCounter {
        trainable_only: true,
        ..ParamCounter::default()
    };
    module.visit(&mut counter);
    counter.count
}

/// Learnable parameters of a module (what PyTorch's `numel` over `parameters()` counts).
pub fn param_count<M: Module>(module: &M) -> usize {
    let mut counter = ParamCounter::default();
    module.visit(&mut counter);
    counter.count
}

fn freeze_if<M: Module>(module: M, frozen: bool) -> M {
    if frozen {
        module.freeze()
    } else {
        module.unfreeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_the_groups_in_two_parts_equals_running_them_at_once() {
        let device = Device::flex();
        let spec = NetworkSpec {
            kind: ModelKind::TinyTest,
            classes: 3,
            head: HeadConfig::default(),
            input_size: 32,
        };
        let network = Network::new(&spec, &device);
        let x = Tensor::<4>::random(
            [2, 3, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let whole: Vec<f32> = network
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let n = network.backbone_groups();
        for k in [0, 1, n - 1, n] {
            let part = network.forward_until(x.clone(), k);
            assert_eq!(matches!(part, Activation::Pooled(_)), k == n);
            let split: Vec<f32> = network
                .forward_after(part, k)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let diff = whole
                .iter()
                .zip(&split)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "boundary {k}: diff {diff}");
        }
    }

    #[test]
    fn lite0_groups_count_what_pytorch_counts() {
        // Sum of the parameter tensors (BatchNorm statistics excluded) in the Lite0 .pth file.
        let spec = NetworkSpec {
            kind: ModelKind::EfficientNetLite0,
            classes: 1000,
            head: HeadConfig::default(),
            input_size: 224,
        };
        let groups = Network::new(&spec, &Device::flex()).layer_groups(224);
        assert_eq!(groups.iter().map(|g| g.params).sum::<usize>(), 4_652_008);
        assert_eq!(groups.len(), 1 + 16 + 2);
        assert_eq!(groups[0].output_shape, [32, 112, 112]);
        assert_eq!(groups[17].output_shape, [1280, 7, 7]);
        assert_eq!(groups[18].output_shape, [1000]);
    }
}
