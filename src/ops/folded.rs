//! A frozen convolution and the BatchNorm after it as one convolution with a bias, prepared once.
//!
//! In inference, BatchNorm on running statistics is a per-channel affine map. It folds into
//! the convolution before it as `w·s` and `β − μ·s`, where `s = γ / √(σ² + ε)`. Folding, and
//! laying the weights out for the dense kernels, costs a pass over every weight. That is a
//! large share of one image's forward pass. A frozen layer's weights do not change, so on the
//! CPU backend the prepared weights are kept and keyed by the buffers they came from.
//!
//! The cache holds a reference to each source buffer. While it does, burn cannot change that
//! buffer in place: it writes in place only into buffers nothing else shares. So an entry
//! whose buffers match holds the same values. An entry is dropped once nothing but the cache
//! holds its buffers.

use std::sync::{Arc, Mutex, PoisonError};

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Device, Shape, Tensor};

use super::conv::{Clamp, ConvKind, ConvSpec, Finish, clamp_by_burn, dense, depthwise_forward};
pub use super::flex_values::ImageLayout;
use super::flex_values::{contiguous_f32, flex_tensor, slice};

/// What [`conv2d_bn_clamp`] does besides its weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoldSpec {
    /// The convolution.
    pub conv: ConvSpec,
    /// The BatchNorm's ε.
    pub epsilon: f64,
    /// The range the output is clamped to (the activation's, for ReLU or ReLU6).
    pub clamp: Clamp,
    /// How Graft's dense kernels lay the output out where they run the convolution:
    /// channels-last where another dense convolution reads it next (it reads it without a
    /// copy), channels-first where a depthwise convolution or a pool over each plane does.
    /// The values are the same either way.
    pub output: ImageLayout,
}

/// A BatchNorm's inference parameters, one value per channel each.
pub struct BatchNormStats {
    /// Scale γ.
    pub gamma: Tensor<1>,
    /// Shift β.
    pub beta: Tensor<1>,
    /// Running mean μ.
    pub mean: Tensor<1>,
    /// Running variance σ².
    pub var: Tensor<1>,
}

/// `clamp(bn(conv(x, weight)) + residual)` by burn's operations, the BatchNorm folded into the
/// weights.
fn fold_by_burn<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    [gamma, beta, mean, var]: [FloatTensor<B>; 4],
    residual: Option<FloatTensor<B>>,
    fold: FoldSpec,
) -> FloatTensor<B> {
    let out = weight.shape()[0];
    let scale = B::float_div(
        gamma,
        B::float_sqrt(B::float_add_scalar(var, fold.epsilon.into())),
    );
    let bias = B::float_sub(beta, B::float_mul(mean, scale.clone()));
    let weight = B::float_mul(weight, B::float_reshape(scale, Shape::from([out, 1, 1, 1])));
    let y = B::conv2d(x, weight, Some(bias), fold.conv.burn_options(out));
    finish_by_burn::<B>(y, residual, fold.clamp)
}

/// `clamp(y + residual)` by burn's operations.
fn finish_by_burn<B: Backend>(
    y: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    clamp: Clamp,
) -> FloatTensor<B> {
    let y = match residual {
        Some(r) => B::float_add(y, r),
        None => y,
    };
    clamp_by_burn::<B>(y, clamp)
}

/// The operation as a backend extension: burn's operations by default, the prepared weights
/// and Graft's kernels on the CPU backend.
#[backend_extension(Flex, Autodiff)]
pub trait FoldedConvBackend: Backend {
    /// `clamp(bn(conv(x, weight)))` with the BatchNorm's running statistics: an inference
    /// operation, for frozen layers.
    fn graft_conv2d_bn_clamp(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        fold: FoldSpec,
    ) -> FloatTensor<Self> {
        fold_by_burn::<Self>(x, weight, [gamma, beta, mean, var], None, fold)
    }

