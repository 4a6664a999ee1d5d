//! Max pooling on the CPU backend without autodiff (frozen layers, validation, predict).
//!
//! burn's CPU max pool works out each output value on its own, with index arithmetic and NaN
//! checks per tap: ResNet's stem pool took about as long as the 7×7 convolution before it. Here
//! each output row is the column-wise maximum of its input rows, then the maximum of each
//! window along that row, so the long loops vectorise. A tensor tracked for gradients keeps
//! burn's pool and its gradient.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use super::flex_values::{channels_last_f32, channels_last_tensor, flex_tensor, slice};

/// A square max pool (floor mode, dilation 1); padding counts as `-∞`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Window side.
    pub kernel: usize,
    /// Step in both directions.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
}

impl PoolSpec {
    /// Output side for an input side of `size`.
    fn out(&self, size: usize) -> usize {
        (size + 2 * self.padding).saturating_sub(self.kernel) / self.stride + 1
    }

    /// The input indices window `o` covers along an axis of `size`.
    fn window(&self, o: usize, size: usize) -> std::ops::Range<usize> {
        let start = (o * self.stride).saturating_sub(self.padding);
        let end = (o * self.stride + self.kernel).saturating_sub(self.padding);
        start.min(size)..end.min(size)
    }
}

/// Max pooling of NCHW `x` by burn's operation.
fn pool_by_burn<B: Backend>(x: FloatTensor<B>, spec: PoolSpec) -> FloatTensor<B> {
    let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
    B::max_pool2d(x, [k, k], [s, s], [p, p], [1, 1], false)
}

/// The operation as a backend extension: burn's pool by default, Graft's loop on the CPU.
#[backend_extension(Flex, Autodiff)]
pub trait MaxPoolBackend: Backend {
    /// Max pooling of NCHW `x`.
    fn graft_max_pool2d(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        pool_by_burn::<Self>(x, spec)
    }
}

impl<B: MaxPoolBackend, C: CheckpointStrategy> MaxPoolBackend for Autodiff<B, C> {}

impl MaxPoolBackend for Flex {
    fn graft_max_pool2d(x: FlexTensor, spec: PoolSpec) -> FlexTensor {
        let dims: Option<[usize; 4]> = x.shape().as_slice().try_into().ok();
        match dims {
            Some([n, c, h, w]) if x.dtype() == DType::F32 && spec.kernel > spec.padding => {
                if let Some(values) = channels_last_f32(&x) {
                    let y = max_pool_channels_last(values, [n, c, h, w], spec);
                    return channels_last_tensor(y, [n, c, spec.out(h), spec.out(w)]);
                }
                let x = x.to_contiguous();
                let y = max_pool_planes(slice(&x), [n * c, h, w], spec);
                flex_tensor(y, Shape::from([n, c, spec.out(h), spec.out(w)]))
            }
            _ => pool_by_burn::<Flex>(x, spec),
        }
    }
}

/// Max pooling of `x` (`[N, C, H, W]`); burn's pool where the tensor is tracked for gradients
/// or lives on another device.
pub fn max_pool2d(x: Tensor<4>, spec: PoolSpec) -> Tensor<4> {
    // An untracked tensor on the autodiff device (the output of frozen layers in training)
    // needs no gradient, so it is pooled as a plain tensor.
    let untracked = x.is_autodiff() && !x.is_tracked();
    let x = if untracked { x.without_autodiff() } else { x };
    let y = Tensor::from_dispatch(<Dispatch as MaxPoolBackend>::graft_max_pool2d(
        x.into_dispatch(),
        spec,
    ));
    if untracked { y.autodiff() } else { y }
}

/// Pools `planes` planes of `h × w` values each.
fn max_pool_planes(x: &[f32], [planes, h, w]: [usize; 3], spec: PoolSpec) -> Vec<f32> {
    let (out_h, out_w) = (spec.out(h), spec.out(w));
    let mut y = vec![0.0f32; planes * out_h * out_w];
    if planes == 0 || out_h * out_w == 0 {
        return y;
    }
    y.par_chunks_mut(out_h * out_w)
        .zip(x.par_chunks(h * w))
        .for_each_init(
            || vec![0.0f32; w],
            |rows_max, (y, x)| {
                for (i, y_row) in y.chunks_exact_mut(out_w).enumerate() {
                    rows_max.fill(f32::NEG_INFINITY);
                    let rows = spec.window(i, h);
                    for row in x[rows.start * w..rows.end * w].chunks_exact(w) {
                        for (m, &v) in rows_max.iter_mut().zip(row) {
                            *m = if v > *m { v } else { *m };
                        }
                    }
                    for (j, out) in y_row.iter_mut().enumerate() {
                        *out = rows_max[spec.window(j, w)]
                            .iter()
                            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
                    }
                }
            },
        );
    y
}

