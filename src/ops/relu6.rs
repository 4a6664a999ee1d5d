//! ReLU6, `min(max(x, 0), 6)`, in one pass each way on the CPU.
//!
//! Built from burn's operations it takes four passes forward (`relu(x) − relu(x − 6)`; burn's
//! `clamp` is slower still) and as many backward; EfficientNet-Lite and MobileNetV2 apply it after
//! almost every convolution.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
};
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

use super::flex_values::{flex_tensor, slice};

/// The operation as a backend extension, implemented for the CPU backend (and autodiff over it).
#[backend_extension(Flex, Autodiff)]
pub trait Relu6Backend: Backend {
    /// `min(max(x, 0), 6)`.
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The input's gradient, from the output `y` and its gradient: `grad` where `0 < y < 6`.
    fn relu6_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

impl Relu6Backend for Flex {
    fn relu6(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let x = x.to_contiguous();
        let mut y = vec![0.0f32; shape.num_elements()];
        y.par_chunks_mut(CHUNK)
            .zip(slice(&x).par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x.clamp(0.0, 6.0);
                }
            });
        flex_tensor(y, shape)
    }

    fn relu6_backward(y: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let shape = grad.shape();
        let (y, grad) = (y.to_contiguous(), grad.to_contiguous());
        let mut dx = vec![0.0f32; shape.num_elements()];
        dx.par_chunks_mut(CHUNK)
            .zip(
                slice(&y)
                    .par_chunks(CHUNK)
                    .zip(slice(&grad).par_chunks(CHUNK)),
            )
            .for_each(|(dx, (y, grad))| {
                for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(grad) {
                    *dx = if y > 0.0 && y < 6.0 { g } else { 0.0 };
                }
            });
        flex_tensor(dx, shape)
    }
}

impl<B: Relu6Backend, C: CheckpointStrategy> Relu6Backend for Autodiff<B, C> {
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Relu6;

        impl<B: Relu6Backend> Backward<B, 1> for Relu6 {
            // The output: the next layer keeps it alive anyway.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                if let [Some(node)] = ops.parents {
                    grads.register::<B>(node.id, B::relu6_backward(ops.state, grad));
                }
            }
        }

        match Relu6.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::relu6(x.primitive().clone());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu6(x.primitive().clone())),
        }
    }

    fn relu6_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::relu6_backward(Self::inner(y), Self::inner(grad)))
    }
}

/// `min(max(x, 0), 6)`: the extension on the CPU backend (`f32`), burn's operations elsewhere.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device() != Device::flex() || x.dtype() != DType::F32 {
        return relu(x.clone()) - relu(x - 6.0);
    }
    Tensor::from_dispatch(<Dispatch as Relu6Backend>::relu6(x.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn clamps_and_passes_the_gradient_only_inside_the_range() {
        let device = Device::flex().autodiff();
        let x =
            Tensor::<2>::from_floats([[-1.0, 0.5, 3.0], [5.9, 6.5, 100.0]], &device).require_grad();
        let y = relu6(x.clone());
        y.clone().into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.0f32, 0.5, 3.0], [5.9, 6.0, 6.0]]),
            Tolerance::absolute(1e-6),
        );
        let weights = Tensor::<2>::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], &device);
        let grads = (y * weights).sum().backward();
        x.grad(&grads)
            .expect("x has a gradient")
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::from([[0.0f32, 2.0, 3.0], [4.0, 0.0, 0.0]]),
                Tolerance::absolute(1e-6),
            );
    }
}
