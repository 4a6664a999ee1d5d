//! Pre-trained networks with a replaceable head, described as a list of layer groups that can be
//! frozen one by one.

pub mod efficientnet_lite;
mod weights;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::HeadConfig;
pub use efficientnet_lite::{LiteArch, LiteBackbone};
pub use weights::{LoadReport, WeightsError};

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
    /// A tiny Lite-shaped network with no pre-trained weights, for smoke tests of a backend.
    #[serde(rename = "tiny-test")]
    TinyTest,
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
    pub const ALL: [ModelKind; 4] = [
        Self::EfficientNetLite0,
        Self::EfficientNetLite1,
        Self::EfficientNetLite2,
        Self::TinyTest,
    ];

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::EfficientNetLite0 => "efficientnet-lite0",
            Self::EfficientNetLite1 => "efficientnet-lite1",
            Self::EfficientNetLite2 => "efficientnet-lite2",
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
            Self::EfficientNetLite0 => 224,
            Self::EfficientNetLite1 => 240,
            Self::EfficientNetLite2 => 260,
            Self::TinyTest => 32,
        }
    }

    /// The architecture's shape.
    pub fn arch(self) -> LiteArch {
        match self {
            Self::EfficientNetLite0 => LiteArch::scaled(1.0, 1.0),
            Self::EfficientNetLite1 => LiteArch::scaled(1.0, 1.1),
            Self::EfficientNetLite2 => LiteArch::scaled(1.1, 1.2),
            Self::TinyTest => LiteArch::tiny(),
        }
    }

    /// ImageNet-1k top-1 accuracy of the pre-trained weights (Google's figures).
    pub fn imagenet_top1(self) -> Option<f32> {
        match self {
            Self::EfficientNetLite0 => Some(75.1),
            Self::EfficientNetLite1 => Some(76.7),
            Self::EfficientNetLite2 => Some(77.6),
            Self::TinyTest => None,
        }
    }

    /// The input normalisation the weights were trained with.
    pub fn normalization(self) -> Normalization {
        // Google's Lite checkpoints: (x - 127) / 128.
        Normalization {
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    }

    /// The file name of the pre-trained ImageNet weights, if the kind has any.
    pub fn weights_file_name(self) -> Option<&'static str> {
        match self {
            Self::EfficientNetLite0 => Some("efficientnet-lite0-57934424.pth"),
            Self::EfficientNetLite1 => Some("efficientnet-lite1-77cc7160.pth"),
            Self::EfficientNetLite2 => Some("efficientnet-lite2-9656183e.pth"),
            Self::TinyTest => None,
        }
    }

    /// Where the pre-trained weights are found: the bundled assets, then the user's cache.
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
    /// Optional hidden dense layer (ReLU).
    pub hidden: Option<Linear>,
    /// The output layer: one logit per class.
    pub fc: Linear,
}

impl Head {
    /// A freshly initialised head.
    pub fn new(features: usize, classes: usize, config: &HeadConfig, device: &Device) -> Self {
        let hidden = config
            .hidden
            .map(|width| LinearConfig::new(features, width).init(device));
        let fc_in = config.hidden.unwrap_or(features);
        Self {
            dropout: DropoutConfig::new(config.dropout).init(),
            hidden,
            fc: LinearConfig::new(fc_in, classes).init(device),
        }
    }

    /// Pooled features `[batch, features]` → logits `[batch, classes]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let mut x = self.dropout.forward(features);
        if let Some(hidden) = &self.hidden {
            x = self.dropout.forward(relu(hidden.forward(x)));
        }
        self.fc.forward(x)
    }
}

/// A backbone and a head: the network that trains.
#[derive(Module, Debug)]
pub struct Network {
    /// Pre-trained feature extractor.
    pub backbone: LiteBackbone,
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

    fn build(spec: &NetworkSpec, device: &Device, seed: Option<u64>) -> Self {
        // The device's random generator is shared by the whole process and burn draws a
        // parameter on first use: seeding and drawing every parameter under one lock keeps a
        // seeded network the same whatever else builds networks meanwhile.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seed) = seed {
            device.seed(seed);
        }
        let arch = spec.kind.arch();
        let network = Self {
            backbone: LiteBackbone::new(&arch, device),
            head: Head::new(arch.head, spec.classes, &spec.head, device),
        };
        network.visit(&mut DrawParams);
        network
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
        let report = weights::load_lite(&mut network, path, keep_classifier)?;
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
        let conv_out = |side: usize, stride: usize| side.div_ceil(stride);
        let mut side = conv_out(input_size as usize, 2);
        let stem_channels = self.backbone.stem.conv.weight.dims()[0];
        let mut groups = vec![LayerGroup {
            name: "stem".into(),
            description: "3×3 conv, stride 2".into(),
            params: param_count(&self.backbone.stem),
            output_shape: vec![stem_channels, side, side],
        }];
        for (i, block) in self.backbone.blocks.iter().enumerate() {
            let [out, _, _, _] = block.project_conv.weight.dims();
            let [_, _, k, _] = block.depthwise_conv.weight.dims();
            let stride = block.depthwise_conv.stride[0];
            side = conv_out(side, stride);
            groups.push(LayerGroup {
                name: format!("block{i}"),
                description: format!("MBConv {k}×{k}, stride {stride}"),
                params: param_count(block),
                output_shape: vec![out, side, side],
            });
        }
        let head_channels = self.backbone.head_conv.conv.weight.dims()[0];
        groups.push(LayerGroup {
            name: "head_conv".into(),
            description: "1×1 conv to features".into(),
            params: param_count(&self.backbone.head_conv),
            output_shape: vec![head_channels, side, side],
        });
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

    /// Names of the layer groups, in order.
    pub fn group_names(&self) -> Vec<String> {
        // Names do not depend on the input size.
        self.layer_groups(224).into_iter().map(|g| g.name).collect()
    }

    /// Freezes (`true`) or unfreezes each group, in [`Network::layer_groups`] order.
    ///
    /// A frozen group keeps its weights and BatchNorm statistics; a thawed one trains, with its
    /// BatchNorm on batch statistics.
    pub fn with_frozen(self, frozen: &[bool]) -> Self {
        let f = |i: usize| frozen.get(i).copied().unwrap_or(false);
        let Network { backbone, head } = self;
        let LiteBackbone {
            stem,
            blocks,
            head_conv,
        } = backbone;
        let n = blocks.len();
        let stem = freeze_if(stem, f(0));
        let blocks = blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| freeze_if(b, f(i + 1)))
            .collect();
        let head_conv = freeze_if(head_conv, f(n + 1));
        let head = freeze_if(head, f(n + 2));
        Network {
            backbone: LiteBackbone {
                stem,
                blocks,
                head_conv,
            },
            head,
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
        if !matches!(name, Some("running_mean" | "running_var")) {
            self.count += param.shape().num_elements();
        }
    }
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
