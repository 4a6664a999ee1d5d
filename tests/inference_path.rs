//! Frozen layers run as inference on the CPU (BatchNorm folded into the convolution, the
//! activation applied as the convolution writes its output): for every architecture that path
//! gives the training path's eval-mode output.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Tensor};
use graft::config::HeadConfig;
use graft::models::{ModelKind, Network, NetworkSpec};

/// Draws every BatchNorm's weights and running statistics at random, so that folding them into
/// the convolution is far from the identity.
struct RandomBatchNorms {
    path: Vec<String>,
}

impl ModuleMapper for RandomBatchNorms {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let in_batch_norm = self.path.iter().any(|p| p.starts_with("bn"));
        let range = match self.path.last().map(String::as_str) {
            Some("gamma") => (0.5, 1.5),
            Some("beta" | "running_mean") => (-0.5, 0.5),
            Some("running_var") => (0.5, 2.0),
            _ => return param,
        };
        if !in_batch_norm {
            return param;
        }
        param.map(|t| {
            let grad = t.is_require_grad();
            Tensor::random(
                t.shape(),
                Distribution::Uniform(range.0, range.1),
                &t.device(),
            )
            .set_require_grad(grad)
        })
    }
}

/// A seeded network of `kind`, every group frozen, with random BatchNorm statistics.
fn frozen_network(kind: ModelKind, device: &Device, side: usize) -> Network {
    let spec = NetworkSpec {
        kind,
        classes: 4,
        head: HeadConfig::default(),
        input_size: side as u32,
    };
    let network = Network::new_seeded(&spec, device, 7).map(&mut RandomBatchNorms { path: vec![] });
    let groups = network.backbone_groups() + 1;
    network.with_frozen(&vec![true; groups])
}

/// The largest difference between the two paths' outputs of each layer group, relative to the
/// largest output value there.
fn relative_differences(network: &Network, x: Tensor<4>) -> Vec<f32> {
    // Nothing requires a gradient: the frozen network runs as inference.
    let mut inference = x.clone();
    // An input that requires a gradient keeps every layer on the training path.
    let mut training = x.require_grad();
    (0..network.backbone_groups())
        .map(|group| {
            let run = |x: Tensor<4>| network.backbone.forward_groups(x, group..group + 1);
            inference = run(inference.clone());
            training = run(training.clone());
            assert!(
                !inference.is_tracked(),
                "group {group}: inference tracks a gradient"
            );
            assert!(
                training.is_tracked(),
                "group {group}: training lost its gradient"
            );
            let worst: f32 = (inference.clone() - training.clone())
                .abs()
                .max()
                .into_scalar();
            let scale: f32 = training.clone().abs().max().into_scalar();
            worst / scale
        })
        .collect()
}

#[test]
fn the_inference_path_matches_the_training_paths_eval_output_for_every_architecture() {
    let device = Device::flex().autodiff();
    let side = 64;
    let mut failures = Vec::new();
    for kind in ModelKind::ALL {
        let network = frozen_network(kind, &device, side);
        // Two images (one per thread here), then one (shared out among the threads, as in
        // predict) on the weights the first call prepared and kept.
        let mut differences = Vec::new();
        for batch in [2, 1] {
            let x = Tensor::<4>::random(
                [batch, 3, side, side],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            differences.extend(relative_differences(&network, x));
        }
        let worst = differences.iter().copied().fold(0f32, f32::max);
        eprintln!("{}: largest relative difference {worst:e}", kind.name());
        if worst.is_nan() || worst > 1e-5 {
            failures.push(format!(
                "{} by {worst} at some group: {differences:?}",
                kind.name()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the paths differ: {}",
        failures.join("; ")
    );
}
