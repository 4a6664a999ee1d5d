//! Classifying images with a trained run, or with a model's own ImageNet classifier.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::folder::{RunError, RunSettings, files, read_run};
use crate::data::DecodeError;
use crate::data::decode::decode_file_at;
use crate::data::preprocess::{eval_view, push_chw, resize_shorter_side, resize_side};
use crate::models::key_remap::VARIANT_LEVEL;
use crate::models::{
    HeadConfig, ModelKind, Network, NetworkSpec, Normalization, WeightsError, load_checkpoint,
};

/// Why a predictor could not be built or an image not classified.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The run folder is incomplete or unreadable.
    #[error("cannot use run {}: {reason}", dir.display())]
    Run {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: RunError,
    },
    /// The weights could not be loaded.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// No weights for the model.
    #[error("no pre-trained weights for {0} were found")]
    NoWeights(&'static str),
    /// The class names could not be read.
    #[error("cannot read the class names: {0}")]
    Classes(#[source] std::io::Error),
    /// An image could not be decoded.
    #[error("{path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: DecodeError,
    },
    /// The device failed.
    #[error("the compute device failed: {0}")]
    Device(String),
}

impl PredictError {
    /// Wraps a run-folder error with the folder it is about.
    pub fn from_run(dir: &Path) -> impl Fn(RunError) -> Self + '_ {
        move |reason| Self::Run {
            dir: dir.to_path_buf(),
            reason,
        }
    }
}

/// A network in inference mode with its class names and preprocessing.
pub struct Predictor {
    network: Network,
    classes: Vec<String>,
    kind: ModelKind,
    input_size: u32,
    device: Device,
}

impl Predictor {
    /// The model's own ImageNet classifier, before any fine-tuning.
    pub fn imagenet(
        kind: ModelKind,
        weights: Option<&Path>,
        device: &Device,
    ) -> Result<Self, PredictError> {
        let classes = crate::platform::assets::imagenet_classes().map_err(PredictError::Classes)?;
        let path = match weights {
            Some(p) => p.to_path_buf(),
            None => kind
                .find_weights()
                .ok_or(PredictError::NoWeights(kind.name()))?,
        };
        let spec = NetworkSpec {
            kind,
            classes: classes.len(),
            head: HeadConfig {
                dropout: 0.0,
                hidden: None,
            },
            input_size: kind.input_size(),
        };
        let (network, _) = Network::pretrained(&spec, &path, true, None, device)?;
        Ok(Self {
            network: network.valid(),
            classes,
            kind,
            input_size: kind.input_size(),
            device: device.clone(),
        })
    }

    /// The best checkpoint of a run folder.
    pub fn from_run(dir: &Path, device: &Device) -> Result<Self, PredictError> {
        TrainedRun::open(dir, device).map(|run| run.predictor)
    }

    /// A predictor over an already-built network.
    pub fn from_network(
        network: Network,
        classes: Vec<String>,
        kind: ModelKind,
        input_size: u32,
        device: &Device,
    ) -> Self {
        Self {
            network: network.valid(),
            classes,
            kind,
            input_size,
            device: device.clone(),
        }
    }

    /// The network, in inference mode.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Class names, in output order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The input side.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// The input normalisation.
    pub fn normalization(&self) -> Normalization {
        self.kind.normalization()
    }

    /// The centre crop the network sees of an image decoded at any size.
    pub fn crop(&self, image: &image::RgbImage) -> image::RgbImage {
        let base = resize_shorter_side(image, resize_side(self.input_size));
        eval_view(&base, self.input_size)
    }

    /// Logits for images already decoded to RGB at any size.
    pub fn logits(&self, images: &[image::RgbImage]) -> Result<Vec<Vec<f32>>, PredictError> {
        let crops: Vec<image::RgbImage> = images.iter().map(|i| self.crop(i)).collect();
        self.logits_of_crops(&crops)
    }

