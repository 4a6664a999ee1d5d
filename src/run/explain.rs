//! Where the model looks: class activation maps at the last convolutional stage.
//!
//! A head that is global pooling and one linear layer has an exact map (CAM, Zhou et al. 2016):
//! each logit is the mean over positions of `Σ_k w_kc · A_k(x, y)` plus the bias, so that sum
//! *is* the class's evidence at each position. A head with a hidden layer has none; there the
//! map is Grad-CAM (Selvaraju et al. 2017): the feature maps weighted by the mean gradient of
//! the class score with respect to them, through burn's autodiff, and rectified.

use burn::tensor::{Tensor, TensorData};
use image::RgbImage;

use super::predict::{PredictError, Predictor, softmax};

/// How a map was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapMethod {
    /// The exact class activation map of a pooling + linear head, scaled to 0..1 (min–max).
    Cam,
    /// Gradient-weighted class activation map, rectified and scaled to 0..1 (by the maximum).
    GradCam,
}

impl MapMethod {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Cam => "class activation map (exact for this head)",
            Self::GradCam => "Grad-CAM (the head has a hidden layer)",
        }
    }
}

/// One class's map over the last convolutional stage's grid.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMap {
    /// The class index.
    pub class: usize,
    /// The class's probability for the image.
    pub probability: f32,
    /// Rows of the grid, each value in `[0, 1]` (1: where the evidence for the class is
    /// strongest).
    pub grid: Vec<Vec<f32>>,
}

/// An image as the model saw it, what it predicted and where it looked.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The centre crop the network saw.
    pub crop: RgbImage,
    /// Probabilities of every class.
    pub probabilities: Vec<f32>,
    /// The most likely class.
    pub predicted: usize,
    /// How the maps were computed.
    pub method: MapMethod,
    /// One map per requested class, in the order asked.
    pub maps: Vec<ClassMap>,
}

/// The last stage's feature maps of one crop: `[channels][height × width]`.
struct FeatureMaps {
    values: Vec<f32>,
    channels: usize,
    height: usize,
    width: usize,
}

impl FeatureMaps {
    fn positions(&self) -> usize {
        self.height * self.width
    }

    fn tensor(&self, device: &burn::tensor::Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(
                self.values.clone(),
                [1, self.channels, self.height, self.width],
            ),
            device,
        )
    }

    /// `Σ_k weight[k] · A_k` at every position.
    fn weighted_sum(&self, weight: impl Fn(usize) -> f32) -> Vec<f32> {
        let hw = self.positions();
        let mut out = vec![0f32; hw];
        for k in 0..self.channels {
            let w = weight(k);
            let plane = &self.values[k * hw..(k + 1) * hw];
            for (o, a) in out.iter_mut().zip(plane) {
                *o += w * a;
            }
        }
        out
    }

    fn grid(&self, flat: Vec<f32>) -> Vec<Vec<f32>> {
        flat.chunks(self.width).map(<[f32]>::to_vec).collect()
    }
}

fn device_error(e: impl std::fmt::Display) -> PredictError {
    PredictError::Device(e.to_string())
}

/// Scales to `[0, 1]` by minimum and maximum; all zeros when the map is flat.
fn min_max(values: Vec<f32>) -> Vec<f32> {
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = hi - lo;
    if !range.is_finite() || range <= f32::EPSILON * hi.abs().max(1.0) {
        return vec![0.0; values.len()];
    }
    values.into_iter().map(|v| (v - lo) / range).collect()
}

/// Rectifies, then scales to `[0, 1]` by the maximum; all zeros when nothing is positive.
fn rectified(values: Vec<f32>) -> Vec<f32> {
    let hi = values.iter().copied().fold(0f32, f32::max);
    if hi <= 0.0 || !hi.is_finite() {
        return vec![0.0; values.len()];
    }
    values.into_iter().map(|v| v.max(0.0) / hi).collect()
}

impl Predictor {
    /// Explains one image decoded at any size: its crop, probabilities and a map for each of
    /// `classes` (none given: the predicted class).
    pub fn explain(
        &self,
        image: &RgbImage,
        classes: &[usize],
    ) -> Result<Explanation, PredictError> {
        self.explain_crop(self.crop(image), classes)
    }

    /// [`Predictor::explain`] for a crop already at the input size.
    pub fn explain_crop(
        &self,
        crop: RgbImage,
        classes: &[usize],
    ) -> Result<Explanation, PredictError> {
        let features = self.feature_maps(&crop)?;
        let logits = self.head_logits(&features)?;
        let probabilities = softmax(&logits);
        let predicted = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let wanted = if classes.is_empty() {
            vec![predicted]
        } else {
            classes.to_vec()
        };
        let method = if self.network().head.hidden.is_none() {
            MapMethod::Cam
        } else {
            MapMethod::GradCam
        };
        let mut maps = Vec::with_capacity(wanted.len());
        for class in wanted {
            let Some(&probability) = probabilities.get(class) else {
                return Err(PredictError::Device(format!(
                    "class {class} is not one of the model's {} classes",
                    probabilities.len()
                )));
            };
            let flat = match method {
                MapMethod::Cam => self.cam(&features, class)?,
                MapMethod::GradCam => self.grad_cam(&features, class)?,
            };
            maps.push(ClassMap {
                class,
                probability,
                grid: features.grid(flat),
            });
        }
        Ok(Explanation {
            crop,
            probabilities,
            predicted,
            method,
            maps,
        })
    }

