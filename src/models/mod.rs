//! Pre-trained networks with a replaceable head, described as a list of layer groups that can be
//! frozen one by one.
//!
//! - [`kind`]: the architectures Graft can build, with their input size and normalisation.
//! - [`head`]: the new classifier and its settings.
//! - [`network`]: backbone + head, run whole or split at a group boundary; the layer list.
//! - [`params`]: parameter counts and freezing.
//! - [`backbone`] over the architectures [`efficientnet_lite`], [`resnet`] and [`mobilenet`],
//!   built from the shared [`layers`].
//! - [`weights`]: loading PyTorch and safetensors files; [`key_remap`]: their parameter names,
//!   with a table per architecture.
//! - [`zoo`] (the catalogue of pre-trained weights) and [`download`] (fetching them).

pub mod backbone;
pub mod download;
pub mod efficientnet_lite;
pub mod head;
pub mod key_remap;
pub mod kind;
pub mod layers;
pub mod mobilenet;
pub mod network;
pub mod params;
pub mod resnet;
pub mod verify;
mod weights;
pub mod zoo;

pub use backbone::Backbone;
pub use efficientnet_lite::{LiteArch, LiteBackbone};
pub use head::{Head, HeadConfig};
pub use key_remap::export_remap;
pub use kind::{Family, ModelKind, Normalization};
pub use network::{Activation, LayerGroup, Network, NetworkSpec, describe_layers};
pub use params::{param_count, trainable_param_count};
pub use weights::{
    LoadReport, WeightsError, detect_kind, file_tensors, load_checkpoint, load_weights,
};