    /// Logits for crops already at the input size.
    pub fn logits_of_crops(
        &self,
        crops: &[image::RgbImage],
    ) -> Result<Vec<Vec<f32>>, PredictError> {
        self.logits_of_input(self.input_of_crops(crops))
    }

    /// Crops already at the input size as the network's normalised NCHW input.
    pub(super) fn input_of_crops(&self, crops: &[image::RgbImage]) -> Tensor<4> {
        let mut pixels = Vec::new();
        for crop in crops {
            push_chw(crop, &self.kind.normalization(), &mut pixels);
        }
        self.input(pixels, crops.len())
    }

    fn input(&self, pixels: Vec<f32>, n: usize) -> Tensor<4> {
        let s = self.input_size as usize;
        Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, s, s]), &self.device)
    }

    /// The device the network is on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits for already-normalised NCHW input.
    pub fn logits_from_pixels(
        &self,
        pixels: Vec<f32>,
        n: usize,
    ) -> Result<Vec<Vec<f32>>, PredictError> {
        self.logits_of_input(self.input(pixels, n))
    }

    fn logits_of_input(&self, x: Tensor<4>) -> Result<Vec<Vec<f32>>, PredictError> {
        let data = self
            .network
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| PredictError::Device(e.to_string()))?;
        Ok(data
            .chunks(self.classes.len())
            .map(|c| c.to_vec())
            .collect())
    }

    /// The `k` most likely classes for one image file, with probabilities.
    pub fn top_k_file(&self, path: &Path, k: usize) -> Result<Vec<(String, f32)>, PredictError> {
        let side = resize_side(self.input_size);
        let image = decode_file_at(path, Some(side)).map_err(|reason| PredictError::Image {
            path: path.to_path_buf(),
            reason,
        })?;
        let logits = self.logits(std::slice::from_ref(&image))?;
        Ok(top_k(&logits[0], &self.classes, k))
    }
}

/// A run folder opened for use: its settings and its best checkpoint, ready to predict.
pub struct TrainedRun {
    /// The folder.
    pub dir: PathBuf,
    /// The settings and classes it trained with.
    pub settings: RunSettings,
    /// Its best checkpoint in inference mode.
    pub predictor: Predictor,
}

impl TrainedRun {
    /// Reads the run in `dir` and loads its checkpoint onto `device`.
    pub fn open(dir: &Path, device: &Device) -> Result<Self, PredictError> {
        let run_error = |reason: RunError| PredictError::Run {
            dir: dir.to_path_buf(),
            reason,
        };
        let settings = read_run(dir).map_err(run_error)?;
        let config = &settings.config;
        let spec = config.network_spec(settings.classes.len());
        let mut network = Network::new(&spec, device);
        let checkpoint = dir.join(files::CHECKPOINT);
        if !checkpoint.is_file() {
            return Err(run_error(RunError::NoCheckpoint { path: checkpoint }));
        }
        load_checkpoint(&mut network, &checkpoint, VARIANT_LEVEL)?;
        let predictor = Predictor::from_network(
            network,
            settings.classes.clone(),
            config.model,
            spec.input_size,
            device,
        );
        Ok(Self {
            dir: dir.to_path_buf(),
            settings,
            predictor,
        })
    }
}

/// Probabilities from logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Softmax over `logits`, then the `k` largest with their class names.
pub fn top_k(logits: &[f32], classes: &[String], k: usize) -> Vec<(String, f32)> {
    let mut ranked: Vec<(usize, f32)> = softmax(logits).into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .take(k)
        .map(|(i, p)| {
            (
                classes.get(i).cloned().unwrap_or_else(|| format!("#{i}")),
                p,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_ranks_by_probability_and_sums_to_one() {
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let top = top_k(&[1.0, 3.0, 2.0], &classes, 3);
        assert_eq!(top[0].0, "b");
        assert_eq!(top[1].0, "c");
        let total: f32 = top.iter().map(|t| t.1).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
