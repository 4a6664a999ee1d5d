//! The learning-rate finder: a short exponential sweep of the rate on a throw-away copy of the
//! network (Smith's range test, as fastai runs it), the loss recorded at every step and a rate
//! suggested from the curve. With the backbone's first groups frozen their output is computed
//! once and the sweep runs on it, so it takes seconds.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::error::TrainError;
use super::events::TrainEvent;
use super::feature_cache::FeatureCache;
use super::loss::cross_entropy;
use super::prepare::prepare_data;
use super::pretrained::{build_network, pretrained_weights};
use super::step::{Batches, Input, forward, frozen_prefix, scalar, tensors};
use super::{Control, EventSink, optim};
use crate::config::TrainConfig;
use crate::data::Sample;
use crate::data::batches::View;
use crate::data::rng::Rng;
use crate::models::Network;
use crate::platform::device;
use crate::platform::fsutil::ensure_outside;
use crate::run::folder::CreateError;

/// How the rate is swept.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSettings {
    /// The first step's rate.
    pub start: f64,
    /// The last step's rate.
    pub end: f64,
    /// Steps, each at a rate `(end / start)^(1 / (steps − 1))` times the one before.
    pub steps: usize,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            start: 1e-6,
            end: 1.0,
            steps: 100,
        }
    }
}

/// One step of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrPoint {
    /// The step's rate.
    pub lr: f64,
    /// Its batch's training loss.
    pub loss: f64,
    /// The loss smoothed over the steps so far (exponential average, bias-corrected).
    pub smoothed: f64,
}

/// A finished sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSweep {
    /// Every step, rate rising.
    pub points: Vec<LrPoint>,
    /// The rate it suggests ([`SUGGESTION_RULE`]), when the curve has a minimum to go by.
    pub suggestion: Option<f64>,
    /// Whether it stopped before the last rate because the loss blew up.
    pub diverged: bool,
    /// Whether it ran on the frozen groups' cached output.
    pub cached: bool,
    /// Training images it drew batches from.
    pub images: usize,
}

/// How [`LrSweep::suggestion`] is chosen.
pub const SUGGESTION_RULE: &str = "fastai's valley rule: halfway along the longest stretch over which the smoothed loss keeps falling";

/// Weight of the past in the smoothed loss.
const SMOOTHING: f64 = 0.98;
/// The sweep stops once the smoothed loss is this many times its lowest.
const DIVERGED: f64 = 4.0;

/// The rate of step `i` of `settings`.
pub fn rate_at(settings: &SweepSettings, i: usize) -> f64 {
    let last = settings.steps.saturating_sub(1).max(1) as f64;
    settings.start * (settings.end / settings.start).powf(i as f64 / last)
}

/// Finds a rate for `config`'s data, model and freeze plan; sends [`TrainEvent::LrPoint`] per
/// step. Nothing is written and the network it sweeps is thrown away.
pub fn find_lr(
    config: &TrainConfig,
    settings: &SweepSettings,
    control: &Control,
    events: &EventSink,
) -> Result<LrSweep, TrainError> {
    config.validate()?;
    check_settings(settings)?;
    // The sweep's scratch file (only when the cache outgrows its memory) goes there.
    ensure_outside(&config.runs_root(), &config.data).map_err(CreateError::from)?;
    let compute = device::select(config.device);
    events.send(TrainEvent::Device {
        backend: compute.backend,
        description: compute.description.clone(),
    });
    let input_size = config.effective_input_size();
    let (dataset, _) = prepare_data(config, input_size, control, events)?;
    if dataset.train.is_empty() {
        return Err(TrainError::NoTrainingImages);
    }
    let device = compute.device.clone().autodiff();
    let weights = pretrained_weights(config, control, events)?;
    let network = build_network(config, dataset.classes.len(), &device, weights.as_deref())?;
    let names: Vec<String> = network
        .layer_groups(input_size)
        .into_iter()
        .map(|g| g.name)
        .collect();
    let frozen = config.freeze.resolve(&names);
    if frozen.iter().all(|f| *f) {
        return Err(TrainError::NothingToTrain);
    }
    let network = network.with_frozen(&frozen);
    let sweep = Sweep {
        config,
        settings,
        samples: &dataset.train,
        input_size,
        device,
        boundary: frozen_prefix(&frozen, network.backbone_groups()),
    };
    sweep.run(&network, control, &|p| events.send(TrainEvent::LrPoint(p)))
}