    /// `clamp(bn(conv(x, weight)) + residual)`, likewise.
    // The BatchNorm's four tensors cross the dispatch boundary one by one.
    #[allow(clippy::too_many_arguments)]
    fn graft_conv2d_bn_add_clamp(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        fold: FoldSpec,
    ) -> FloatTensor<Self> {
        fold_by_burn::<Self>(x, weight, [gamma, beta, mean, var], Some(residual), fold)
    }
}

impl<B: FoldedConvBackend, C: CheckpointStrategy> FoldedConvBackend for Autodiff<B, C> {}

impl FoldedConvBackend for Flex {
    fn graft_conv2d_bn_clamp(
        x: FlexTensor,
        weight: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        fold: FoldSpec,
    ) -> FlexTensor {
        flex_conv_bn(x, [weight, gamma, beta, mean, var], None, fold)
    }

    fn graft_conv2d_bn_add_clamp(
        x: FlexTensor,
        weight: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        residual: FlexTensor,
        fold: FoldSpec,
    ) -> FlexTensor {
        flex_conv_bn(x, [weight, gamma, beta, mean, var], Some(residual), fold)
    }
}

/// Both operations on the CPU backend: `sources` are `[weight, γ, β, μ, σ²]`.
fn flex_conv_bn(
    x: FlexTensor,
    sources: [FlexTensor; 5],
    residual: Option<FlexTensor>,
    fold: FoldSpec,
) -> FlexTensor {
    let Some(prepared) = prepared(&sources, &x, fold) else {
        let [weight, gamma, beta, mean, var] = sources;
        return fold_by_burn::<Flex>(x, weight, [gamma, beta, mean, var], residual, fold);
    };
    let finish = Finish {
        bias: &prepared.bias,
        residual: residual.as_ref(),
        clamp: fold.clamp,
    };
    let fast = match &prepared.weights {
        Weights::Taps(taps) => dense::forward_taps(
            &x,
            taps,
            prepared.shape,
            fold.conv,
            Some(finish),
            fold.output,
        ),
        Weights::Folded(w) if fold.conv.kind == ConvKind::Depthwise && residual.is_none() => {
            depthwise_forward(&x, w, Some(&prepared.bias), fold.conv, fold.clamp)
        }
        Weights::Folded(_) => None,
    };
    if let Some(y) = fast {
        return y;
    }
    let weight = match &prepared.weights {
        Weights::Folded(w) => w.clone(),
        // The kernels turned this input down: fold again for burn's convolution.
        Weights::Taps(_) => flex_tensor(
            folded_weight(&sources[0], &prepared.scale).expect("the weights folded once already"),
            Shape::from(prepared.shape),
        ),
    };
    let options = fold.conv.burn_options(prepared.shape[0]);
    // A channels-last input (from a dense convolution before) goes channels-first by Graft's
    // copy, which is faster than burn's.
    let x = contiguous_f32(&x).unwrap_or(x);
    let residual = residual.map(|r| contiguous_f32(&r).unwrap_or(r));
    let y = Flex::conv2d(x, weight, Some(prepared.bias.clone()), options);
    match (fold.clamp, residual) {
        (Clamp::RELU6, None) => <Flex as super::relu6::Relu6Backend>::relu6(y),
        (clamp, residual) => finish_by_burn::<Flex>(y, residual, clamp),
    }
}

/// A convolution's weights with its BatchNorm folded in, ready to run.
struct Prepared {
    /// Shape of the weights, `[O, I, kh, kw]`.
    shape: [usize; 4],
    /// `s` for each output channel.
    scale: Vec<f32>,
    /// `β − μ·s`.
    bias: FlexTensor,
    weights: Weights,
}

/// The folded weights in the layout the convolution that runs them reads.
enum Weights {
    /// For Graft's dense kernels.
    Taps(Vec<f32>),
    /// burn's layout, for burn's convolution (depthwise, or channel counts the kernels do not
    /// take).
    Folded(FlexTensor),
}

