//! The network that trains: a pre-trained backbone and a new head, run whole or split at a
//! layer-group boundary, and described as the layer list.

use burn::module::{Module, ParamId};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::backbone::Backbone;
use super::head::{Head, HeadConfig};
use super::kind::{Family, ModelKind};
use super::params::{DrawParams, TrainableIds, freeze_if, param_count};

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

/// The layer groups of `kind` with a head of `classes` outputs, at its own input size (built
/// with random weights: the shapes are what matter).
pub fn describe_layers(kind: ModelKind, classes: usize) -> Vec<LayerGroup> {
    let spec = NetworkSpec {
        kind,
        classes,
        head: HeadConfig::default(),
        input_size: kind.input_size(),
    };
    Network::new(&spec, &Device::flex()).layer_groups(spec.input_size)
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

    pub(super) fn build(spec: &NetworkSpec, device: &Device, seed: Option<u64>) -> Self {
        // Each backend has its own random generator: a seeded network is drawn on the CPU and
        // moved, so that the same seed gives the same weights on every device.
        let cpu = Device::flex();
        if seed.is_some() && device.clone().without_autodiff() != cpu {
            let drawn = Self::build(spec, &cpu, seed);
            let network = Self::from_family(&spec.kind.family(), spec.classes, &spec.head, device);
            return network.load_record(drawn.into_record());
        }
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

    /// The learnable parameters of each layer group, in [`Network::layer_groups`] order: the
    /// same partition freezing uses. The network must be on an autodiff device.
    pub fn group_param_ids(&self) -> Vec<Vec<ParamId>> {
        let groups = self.backbone.groups() + 1;
        (0..groups)
            .map(|group| {
                let all_but_this: Vec<bool> = (0..groups).map(|i| i != group).collect();
                let mut ids = TrainableIds::default();
                self.clone().with_frozen(&all_but_this).visit(&mut ids);
                ids.0
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

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
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
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
