//! Optimisers and learning-rate schedules from the config.

use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};

use crate::config::{LrSchedule, OptimizerConfig, OptimizerKind};

/// A fresh optimiser (new state) for a stage.
pub fn build(config: &OptimizerConfig) -> ModuleOptimizer {
    match config.kind {
        OptimizerKind::Adam => AdamConfig::new()
            .with_weight_decay(
                (config.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(config.weight_decay as f32)),
            )
            .init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(
                (config.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(config.weight_decay as f32)),
            )
            .with_momentum(Some(MomentumConfig {
                momentum: config.momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .init(),
    }
}

/// The learning rate at `step` of `total` steps in a stage whose base rate is `base`.
pub fn lr_at(schedule: LrSchedule, base: f64, step: usize, total: usize) -> f64 {
    match schedule {
        LrSchedule::Constant => base,
        LrSchedule::Cosine => {
            let t = step as f64 / total.max(1) as f64;
            // Never exactly zero: a zero step would waste the last batch.
            base * (0.5 * (1.0 + (std::f64::consts::PI * t).cos())).max(0.01)
        }
    }
}

/// Every parameter's rate for one step: its layer group's rate (`group_rates`, one per entry of
/// `groups`) times the schedule's `scale`. A thawed group whose rate is 0 does not move.
pub fn module_rates(group_rates: &[f64], groups: &[ParamGroup], scale: f64) -> ModuleLearningRate {
    let top = group_rates.iter().copied().fold(0.0, f64::max);
    if group_rates.iter().all(|r| *r == top) {
        return ModuleLearningRate::from(top * scale);
    }
    let mut scheduler = ModuleLrScheduler::new(top * scale);
    for (rate, group) in group_rates.iter().zip(groups) {
        if *rate != top {
            scheduler = scheduler.with_group(group.clone(), rate * scale);
        }
    }
    scheduler.step()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use burn::module::{Module, ModuleVisitor, Param, ParamId};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

    use super::*;
    use crate::config::LayerRates;
    use crate::models::{HeadConfig, ModelKind, Network, NetworkSpec};

    /// Every parameter's values, and its gradient's when `grads` has one.
    struct Values<'a> {
        grads: Option<&'a GradientsParams>,
        out: HashMap<ParamId, (Vec<f32>, Option<Vec<f32>>)>,
    }

    impl ModuleVisitor for Values<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let vec = |t: Tensor<D>| t.into_data().try_to_vec::<f32>().unwrap();
            let grad = self.grads.and_then(|g| g.get::<D>(param.id)).map(vec);
            self.out.insert(param.id, (vec(param.val()), grad));
        }
    }

    fn values(
        network: &Network,
        grads: Option<&GradientsParams>,
    ) -> HashMap<ParamId, (Vec<f32>, Option<Vec<f32>>)> {
        let mut v = Values {
            grads,
            out: HashMap::new(),
        };
        network.visit(&mut v);
        v.out
    }

    /// One plain SGD step at 1e-3 shared out by `rates`, the first `frozen` groups frozen: each
    /// group's measured Σ|Δw| / Σ|g| (`None` without a gradient).
    fn effective_rates(rates: &LayerRates, frozen: usize) -> Vec<Option<f64>> {
        let device = Device::flex().autodiff();
        let spec = NetworkSpec {
            kind: ModelKind::TinyTest,
            classes: 3,
            head: HeadConfig::default(),
            input_size: 32,
        };
        let network = Network::new(&spec, &device);
        let names: Vec<String> = network
            .layer_groups(32)
            .into_iter()
            .map(|g| g.name)
            .collect();
        let frozen: Vec<bool> = (0..names.len()).map(|i| i < frozen).collect();
        let network = network.with_frozen(&frozen);
        let group_ids = network.group_param_ids();
        let groups: Vec<ParamGroup> = group_ids
            .iter()
            .cloned()
            .map(ParamGroup::from_ids)
            .collect();
        let x = Tensor::<4>::random([6, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let y =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &device);
        let loss = crate::train::cross_entropy(network.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        let before = values(&network, Some(&grads));
        let config = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            momentum: 0.0,
            weight_decay: 0.0,
            ..OptimizerConfig::default()
        };
        let group_rates = rates.resolve(1e-3, &frozen, &names);
        let after = values(
            &build(&config).step(module_rates(&group_rates, &groups, 1.0), network, grads),
            None,
        );
        group_ids
            .iter()
            .map(|ids| {
                let (mut moved, mut pushed) = (0.0f64, 0.0f64);
                for id in ids {
                    let (w0, g) = &before[id];
                    let (w1, _) = &after[id];
                    for ((a, b), g) in w0.iter().zip(w1).zip(g.as_deref().unwrap_or(&[])) {
                        moved += f64::from((a - b).abs());
                        pushed += f64::from(g.abs());
                    }
                }
                (pushed > 0.0).then(|| moved / pushed)
            })
            .collect()
    }

    #[test]
    fn a_range_steps_the_lowest_thawed_group_at_low_and_the_head_at_high() {
        let measured = effective_rates(
            &LayerRates::Range {
                low: 1e-4,
                high: 1e-2,
            },
            1,
        );
        let head = measured.len() - 1;
        assert_eq!(measured[0], None, "a frozen group gets no gradient");
        let (first, last) = (measured[1].unwrap(), measured[head].unwrap());
        assert!(
            (first / 1e-4 - 1.0).abs() < 1e-3,
            "lowest thawed group: {first:e}"
        );
        assert!((last / 1e-2 - 1.0).abs() < 1e-3, "head: {last:e}");
        let middle = measured[2].unwrap();
        assert!(first < middle && middle < last, "{measured:?}");
    }

    #[test]
    fn a_group_with_factor_zero_does_not_move() {
        let factors = BTreeMap::from([("block0".to_string(), 0.0), ("head".to_string(), 2.0)]);
        let measured = effective_rates(&LayerRates::Factors { factors }, 0);
        let head = measured.len() - 1;
        assert_eq!(measured[1], Some(0.0), "block0 moved");
        assert!(
            (measured[0].unwrap() / 1e-3 - 1.0).abs() < 1e-3,
            "{measured:?}"
        );
        assert!(
            (measured[head].unwrap() / 2e-3 - 1.0).abs() < 1e-3,
            "{measured:?}"
        );
    }

    #[test]
    fn cosine_starts_at_base_and_decays() {
        assert_eq!(lr_at(LrSchedule::Cosine, 1.0, 0, 10), 1.0);
        assert!((lr_at(LrSchedule::Cosine, 1.0, 5, 10) - 0.5).abs() < 1e-9);
        assert!(lr_at(LrSchedule::Cosine, 1.0, 9, 10) < 0.1);
        assert_eq!(lr_at(LrSchedule::Constant, 0.3, 9, 10), 0.3);
    }
}
