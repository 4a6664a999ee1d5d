//! Tensor operations of Graft's own, where burn's generic ones are slow on the CPU: burn backend
//! extensions with kernels for the flex backend (with and without autodiff); other devices use
//! burn's operations.

pub mod batch_norm;
pub mod conv;
mod conv_kernels;
#[cfg(target_arch = "x86_64")]
mod dense_kernels;
mod depthwise_last;
mod flex_values;
pub mod folded;
pub mod pool;
pub mod relu6;