/// Pools channels-last `x` (`[N, H, W, C]` in memory) into the same layout, one output row per
/// task.
fn max_pool_channels_last(x: &[f32], [n, c, h, w]: [usize; 4], spec: PoolSpec) -> Vec<f32> {
    let (out_h, out_w) = (spec.out(h), spec.out(w));
    let mut y = vec![0.0f32; n * out_h * out_w * c];
    if y.is_empty() {
        return y;
    }
    let max = |m: &mut f32, v: f32| *m = if v > *m { v } else { *m };
    y.par_chunks_mut(out_w * c).enumerate().for_each_init(
        || vec![0.0f32; w * c],
        |rows_max, (index, y_row)| {
            let (image, i) = (index / out_h, index % out_h);
            let x = &x[image * h * w * c..][..h * w * c];
            rows_max.fill(f32::NEG_INFINITY);
            let rows = spec.window(i, h);
            for row in x[rows.start * w * c..rows.end * w * c].chunks_exact(w * c) {
                rows_max.iter_mut().zip(row).for_each(|(m, &v)| max(m, v));
            }
            for (j, out) in y_row.chunks_exact_mut(c).enumerate() {
                out.fill(f32::NEG_INFINITY);
                let cols = spec.window(j, w);
                for pixel in rows_max[cols.start * c..cols.end * c].chunks_exact(c) {
                    out.iter_mut().zip(pixel).for_each(|(m, &v)| max(m, v));
                }
            }
        },
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn spec(kernel: usize, stride: usize, padding: usize) -> PoolSpec {
        PoolSpec {
            kernel,
            stride,
            padding,
        }
    }

    #[test]
    fn the_pool_matches_burns() {
        let device = Device::flex();
        for (shape, spec) in [
            ([2, 3, 112, 112], spec(3, 2, 1)),
            ([1, 2, 9, 7], spec(3, 2, 1)),
            ([1, 4, 8, 8], spec(2, 2, 0)),
            ([1, 1, 5, 6], spec(3, 1, 1)),
        ] {
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (k, s, p) = (spec.kernel, spec.stride, spec.padding);
            let expected = burn::nn::pool::MaxPool2dConfig::new([k, k])
                .with_strides([s, s])
                .with_padding(burn::nn::PaddingConfig2d::Explicit(p, p, p, p))
                .init()
                .forward(x.clone());
            let got = max_pool2d(x, spec);
            assert_eq!(got.dims(), expected.dims(), "{shape:?} {spec:?}");
            let (got, expected) = (got.into_data(), expected.into_data());
            assert_eq!(
                got.as_slice::<f32>().unwrap(),
                expected.as_slice::<f32>().unwrap(),
                "{shape:?} {spec:?}"
            );
        }
    }

    #[test]
    fn a_channels_last_input_pools_to_the_same_values() {
        let spec = spec(3, 2, 1);
        let shape = [2, 5, 9, 8];
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
        let nchw = x.clone().into_data().try_to_vec::<f32>().unwrap();
        let nhwc = x
            .permute([0, 2, 3, 1])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let pool = |x: FlexTensor| {
            let y = <Flex as MaxPoolBackend>::graft_max_pool2d(x, spec);
            let channels_last = channels_last_f32(&y).is_some();
            let values = y.to_contiguous().into_data().try_to_vec::<f32>().unwrap();
            (y.shape(), values, channels_last)
        };
        let (shape_last, values_last, stays_last) = pool(channels_last_tensor(nhwc, shape));
        let (shape_first, values_first, _) = pool(flex_tensor(nchw, Shape::from(shape)));
        assert!(
            stays_last,
            "a channels-last input pools to a channels-last output"
        );
        assert_eq!((shape_last, values_last), (shape_first, values_first));
    }

    #[test]
    fn a_tracked_input_still_gets_its_gradient() {
        let device = Device::flex().autodiff();
        let spec = spec(3, 2, 1);
        let x = Tensor::<4>::random([1, 2, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let untracked = max_pool2d(x.clone(), spec);
        assert!(untracked.is_autodiff());
        let tracked = x.require_grad();
        let y = max_pool2d(tracked.clone(), spec);
        assert_eq!(
            y.to_data().as_slice::<f32>().unwrap(),
            untracked.into_data().as_slice::<f32>().unwrap()
        );
        let grads = y.sum().backward();
        let gradient = tracked.grad(&grads).expect("a gradient reaches the input");
        // Each of the 2 × 3 × 3 outputs sends its gradient of 1 to its window's maximum.
        let total: f32 = gradient.into_data().iter::<f32>().sum();
        assert_eq!(total, 18.0);
    }
}
