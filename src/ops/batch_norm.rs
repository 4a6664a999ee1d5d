//! BatchNorm in training mode (batch statistics), fused on the CPU: one pass for the statistics,
//! one to normalise, two for the gradients.
//!
//! burn's generic version transposes the activation to put channels first, then runs a chain of
//! element-wise operations each way: about a third of a training step of EfficientNet-Lite0 on the
//! CPU went there. [`batch_norm_forward`] matches `BatchNorm::forward` in training mode, running
//! statistics included; on running statistics (frozen layers, validation, prediction) it is the
//! one normalising pass.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Device, Shape, Tensor};
use rayon::prelude::*;

use super::flex_values::{flex_tensor, slice};

/// The operation as a backend extension, implemented for the CPU backend (and autodiff over it).
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// Per-channel mean and biased variance of `x` `[N, C, H, W]`, as a `[2, C]` tensor. Not
    /// differentiated.
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(x − mean) / sqrt(var + epsilon) · gamma + beta` with `stats` `[2, C]` (means, then
    /// variances): from [`Self::batch_stats`] of this same `x`, which its gradients (in `x`,
    /// `gamma` and `beta`) assume, or running statistics where nothing is differentiated.
    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// The gradients of [`BatchNormBackend::batch_norm_apply`], where the backend has a kernel.
pub trait BatchNormGrad: Backend {
    /// Returns the gradients of `x`, `gamma` and `beta`.
    fn batch_norm_grad(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
}

/// `[N, C, plane]` of a 4-D shape.
fn dims(shape: &Shape) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2] * shape[3])
}

/// The mean and `1 / sqrt(var + epsilon)` of channel `c`.
fn channel_stats(stats: &[f32], channels: usize, c: usize, epsilon: f64) -> (f32, f32) {
    let mean = stats[c];
    let var = stats[channels + c];
    (mean, (1.0 / (f64::from(var) + epsilon).sqrt()) as f32)
}

/// Calls `f(c, [plane of image n for n in 0..N])` for each channel `c`, in parallel.
fn for_channels<T: Send>(
    values: &[f32],
    (batch, channels, plane): (usize, usize, usize),
    f: impl Fn(usize, &mut dyn Iterator<Item = &[f32]>) -> T + Sync,
) -> Vec<T> {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut planes = (0..batch).map(|n| &values[(n * channels + c) * plane..][..plane]);
            f(c, &mut planes)
        })
        .collect()
}

impl BatchNormBackend for Flex {
    fn batch_stats(x: FlexTensor) -> FlexTensor {
        let (n, c, plane) = dims(&x.shape());
        let x = x.to_contiguous();
        let count = (n * plane) as f64;
        // Sums in f64: one pass, and no cancellation worth speaking of at these sizes.
        let moments = for_channels(slice(&x), (n, c, plane), |_, planes| {
            let (mut sum, mut squares) = (0.0f64, 0.0f64);
            for p in planes {
                let (s, q) = p
                    .iter()
                    .fold((0.0f32, 0.0f32), |(s, q), &v| (s + v, q + v * v));
                sum += f64::from(s);
                squares += f64::from(q);
            }
            let mean = sum / count;
            (mean as f32, (squares / count - mean * mean).max(0.0) as f32)
        });
        let (means, vars): (Vec<f32>, Vec<f32>) = moments.into_iter().unzip();
        flex_tensor([means, vars].concat(), Shape::new([2, c]))
    }

    fn batch_norm_apply(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let shape = x.shape();
        let (_, c, plane) = dims(&shape);
        let (x, gamma, beta, stats) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            beta.to_contiguous(),
            stats.to_contiguous(),
        );
        let (gamma, beta, stats) = (slice(&gamma), slice(&beta), slice(&stats));
        let mut y = vec![0.0f32; shape.num_elements()];
        y.par_chunks_mut(plane)
            .zip(slice(&x).par_chunks(plane))
            .enumerate()
            .for_each(|(i, (y, x))| {
                let ch = i % c;
                let (mean, inv_std) = channel_stats(stats, c, ch, epsilon);
                let scale = inv_std * gamma[ch];
                let shift = beta[ch] - mean * scale;
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x * scale + shift;
                }
            });
        flex_tensor(y, shape)
    }
}

impl BatchNormGrad for Flex {
    fn batch_norm_grad(
        x: FlexTensor,
        gamma: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
        grad: FlexTensor,
    ) -> [FlexTensor; 3] {
        let shape = x.shape();
        let (n, c, plane) = dims(&shape);
        let (x, gamma, stats, grad) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            stats.to_contiguous(),
            grad.to_contiguous(),
        );
        let (xs, gamma, stats, dy) = (slice(&x), slice(&gamma), slice(&stats), slice(&grad));
        // Per channel: Σ dy and Σ dy · x̂.
        let sums = for_channels(dy, (n, c, plane), |ch, planes| {
            let (mean, inv_std) = channel_stats(stats, c, ch, epsilon);
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for (i, dy) in planes.enumerate() {
                let x = &xs[(i * c + ch) * plane..][..plane];
                let (s, t) = dy.iter().zip(x).fold((0.0f32, 0.0f32), |(s, t), (&g, &v)| {
                    (s + g, t + g * (v - mean) * inv_std)
                });
                sum_dy += f64::from(s);
                sum_dy_xhat += f64::from(t);
            }
            (sum_dy as f32, sum_dy_xhat as f32)
        });
        let count = (n * plane) as f32;
        let mut dx = vec![0.0f32; shape.num_elements()];
        dx.par_chunks_mut(plane)
            .zip(dy.par_chunks(plane).zip(xs.par_chunks(plane)))
            .enumerate()
            .for_each(|(i, (dx, (dy, x)))| {
                let ch = i % c;
                let (mean, inv_std) = channel_stats(stats, c, ch, epsilon);
                let (sum_dy, sum_dy_xhat) = sums[ch];
                // dx = γ·σ⁻¹·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)
                let k = gamma[ch] * inv_std;
                let mean_dy = sum_dy / count;
                let mean_dy_xhat = sum_dy_xhat / count;
                for ((dx, &g), &v) in dx.iter_mut().zip(dy).zip(x) {
                    let xhat = (v - mean) * inv_std;
                    *dx = k * (g - mean_dy - xhat * mean_dy_xhat);
                }
            });
        let (beta_grad, gamma_grad): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
        [
            flex_tensor(dx, shape),
            flex_tensor(gamma_grad, Shape::new([c])),
            flex_tensor(beta_grad, Shape::new([c])),
        ]
    }
}

impl<B: BatchNormBackend + BatchNormGrad, C: CheckpointStrategy> BatchNormBackend
    for Autodiff<B, C>
{
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::batch_stats(Self::inner(x)))
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BatchNormApply;

        impl<B: BatchNormGrad> Backward<B, 3> for BatchNormApply {
            type State = (NodeId, NodeId, FloatTensor<B>, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, gamma_state, stats, epsilon) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);
                let [dx, dgamma, dbeta] = B::batch_norm_grad(x, gamma, stats, epsilon, grad);
                for (node, g) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        let stats = Self::inner(stats);
        match BatchNormApply
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let y = B::batch_norm_apply(
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    beta.primitive().clone(),
                    stats.clone(),
                    epsilon,
                );
                prep.finish((x_state, gamma_state, stats, epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::batch_norm_apply(
                x.primitive().clone(),
                gamma.primitive().clone(),
                beta.primitive().clone(),
                stats,
                epsilon,
            )),
        }
    }
}

/// `bn.forward(x)` on the CPU backend (`f32`): the fused operation when `bn` trains on batch
/// statistics, one normalising pass on running statistics where nothing needs a gradient, and
/// `bn.forward` itself otherwise.
pub fn batch_norm_forward(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let trains = device.is_autodiff() && bn.training.is_enabled();
    if device != Device::flex() || x.dtype() != DType::F32 {
        return bn.forward(x);
    }
    // On running statistics only where nothing needs a gradient: the kernel's gradient is that
    // of batch statistics. (An activation computed from trained layers is tracked but does not
    // itself require a gradient.)
    if !trains
        && (x.is_tracked() || bn.gamma.val().is_require_grad() || bn.beta.val().is_require_grad())
    {
        return bn.forward(x);
    }
    let running = |r: &burn::module::RunningState<Tensor<1>>| r.value_sync().to_device(&device);
    let stats = if trains {
        Tensor::<2>::from_dispatch(<Dispatch as BatchNormBackend>::batch_stats(
            x.clone().detach().into_dispatch(),
        ))
    } else {
        Tensor::stack(vec![running(&bn.running_mean), running(&bn.running_var)], 0)
    };
    let y = Tensor::from_dispatch(<Dispatch as BatchNormBackend>::batch_norm_apply(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        stats.clone().into_dispatch(),
        bn.epsilon,
    ));
    if !trains {
        return y;
    }
    // As burn's BatchNorm::forward_train: running = (1 − momentum)·running + momentum·batch,
    // with the biased batch variance.
    let [channels] = bn.gamma.dims();
    let mean = stats.clone().narrow(0, 0, 1).reshape([channels]);
    let var = stats.narrow(0, 1, 1).reshape([channels]);
    let momentum = bn.momentum;
    bn.running_mean
        .update((running(&bn.running_mean) * (1.0 - momentum) + mean * momentum).detach());
    bn.running_var
        .update((running(&bn.running_var) * (1.0 - momentum) + var * momentum).detach());
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn matches_burns_batch_norm_running_statistics_and_gradients() {
        let device = Device::flex().autodiff();
        // Two separate layers (a clone would share its running statistics), with the same
        // weights: gamma other than 1, beta other than 0.
        let gamma = Tensor::<1>::from_floats([0.5, 2.0, -1.0], &device);
        let beta = Tensor::<1>::from_floats([0.1, -0.3, 1.0], &device);
        let layer = || {
            let mut bn = BatchNormConfig::new(3).init(&device);
            bn.gamma = Param::from_tensor(gamma.clone());
            bn.beta = Param::from_tensor(beta.clone());
            bn
        };
        let (reference, fused) = (layer(), layer());
        let x = Tensor::<4>::random([4, 3, 5, 7], Distribution::Normal(2.0, 3.0), &device);
        let probe = Tensor::<4>::random([4, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        let mut results = Vec::new();
        for (bn, ours) in [(&reference, false), (&fused, true)] {
            let x = x.clone().require_grad();
            let y = if ours {
                batch_norm_forward(bn, x.clone())
            } else {
                bn.forward(x.clone())
            };
            let grads = (y.clone() * probe.clone()).sum().backward();
            results.push([
                y.into_data(),
                x.grad(&grads).expect("x gradient").into_data(),
                bn.gamma.grad(&grads).expect("gamma gradient").into_data(),
                bn.beta.grad(&grads).expect("beta gradient").into_data(),
                bn.running_mean.value().into_data(),
                bn.running_var.value().into_data(),
            ]);
        }
        for (ours, theirs) in results[1].iter().zip(&results[0]) {
            ours.assert_approx_eq::<f32>(theirs, Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn running_statistics_path_matches_burns_inference() {
        let device = Device::flex();
        let mut bn = BatchNormConfig::new(3).init(&device);
        bn.gamma = Param::from_tensor(Tensor::<1>::from_floats([0.5, 2.0, -1.0], &device));
        bn.beta = Param::from_tensor(Tensor::<1>::from_floats([0.1, -0.3, 1.0], &device));
        bn.running_mean =
            burn::module::RunningState::new(Tensor::from_floats([1.0, -2.0, 0.5], &device));
        bn.running_var =
            burn::module::RunningState::new(Tensor::from_floats([4.0, 0.25, 1.5], &device));
        let x = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 2.0), &device);
        // The running statistics are far from the batch's, so using the batch's would fail.
        let ours = batch_norm_forward(&bn, x.clone()).into_data();
        let theirs = bn.forward(x).into_data();
        ours.assert_approx_eq::<f32>(&theirs, Tolerance::absolute(1e-5));
    }

    #[test]
    fn a_frozen_layer_after_a_trained_one_passes_the_running_statistics_gradient() {
        let device = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(2).init(&device);
        bn.running_mean =
            burn::module::RunningState::new(Tensor::from_floats([1.0, -2.0], &device));
        bn.running_var = burn::module::RunningState::new(Tensor::from_floats([4.0, 0.25], &device));
        let bn = bn.freeze();
        let leaf = Tensor::<4>::random([2, 2, 3, 3], Distribution::Normal(0.0, 2.0), &device)
            .require_grad();
        // Computed from a trained tensor: tracked, though not itself requiring a gradient.
        let x = leaf.clone() * 3.0;
        let y = batch_norm_forward(&bn, x);
        let grads = y.sum().backward();
        let grad = leaf.grad(&grads).expect("the input has a gradient");
        // On running statistics the layer is affine: d/dx = 3 · γ / sqrt(σ² + ε) per channel.
        let per_channel = [3.0 / (4.0f32 + 1e-5).sqrt(), 3.0 / (0.25f32 + 1e-5).sqrt()];
        let expected = Tensor::<1>::from_floats(per_channel, &grad.device())
            .reshape([1, 2, 1, 1])
            .expand([2, 2, 3, 3]);
        grad.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
    }
}