fn check_settings(settings: &SweepSettings) -> Result<(), TrainError> {
    let ok = settings.start > 0.0 && settings.end > settings.start && settings.steps >= 2;
    if ok && settings.end.is_finite() {
        return Ok(());
    }
    Err(crate::config::ConfigError {
        field: "lr-find",
        reason: format!(
            "the sweep needs 0 < start < end and at least 2 steps, got {:e} to {:e} in {}",
            settings.start, settings.end, settings.steps
        ),
    }
    .into())
}

/// One sweep over a data set's training images.
pub struct Sweep<'a> {
    /// Batch size, optimiser, seed, augmentation, feature-cache budget.
    pub config: &'a TrainConfig,
    /// The rates.
    pub settings: &'a SweepSettings,
    /// The images to draw batches from.
    pub samples: &'a [Sample],
    /// Input side.
    pub input_size: u32,
    /// The autodiff device.
    pub device: Device,
    /// Groups before this are frozen and computed once (0: none).
    pub boundary: usize,
}

impl Sweep<'_> {
    /// Sweeps a copy of `network` (left as it is), calling `on_point` after every step.
    pub fn run(
        &self,
        network: &Network,
        control: &Control,
        on_point: &dyn Fn(LrPoint),
    ) -> Result<LrSweep, TrainError> {
        let mut cache = self.cache(network)?;
        // A clone would share BatchNorm's running statistics with the caller's network;
        // `valid().train()` gives the copy its own, with the same frozen groups.
        let mut network = network.valid().train();
        let mut optimizer = optim::build(&self.config.optimizer);
        let mut order_rng = Rng::new(self.config.seed, 17);
        let mut steps = self.passes(cache.is_some(), &mut order_rng);
        let mut points: Vec<LrPoint> = Vec::with_capacity(self.settings.steps);
        let (mut average, mut lowest, mut diverged) = (0.0, f64::INFINITY, false);
        for i in 0..self.settings.steps {
            if control.is_cancelled() {
                break;
            }
            let input = match steps.next() {
                Some(input) => input?,
                None => {
                    steps = self.passes(cache.is_some(), &mut order_rng);
                    steps.next().ok_or(TrainError::NoTrainingImages)??
                }
            };
            let lr = rate_at(self.settings, i);
            let (logits, y) = forward(
                &network,
                cache.as_mut(),
                input,
                0,
                self.samples,
                &self.device,
            )?;
            let loss = cross_entropy(logits, y);
            let value = scalar(loss.clone())?;
            if !value.is_finite() {
                diverged = true;
                break;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            network = optimizer.step(lr, network, grads);
            average = SMOOTHING * average + (1.0 - SMOOTHING) * value;
            let smoothed = average / (1.0 - SMOOTHING.powi(i as i32 + 1));
            let point = LrPoint {
                lr,
                loss: value,
                smoothed,
            };
            points.push(point);
            on_point(point);
            lowest = lowest.min(smoothed);
            if smoothed > DIVERGED * lowest {
                diverged = true;
                break;
            }
        }
        Ok(LrSweep {
            suggestion: suggest(&points),
            points,
            diverged,
            cached: cache.is_some(),
            images: self.samples.len(),
        })
    }

    /// The frozen groups' output for every image (plain centre crops), when there are frozen
    /// groups to skip.
    fn cache(&self, network: &Network) -> Result<Option<FeatureCache>, TrainError> {
        if self.boundary == 0 {
            return Ok(None);
        }
        let memory = self.config.feature_cache.memory_mib << 20;
        let runs_root = self.config.runs_root();
        std::fs::create_dir_all(&runs_root).map_err(super::error::folder_error(&runs_root))?;
        let spill = runs_root.join(format!(".lr-find-{}.bin", std::process::id()));
        let mut cache = FeatureCache::new(self.boundary, self.samples.len(), 1, memory, spill);
        let order: Vec<usize> = (0..self.samples.len()).collect();
        for input in self.batches().inputs(order, View::Eval, false) {
            if let Input::Images(batch) = input? {
                let indices = batch.indices.clone();
                let (x, _) = tensors(batch, &self.device);
                cache.fill(network, x, 0, &indices)?;
            }
        }
        Ok(Some(cache))
    }

    fn batches(&self) -> Batches<'_> {
        Batches {
            samples: self.samples,
            batch_size: self.config.batch_size.min(self.samples.len()).max(1),
            side: self.input_size,
            kind: self.config.model,
        }
    }

    /// One shuffled pass: cached indices, or augmented images as training sees them.
    fn passes(
        &self,
        cached: bool,
        rng: &mut Rng,
    ) -> Box<dyn Iterator<Item = Result<Input, TrainError>>> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        rng.shuffle(&mut order);
        let view = View::Train {
            augment: self.config.augment.clone(),
            seed: rng.next_u64(),
        };
        self.batches().inputs(order, view, cached)
    }
}

