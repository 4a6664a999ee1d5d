//! Reading and making `f32` tensors of burn's CPU backend, for Graft's own kernels.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// The order of an image tensor's values in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageLayout {
    /// NCHW: one plane per channel.
    ChannelsFirst,
    /// NHWC: each pixel's channels side by side, as Graft's dense kernels read
    /// and write them.
    ChannelsLast,
}

/// A contiguous copy (or the tensor itself, when already contiguous) of an `f32` tensor, or
/// `None` for another element type. A channels-last image tensor is copied by Graft's
/// transposition, in parallel.
pub fn contiguous_f32(tensor: &FlexTensor) -> Option<FlexTensor> {
    if tensor.dtype() != DType::F32 {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(values) = channels_last_f32(tensor) {
        let dims: [usize; 4] = tensor.shape().as_slice().try_into().ok()?;
        if let Some(nchw) = super::dense_kernels::to_channels_first(values, dims) {
            return Some(flex_tensor(nchw, tensor.shape()));
        }
    }
    Some(tensor.to_contiguous())
}

/// The values of a contiguous `f32` tensor, in row-major order.
pub fn slice(tensor: &FlexTensor) -> &[f32] {
    let storage: &[f32] = tensor.storage();
    match tensor.layout().contiguous_offsets() {
        Some((start, end)) => &storage[start..end],
        None => storage,
    }
}

/// A tensor of `shape` holding `values` (row-major).
pub fn flex_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The values of an `f32` tensor of shape `[N, C, H, W]` laid out channels-last (as
/// [`channels_last_tensor`] makes them: `[N, H, W, C]` in row-major order), or `None` for any
/// other layout.
pub fn channels_last_f32(tensor: &FlexTensor) -> Option<&[f32]> {
    let layout = tensor.layout();
    let [_, c, h, w]: [usize; 4] = layout.shape().as_slice().try_into().ok()?;
    let expected = [h * w * c, 1, w * c, c].map(|s| s as isize);
    let storage: &[f32] = (tensor.dtype() == DType::F32).then(|| tensor.storage())?;
    let values = storage
        .get(layout.start_offset()..)?
        .get(..layout.num_elements())?;
    (layout.strides() == expected).then_some(values)
}

/// A tensor of shape `[N, C, H, W]` whose values are `values` in channels-last order
/// (`[N, H, W, C]`, row-major): a permuted view, which Graft's kernels read without a copy and
/// burn's operations read as any strided tensor.
pub fn channels_last_tensor(values: Vec<f32>, [n, c, h, w]: [usize; 4]) -> FlexTensor {
    flex_tensor(values, Shape::from([n, h, w, c])).permute(&[0, 3, 1, 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channels_last_tensor_reads_back_in_both_layouts() {
        let values: Vec<f32> = (0..2 * 3 * 4 * 5).map(|v| v as f32).collect();
        let t = channels_last_tensor(values.clone(), [2, 3, 4, 5]);
        assert_eq!(channels_last_f32(&t), Some(&values[..]));
        // Element [n][c][y][x] reads back at ((n·3 + c)·4 + y)·5 + x, and is value
        // ((n·4 + y)·5 + x)·3 + c: [0][1][1][4] at 29 is value 28.
        let nchw = t.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(nchw[29], 28.0);
        assert_eq!(nchw[1], 3.0);
        let plain = flex_tensor(values, Shape::from([2, 3, 4, 5]));
        assert_eq!(channels_last_f32(&plain), None);
    }
}
