//! Depthwise 2-D convolution with a fast backward pass on the CPU.
//!
//! A burn backend extension: on the flex (CPU) backend, with or without autodiff, the forward pass
//! is burn's own (it already has a depthwise fast path) and the two gradients come from the loops
//! in [`super::conv_kernels`]. On any other device [`depthwise_conv2d`] uses burn's generic
//! convolution.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use super::conv_kernels::{self, Geometry, conv_options};
use super::flex_values::{contiguous_f32, flex_tensor, slice};

/// Stride and padding of a depthwise convolution (square kernel, dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseOptions {
    /// Stride in both directions.
    pub stride: usize,
    /// Padding as `[top, left, bottom, right]`.
    pub padding: [usize; 4],
}

/// burn's options for a depthwise convolution whose weight is `weight` (`[C, 1, k, k]`: `C` groups).
fn options_for(weight: &impl TensorMetadata, stride: usize, padding: [usize; 4]) -> ConvOptions<2> {
    conv_options(stride, padding, weight.shape()[0])
}

/// The operation as a backend extension. Its default bodies are burn's generic convolution and
/// its gradients, correct on any backend; flex overrides the gradients, autodiff the forward pass.
#[backend_extension(Flex, Autodiff)]
pub trait DepthwiseBackend: Backend {
    /// `x` `[N, C, H, W]`, `weight` `[C, 1, k, k]`.
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: [usize; 4],
    ) -> FloatTensor<Self> {
        let options = options_for(&weight, stride, padding);
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient of the loss with respect to `x`, given the output's gradient.
    fn depthwise_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: [usize; 4],
    ) -> FloatTensor<Self> {
        let options = options_for(&weight, stride, padding);
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of the loss with respect to `weight`, given the output's gradient.
    fn depthwise_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        stride: usize,
        padding: [usize; 4],
    ) -> FloatTensor<Self> {
        let options = options_for(&weight, stride, padding);
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

impl DepthwiseBackend for Flex {
    fn depthwise_conv2d_x_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        stride: usize,
        padding: [usize; 4],
    ) -> FlexTensor {
        let (Some(w), Some(dy)) = (contiguous_f32(&weight), contiguous_f32(&output_grad)) else {
            let options = options_for(&weight, stride, padding);
            return Self::conv2d_x_backward(x, weight, output_grad, options);
        };
        let shape = x.shape();
        let g = Geometry::from_shapes(&shape, &weight.shape(), &dy.shape(), stride, padding);
        flex_tensor(
            conv_kernels::depthwise_input_grad(slice(&dy), slice(&w), &g),
            shape,
        )
    }

    fn depthwise_conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        stride: usize,
        padding: [usize; 4],
    ) -> FlexTensor {
        let (Some(xv), Some(dy)) = (contiguous_f32(&x), contiguous_f32(&output_grad)) else {
            let options = options_for(&weight, stride, padding);
            return Self::conv2d_weight_backward(x, weight, output_grad, options);
        };
        let w_shape = weight.shape();
        let g = Geometry::from_shapes(&x.shape(), &w_shape, &dy.shape(), stride, padding);
        flex_tensor(
            conv_kernels::depthwise_weight_grad(slice(&xv), slice(&dy), &g),
            w_shape,
        )
    }
}

impl<B: DepthwiseBackend, C: CheckpointStrategy> DepthwiseBackend for Autodiff<B, C> {
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: [usize; 4],
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct DepthwiseConv2d;

        impl<B: DepthwiseBackend> Backward<B, 2> for DepthwiseConv2d {
            type State = (NodeId, NodeId, usize, [usize; 4]);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, stride, padding) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
                if let Some(node) = node_x {
                    let dx = B::depthwise_conv2d_x_grad(
                        x.clone(),
                        weight.clone(),
                        grad.clone(),
                        stride,
                        padding,
                    );
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_weight {
                    let dw = B::depthwise_conv2d_weight_grad(x, weight, grad, stride, padding);
                    grads.register::<B>(node.id, dw);
                }
            }
        }

        match DepthwiseConv2d
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output = B::depthwise_conv2d(
                    x.primitive().clone(),
                    weight.primitive().clone(),
                    stride,
                    padding,
                );
                prep.finish((x_state, weight_state, stride, padding), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::depthwise_conv2d(
                x.primitive().clone(),
                weight.primitive().clone(),
                stride,
                padding,
            )),
        }
    }
}