/// [`SUGGESTION_RULE`] applied to `points`: the longest subsequence of steps whose smoothed
/// loss falls at every step (quadratic, on 100 points), and the step about half-way along it.
/// None from a sweep too short to have one.
fn suggest(points: &[LrPoint]) -> Option<f64> {
    if points.len() < 10 {
        return None;
    }
    let loss: Vec<f64> = points.iter().map(|p| p.smoothed).collect();
    let mut longest = vec![1usize; loss.len()];
    let (mut start, mut end) = (0, 0);
    for i in 1..loss.len() {
        for j in 0..i {
            if loss[i] < loss[j] && longest[i] < longest[j] + 1 {
                longest[i] = longest[j] + 1;
            }
        }
        if longest[end] < longest[i] {
            end = i;
            start = end + 1 - longest[end];
        }
    }
    let third = (end - start) as f64 / 3.0;
    let index = start + third as usize + (third / 2.0) as usize;
    Some(points[index.min(points.len() - 1)].lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_rise_geometrically_from_start_to_end() {
        let settings = SweepSettings {
            start: 1e-5,
            end: 1e-1,
            steps: 5,
        };
        let rates: Vec<f64> = (0..5).map(|i| rate_at(&settings, i)).collect();
        for (got, want) in rates.iter().zip([1e-5, 1e-4, 1e-3, 1e-2, 1e-1]) {
            assert!((got / want - 1.0).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn a_sweep_leaves_the_network_it_was_given_bit_identical() {
        use burn::store::ModuleSnapshot;
        let device = Device::flex().autodiff();
        let config = TrainConfig {
            model: crate::models::ModelKind::TinyTest,
            batch_size: 4,
            ..TrainConfig::default()
        };
        let network = Network::new(&config.network_spec(2), &device);
        let samples: Vec<Sample> = (0..8u8)
            .map(|i| {
                Sample::in_memory(
                    format!("{i}.png").into(),
                    usize::from(i % 2),
                    image::RgbImage::from_pixel(37, 37, image::Rgb([i * 30, 90, 200 - i * 20])),
                )
            })
            .collect();
        let bytes = |n: &Network| -> Vec<Vec<u8>> {
            n.collect(None, None, false)
                .into_iter()
                .map(|t| t.to_bytes().unwrap().to_vec())
                .collect()
        };
        let before = bytes(&network);
        let settings = SweepSettings {
            start: 1e-4,
            end: 1.0,
            steps: 12,
        };
        let sweep = Sweep {
            config: &config,
            settings: &settings,
            samples: &samples,
            input_size: 32,
            device,
            boundary: 0,
        };
        let result = sweep.run(&network, &Control::default(), &|_| {}).unwrap();
        assert!(!result.cached);
        assert!(!result.points.is_empty());
        assert_eq!(
            bytes(&network),
            before,
            "the sweep changed the caller's network"
        );
    }

    #[test]
    fn the_suggestion_lies_in_the_longest_fall_of_the_loss() {
        // Flat, then falling from step 20 to step 80, then blowing up.
        let points: Vec<LrPoint> = (0..100)
            .map(|i| {
                let smoothed = match i {
                    0..20 => 2.0 + 0.001 * f64::from(i % 2),
                    20..80 => 2.0 - 0.02 * f64::from(i - 20),
                    _ => 0.8 + 0.5 * f64::from(i - 80),
                };
                LrPoint {
                    lr: 10f64.powf(-6.0 + 6.0 * f64::from(i) / 99.0),
                    loss: smoothed,
                    smoothed,
                }
            })
            .collect();
        let lr = suggest(&points).unwrap();
        let index = points.iter().position(|p| p.lr == lr).unwrap();
        assert!((40..=60).contains(&index), "suggested step {index}");
        assert_eq!(suggest(&points[..5]), None);
    }
}