/// `w·s` for each output channel's weights, where `w` is `f32`.
fn folded_weight(weight: &FlexTensor, scale: &[f32]) -> Option<Vec<f32>> {
    let w = contiguous_f32(weight)?;
    let values = slice(&w);
    let per_channel = values.len() / scale.len().max(1);
    Some(
        values
            .chunks(per_channel.max(1))
            .zip(scale)
            .flat_map(|(row, s)| row.iter().map(move |v| v * s))
            .collect(),
    )
}

/// Folds `[weight, γ, β, μ, σ²]` for a convolution of `spec` run on inputs like `x`; `None`
/// where a value is not `f32` or the shapes do not fit.
fn prepare(sources: &[FlexTensor; 5], x: &FlexTensor, fold: FoldSpec) -> Option<Prepared> {
    let shape: [usize; 4] = sources[0].shape().as_slice().try_into().ok()?;
    let stats: Vec<FlexTensor> = sources[1..]
        .iter()
        .map(contiguous_f32)
        .collect::<Option<_>>()?;
    let [gamma, beta, mean, var] = [0, 1, 2, 3].map(|i| slice(&stats[i]));
    if [beta, mean, var].iter().any(|v| v.len() != gamma.len()) || gamma.len() != shape[0] {
        return None;
    }
    let epsilon = fold.epsilon as f32;
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let bias: Vec<f32> = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    let folded = flex_tensor(folded_weight(&sources[0], &scale)?, Shape::from(shape));
    let weights = match fold.conv.kind {
        ConvKind::Dense => match dense::taps(x, &folded, fold.conv) {
            Some(taps) => Weights::Taps(taps),
            None => Weights::Folded(folded),
        },
        ConvKind::Depthwise => Weights::Folded(folded),
    };
    Some(Prepared {
        shape,
        bias: flex_tensor(bias, Shape::from([shape[0]])),
        scale,
        weights,
    })
}

/// One cached preparation and the buffers it came from.
struct Entry {
    sources: [FlexTensor; 5],
    epsilon: f64,
    prepared: Arc<Prepared>,
}

impl Entry {
    fn matches(&self, sources: &[FlexTensor; 5], epsilon: f64) -> bool {
        self.epsilon == epsilon
            && self.sources.iter().zip(sources).all(|(a, b)| {
                Arc::ptr_eq(&a.data_arc(), &b.data_arc())
                    && a.layout() == b.layout()
                    && a.dtype() == b.dtype()
            })
    }

    /// Whether anything besides the cache still holds every source buffer.
    fn in_use(&self) -> bool {
        self.sources.iter().all(|s| !s.is_unique())
    }
}

/// More entries than any network has convolutions: past it the cache starts again.
const MAX_ENTRIES: usize = 4096;

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// The preparation of `sources`, from the cache or made (outside the lock) and kept.
fn prepared(sources: &[FlexTensor; 5], x: &FlexTensor, fold: FoldSpec) -> Option<Arc<Prepared>> {
    {
        let mut entries = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(Entry::in_use);
        if let Some(entry) = entries.iter().find(|e| e.matches(sources, fold.epsilon)) {
            return Some(entry.prepared.clone());
        }
    }
    let prepared = Arc::new(prepare(sources, x, fold)?);
    let mut entries = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
    entries.push(Entry {
        sources: sources.clone(),
        epsilon: fold.epsilon,
        prepared: prepared.clone(),
    });
    Some(prepared)
}

/// Entries in the cache now, for tests.
#[cfg(test)]
fn cached() -> usize {
    let mut entries = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    entries.retain(Entry::in_use);
    entries.len()
}

