//! The training loss.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::config::ClassBalance;

/// Mean cross-entropy of `logits` `[batch, classes]` against class indices `targets` `[batch]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs.gather(1, targets.reshape([batch, 1]));
    picked.mean().neg()
}

/// Cross-entropy with each image's term weighted by its class's weight and the sum divided by
/// the batch's total weight (PyTorch's `CrossEntropyLoss(weight=…)`).
pub fn weighted_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    class_weights: &[f32],
) -> Tensor<1> {
    let device = logits.device();
    let [batch, classes] = logits.dims();
    let weights = Tensor::<1>::from_data(
        TensorData::new(class_weights[..classes].to_vec(), [classes]),
        &device,
    );
    let per_image = weights.select(0, targets.clone());
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs
        .gather(1, targets.reshape([batch, 1]))
        .reshape([batch]);
    (picked * per_image.clone()).sum().neg() / per_image.sum()
}

/// Each class's loss weight under `balance` for a training set with `counts` images per class:
/// `images / (classes × count)`, so that every class weighs the same; `None` when every image
/// counts the same.
pub fn class_weights(balance: ClassBalance, counts: &[usize]) -> Option<Vec<f32>> {
    let largest = counts.iter().copied().max().unwrap_or(0) as f64;
    let smallest = counts.iter().copied().min().unwrap_or(0).max(1) as f64;
    let lopsided = largest / smallest >= ClassBalance::AUTO_RATIO;
    match balance {
        ClassBalance::Off => None,
        ClassBalance::Auto if !lopsided => None,
        ClassBalance::Auto | ClassBalance::WeightedLoss => {
            let total: usize = counts.iter().sum();
            let k = counts.len() as f64;
            Some(
                counts
                    .iter()
                    .map(|&c| (total as f64 / (k * c.max(1) as f64)) as f32)
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn weighted_loss_matches_its_definition() {
        let device = Device::flex();
        let logits = [[2.0f32, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 3.0, 0.0]];
        let targets = [0i64, 2, 2];
        let weights = [1.0f32, 2.0, 0.5];
        let x = Tensor::<2>::from_data(TensorData::new(logits.concat(), [3, 3]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [3]), &device);
        let got: f32 = weighted_cross_entropy(x, y, &weights).into_scalar();
        let (mut sum, mut norm) = (0.0f64, 0.0f64);
        for (row, &t) in logits.iter().zip(&targets) {
            let lse = row.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
            let w = weights[t as usize] as f64;
            sum += w * (lse - row[t as usize] as f64);
            norm += w;
        }
        assert!(
            (got as f64 - sum / norm).abs() < 1e-5,
            "{got} vs {}",
            sum / norm
        );
    }

    #[test]
    fn weights_even_out_the_classes() {
        assert_eq!(class_weights(ClassBalance::Off, &[10, 30]), None);
        assert_eq!(class_weights(ClassBalance::Auto, &[10, 29]), None);
        assert_eq!(
            class_weights(ClassBalance::Auto, &[10, 30]),
            class_weights(ClassBalance::WeightedLoss, &[10, 30])
        );
        let w = class_weights(ClassBalance::WeightedLoss, &[10, 30]).unwrap();
        assert_eq!(w, [2.0, 2.0 / 3.0]);
        // Each class's total weight is the same.
        assert!((w[0] * 10.0 - w[1] * 30.0).abs() < 1e-5);
    }
}
