//! The new classifier put on top of the pre-trained features: its settings and its module.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::Act;

/// The classifier put on top of the pre-trained features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadConfig {
    /// Dropout before the classifier (and before the hidden layer, when there is one).
    pub dropout: f64,
    /// Width of an optional hidden dense layer (ReLU) between the features and the classifier.
    pub hidden: Option<usize>,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            dropout: 0.2,
            hidden: None,
        }
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