/// `clamp(bn(conv(x, weight)) + residual)` as one inference operation (the output has no
/// gradient): on the CPU backend with the folded weights prepared once per weight buffer and the
/// residual added as the output is written, elsewhere by burn's operations. `residual` has the
/// output's shape.
pub fn conv2d_bn_clamp(
    x: Tensor<4>,
    weight: Tensor<4>,
    bn: BatchNormStats,
    residual: Option<Tensor<4>>,
    fold: FoldSpec,
) -> Tensor<4> {
    if x.device().without_autodiff() != Device::flex() {
        let stats = [bn.gamma, bn.beta, bn.mean, bn.var].map(Tensor::into_dispatch);
        return Tensor::from_dispatch(fold_by_burn::<Dispatch>(
            x.into_dispatch(),
            weight.into_dispatch(),
            stats,
            residual.map(Tensor::into_dispatch),
            fold,
        ));
    }
    let autodiff = x.is_autodiff();
    let plain = |t: Tensor<1>| t.without_autodiff().into_dispatch();
    let (x, weight) = (
        x.without_autodiff().into_dispatch(),
        weight.without_autodiff().into_dispatch(),
    );
    let [gamma, beta, mean, var] = [bn.gamma, bn.beta, bn.mean, bn.var].map(plain);
    let y = Tensor::from_dispatch(match residual {
        None => <Dispatch as FoldedConvBackend>::graft_conv2d_bn_clamp(
            x, weight, gamma, beta, mean, var, fold,
        ),
        Some(r) => <Dispatch as FoldedConvBackend>::graft_conv2d_bn_add_clamp(
            x,
            weight,
            gamma,
            beta,
            mean,
            var,
            r.without_autodiff().into_dispatch(),
            fold,
        ),
    });
    if autodiff { y.autodiff() } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn random<const D: usize>(shape: [usize; D], lo: f64, hi: f64) -> Tensor<D> {
        Tensor::random(shape, Distribution::Uniform(lo, hi), &Device::flex())
    }

    fn stats(channels: usize) -> BatchNormStats {
        BatchNormStats {
            gamma: random([channels], 0.5, 1.5),
            beta: random([channels], -0.5, 0.5),
            mean: random([channels], -0.5, 0.5),
            var: random([channels], 0.5, 2.0),
        }
    }

    fn copy(bn: &BatchNormStats) -> BatchNormStats {
        BatchNormStats {
            gamma: bn.gamma.clone(),
            beta: bn.beta.clone(),
            mean: bn.mean.clone(),
            var: bn.var.clone(),
        }
    }

    fn by_burn(x: Tensor<4>, weight: Tensor<4>, bn: BatchNormStats, fold: FoldSpec) -> Tensor<4> {
        let p = |t: Tensor<1>| t.into_dispatch();
        Tensor::from_dispatch(fold_by_burn::<Dispatch>(
            x.into_dispatch(),
            weight.into_dispatch(),
            [p(bn.gamma), p(bn.beta), p(bn.mean), p(bn.var)],
            None,
            fold,
        ))
    }

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.into_data().try_to_vec().unwrap(),
            b.into_data().try_to_vec().unwrap(),
        );
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn spec(kind: ConvKind, clamp: Clamp) -> FoldSpec {
        FoldSpec {
            conv: ConvSpec {
                kind,
                stride: 1,
                padding: [1, 1, 1, 1],
            },
            epsilon: 1e-3,
            clamp,
            output: ImageLayout::ChannelsFirst,
        }
    }

    #[test]
    fn prepared_weights_give_what_folding_by_burn_gives_on_every_call() {
        // 32 → 32 channels run through the dense kernels where the CPU has them; depthwise
        // ones through burn's convolution with the folded weights.
        for (kind, weight_shape) in [
            (ConvKind::Dense, [32, 32, 3, 3]),
            (ConvKind::Depthwise, [32, 1, 3, 3]),
        ] {
            let fold = spec(kind, Clamp::RELU6);
            let weight = random(weight_shape, -0.3, 0.3);
            let bn = stats(32);
            for batch in [1, 3] {
                let x = random([batch, 32, 9, 7], -1.0, 1.0);
                let expected = by_burn(x.clone(), weight.clone(), copy(&bn), fold);
                // Twice: the second call reads the cache.
                for _ in 0..2 {
                    let y = conv2d_bn_clamp(x.clone(), weight.clone(), copy(&bn), None, fold);
                    let d = max_difference(y, expected.clone());
                    assert!(d < 1e-5, "{kind:?}, batch {batch}: {d}");
                }
            }
        }
    }

    #[test]
    fn both_output_layouts_hold_the_same_values_and_chain() {
        // Dense 32 → 32 twice, the second adding a residual: every pair of layouts gives the
        // values burn gives, whichever layout the input and the residual come in.
        let weight = random([32, 32, 3, 3], -0.3, 0.3);
        let bn = stats(32);
        let x = random([2, 32, 8, 6], -1.0, 1.0);
        let first = spec(ConvKind::Dense, Clamp::RELU);
        let expected_y = by_burn(x.clone(), weight.clone(), copy(&bn), first);
        let unclamped = FoldSpec {
            clamp: Clamp::NONE,
            ..first
        };
        let expected_z = (by_burn(expected_y.clone(), weight.clone(), copy(&bn), unclamped)
            + x.clone())
        .clamp_min(0.0);
        for a in [ImageLayout::ChannelsFirst, ImageLayout::ChannelsLast] {
            for b in [ImageLayout::ChannelsFirst, ImageLayout::ChannelsLast] {
                let y = conv2d_bn_clamp(
                    x.clone(),
                    weight.clone(),
                    copy(&bn),
                    None,
                    FoldSpec { output: a, ..first },
                );
                assert!(
                    max_difference(y.clone(), expected_y.clone()) < 1e-5,
                    "{a:?}"
                );
                let residual = Some(x.clone());
                let fold = FoldSpec { output: b, ..first };
                let z = conv2d_bn_clamp(y, weight.clone(), copy(&bn), residual, fold);
                let d = max_difference(z, expected_z.clone());
                assert!(d < 1e-5, "{a:?} then {b:?}: {d}");
            }
        }
    }

    fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
        flex_tensor(values, Shape::from(shape.to_vec()))
    }

    fn sources(weight_scale: f32) -> [FlexTensor; 5] {
        let weight: Vec<f32> = (0..32 * 32 * 9)
            .map(|i| (i % 7) as f32 * weight_scale)
            .collect();
        let ones = || flex(vec![1.0; 32], &[32]);
        [
            flex(weight, &[32, 32, 3, 3]),
            ones(),
            ones(),
            ones(),
            ones(),
        ]
    }

    #[test]
    fn new_weights_are_never_served_from_the_cache_and_dropped_ones_leave_it() {
        let fold = spec(ConvKind::Dense, Clamp::NONE);
        let x = flex(vec![0.5; 2 * 32 * 6 * 6], &[2, 32, 6, 6]);
        let old = sources(0.1);
        let first = prepared(&old, &x, fold).unwrap();
        assert!(
            Arc::ptr_eq(&first, &prepared(&old, &x, fold).unwrap()),
            "not cached"
        );
        // Other values in other buffers, as an optimizer step leaves them: prepared afresh.
        let new = sources(0.2);
        let second = prepared(&new, &x, fold).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        let fresh = prepare(&new, &x, fold).unwrap();
        let values = |p: &Prepared| match &p.weights {
            Weights::Taps(t) => t.clone(),
            Weights::Folded(w) => slice(w).to_vec(),
        };
        assert_eq!(values(&second), values(&fresh));
        assert_ne!(values(&first), values(&second));
        // Once nothing else holds the old buffers, their entry goes.
        let buffer = Arc::downgrade(&old[0].data_arc());
        drop((old, first));
        let _ = cached();
        assert!(
            buffer.upgrade().is_none(),
            "the cache kept a dropped weight"
        );
    }
}
