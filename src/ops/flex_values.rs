//! Reading and making `f32` tensors of burn's CPU backend, for Graft's own kernels.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// A contiguous copy (or the tensor itself, when already contiguous) of an `f32` tensor, or
/// `None` for another element type.
pub fn contiguous_f32(tensor: &FlexTensor) -> Option<FlexTensor> {
    (tensor.dtype() == DType::F32).then(|| tensor.to_contiguous())
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