    fn feature_maps(&self, crop: &RgbImage) -> Result<FeatureMaps, PredictError> {
        let x = self.input_of_crops(std::slice::from_ref(crop));
        let backbone = &self.network().backbone;
        let maps = backbone.forward_groups(x, 0..backbone.groups());
        let [_, channels, height, width] = maps.dims();
        let values = maps.into_data().try_to_vec::<f32>().map_err(device_error)?;
        Ok(FeatureMaps {
            values,
            channels,
            height,
            width,
        })
    }

    /// The head on the pooled feature maps.
    fn head_logits(&self, features: &FeatureMaps) -> Result<Vec<f32>, PredictError> {
        let pooled = features
            .tensor(self.device())
            .mean_dims(&[2, 3])
            .flatten::<2>(1, 3);
        self.network()
            .head
            .forward(pooled)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(device_error)
    }

    /// The exact map of a pooling + linear head: `Σ_k (w_kc − mean_c' w_kc') · A_k`, min–max
    /// scaled.
    fn cam(&self, features: &FeatureMaps, class: usize) -> Result<Vec<f32>, PredictError> {
        let fc = &self.network().head.fc.weight;
        let [inputs, outputs] = fc.dims();
        let weight = fc
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(device_error)?;
        if inputs != features.channels {
            return Err(PredictError::Device(format!(
                "the head takes {inputs} features, the last stage gives {}",
                features.channels
            )));
        }
        // burn's Linear weight is [inputs, outputs]. The part of the weights every class shares
        // moves all logits alike and so no probability: it is taken out, leaving the evidence
        // for the class against the average class.
        let contrast = |k: usize| {
            let row = &weight[k * outputs..(k + 1) * outputs];
            row[class] - row.iter().sum::<f32>() / outputs as f32
        };
        Ok(min_max(features.weighted_sum(contrast)))
    }

    /// Grad-CAM: `ReLU(Σ_k α_k · A_k)` with `α_k` the mean over positions of the gradient of
    /// the class's logit with respect to `A_k`.
    fn grad_cam(&self, features: &FeatureMaps, class: usize) -> Result<Vec<f32>, PredictError> {
        let device = self.device().clone().autodiff();
        let maps = features.tensor(&device).require_grad();
        let pooled = maps.clone().mean_dims(&[2, 3]).flatten::<2>(1, 3);
        let logits = self.network().head.forward(pooled);
        let score = logits.slice([0..1, class..class + 1]).sum();
        let grads = score.backward();
        let gradient = maps
            .grad(&grads)
            .ok_or_else(|| PredictError::Device("no gradient reached the feature maps".into()))?;
        let g = gradient
            .into_data()
            .try_to_vec::<f32>()
            .map_err(device_error)?;
        let hw = features.positions();
        let alpha: Vec<f32> = g
            .chunks(hw)
            .map(|plane| plane.iter().sum::<f32>() / hw as f32)
            .collect();
        Ok(rectified(features.weighted_sum(|k| alpha[k])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    use crate::models::{HeadConfig, ModelKind, Network, NetworkSpec};

    fn predictor(hidden: Option<usize>) -> Predictor {
        let spec = NetworkSpec {
            kind: ModelKind::TinyTest,
            classes: 3,
            head: HeadConfig {
                dropout: 0.0,
                hidden,
            },
            input_size: 64,
        };
        let device = Device::flex();
        let network = Network::new_seeded(&spec, &device, 7);
        let classes = ["a", "b", "c"].map(String::from).to_vec();
        Predictor::from_network(network, classes, ModelKind::TinyTest, 64, &device)
    }

    fn picture() -> RgbImage {
        RgbImage::from_fn(80, 70, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 3) as u8, ((x * y) % 251) as u8])
        })
    }

    #[test]
    fn the_maps_probabilities_agree_with_predict() {
        let p = predictor(None);
        let image = picture();
        let explained = p.explain(&image, &[]).unwrap();
        let direct = softmax(&p.logits(std::slice::from_ref(&image)).unwrap()[0]);
        for (a, b) in explained.probabilities.iter().zip(&direct) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(explained.method, MapMethod::Cam);
        let map = &explained.maps[0];
        assert_eq!(map.class, explained.predicted);
        assert!(map.grid.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
        let max = map.grid.iter().flatten().copied().fold(0f32, f32::max);
        assert!((max - 1.0).abs() < 1e-6, "{max}");
    }

    #[test]
    fn grad_cam_of_a_linear_head_is_the_rectified_cam() {
        // With no hidden layer the class score's gradient w.r.t. A_k is w_kc / (h·w) at every
        // position, so Grad-CAM is ReLU(CAM) up to scale: a check of the autodiff path against
        // the exact formula.
        let p = predictor(None);
        let features = p.feature_maps(&p.crop(&picture())).unwrap();
        for class in 0..3 {
            let fc = p
                .network()
                .head
                .fc
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let raw = features.weighted_sum(|k| fc[k * 3 + class]);
            let expected = rectified(raw);
            let got = p.grad_cam(&features, class).unwrap();
            for (e, g) in expected.iter().zip(&got) {
                assert!((e - g).abs() < 1e-4, "class {class}: {e} vs {g}");
            }
        }
    }

    #[test]
    fn a_hidden_layer_switches_to_grad_cam() {
        let p = predictor(Some(16));
        let explained = p.explain(&picture(), &[0, 2]).unwrap();
        assert_eq!(explained.method, MapMethod::GradCam);
        assert_eq!(
            explained.maps.iter().map(|m| m.class).collect::<Vec<_>>(),
            [0, 2]
        );
        assert!(p.explain(&picture(), &[5]).is_err());
    }
}
