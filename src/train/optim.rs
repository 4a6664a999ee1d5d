//! Optimisers and learning-rate schedules from the config.

use burn::optim::decay::WeightDecayConfig;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_starts_at_base_and_decays() {
        assert_eq!(lr_at(LrSchedule::Cosine, 1.0, 0, 10), 1.0);
        assert!((lr_at(LrSchedule::Cosine, 1.0, 5, 10) - 0.5).abs() < 1e-9);
        assert!(lr_at(LrSchedule::Cosine, 1.0, 9, 10) < 0.1);
        assert_eq!(lr_at(LrSchedule::Constant, 0.3, 9, 10), 0.3);
    }
}
