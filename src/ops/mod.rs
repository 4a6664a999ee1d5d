//! Tensor operations of Graft's own, where burn's generic ones are slow.

pub mod depthwise;
mod depthwise_kernels;