/// A depthwise convolution (`weight` `[C, 1, k, k]`, one kernel per channel of `x`), through the
/// extension on the CPU backend and burn's generic convolution elsewhere.
pub fn depthwise_conv2d(x: Tensor<4>, weight: Tensor<4>, options: DepthwiseOptions) -> Tensor<4> {
    if x.device() != Device::flex() {
        let burn_options = conv_options(options.stride, options.padding, weight.dims()[0]);
        return burn::tensor::module::conv2d(x, weight, None, burn_options);
    }
    let output = <Dispatch as DepthwiseBackend>::depthwise_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options.stride,
        options.padding,
    );
    Tensor::from_dispatch(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// Output, input gradient and weight gradient of `sum(conv(x, w) · probe)`.
    fn run(
        depthwise: bool,
        x: &Tensor<4>,
        w: &Tensor<4>,
        probe: &Tensor<4>,
        options: DepthwiseOptions,
    ) -> [TensorData; 3] {
        let x = x.clone().require_grad();
        let w = w.clone().require_grad();
        let y = if depthwise {
            depthwise_conv2d(x.clone(), w.clone(), options)
        } else {
            let burn_options = conv_options(options.stride, options.padding, w.dims()[0]);
            burn::tensor::module::conv2d(x.clone(), w.clone(), None, burn_options)
        };
        let grads = (y.clone() * probe.clone()).sum().backward();
        let dx = x.grad(&grads).expect("x has a gradient");
        let dw = w.grad(&grads).expect("w has a gradient");
        [y.into_data(), dx.into_data(), dw.into_data()]
    }

    #[test]
    fn matches_burns_convolution_and_its_gradients() {
        let device = Device::flex().autodiff();
        let cases = [
            (
                3,
                DepthwiseOptions {
                    stride: 1,
                    padding: [1; 4],
                },
            ),
            (
                3,
                DepthwiseOptions {
                    stride: 2,
                    padding: [1; 4],
                },
            ),
            (
                5,
                DepthwiseOptions {
                    stride: 2,
                    padding: [1, 1, 2, 2],
                },
            ),
            (
                5,
                DepthwiseOptions {
                    stride: 1,
                    padding: [2; 4],
                },
            ),
        ];
        for (kernel, options) in cases {
            let x = Tensor::<4>::random([2, 4, 11, 9], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random(
                [4, 1, kernel, kernel],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let reference = run(
                false,
                &x,
                &w,
                &Tensor::zeros([1, 1, 1, 1], &device),
                options,
            );
            let out_shape = reference[0].shape().clone();
            let probe = Tensor::<4>::random(
                [out_shape[0], out_shape[1], out_shape[2], out_shape[3]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let expected = run(false, &x, &w, &probe, options);
            let actual = run(true, &x, &w, &probe, options);
            for (what, (a, e)) in ["output", "x gradient", "weight gradient"]
                .iter()
                .zip(actual.iter().zip(&expected))
            {
                assert_eq!(
                    a.shape(),
                    e.shape(),
                    "{what} shape, kernel {kernel}, {options:?}"
                );
                a.assert_approx_eq::<f32>(e, burn::tensor::Tolerance::absolute(1e-4));
            }
        }
    }

    #[test]
    fn frozen_weights_still_pass_the_gradient_to_the_input() {
        let device = Device::flex().autodiff();
        let options = DepthwiseOptions {
            stride: 2,
            padding: [1; 4],
        };
        let x = Tensor::<4>::random([1, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let w = Tensor::<4>::random([3, 1, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let grads = depthwise_conv2d(x.clone(), w.clone(), options)
            .sum()
            .backward();
        assert!(x.grad(&grads).is_some());
        assert!(w.grad(&grads).is_none());
    }
}
