//! The training loss.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `logits` `[batch, classes]` against class indices `targets` `[batch]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs.gather(1, targets.reshape([batch, 1]));
    picked.mean().neg()
}
