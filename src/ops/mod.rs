//! Tensor operations of Graft's own, where burn's generic ones are slow on the CPU: burn backend
//! extensions with kernels for the flex backend (with and without autodiff); other devices use
//! burn's operations.

pub mod batch_norm;
mod conv_kernels;
pub mod depthwise;
mod flex_values;
pub mod relu6;
