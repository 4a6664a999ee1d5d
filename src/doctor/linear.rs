//! A linear softmax head on fixed features, and stratified k-fold cross-validation of it: every
//! image gets class probabilities from a head that never saw it.

use super::duplicates::dot;
use crate::data::rng::Rng;

/// Gradient steps per fold.
const STEPS: usize = 300;
/// Learning rate of the (Adam) steps, on standardised features.
const LR: f32 = 0.01;
/// L2 penalty on the weights.
const WEIGHT_DECAY: f32 = 0.1;

/// A trained linear head over standardised features.
struct Head {
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// `[classes][dims]`.
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

fn softmax_in_place(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    for l in logits.iter_mut() {
        *l /= sum;
    }
}

impl Head {
    fn standardise(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((v, m), s)| (v - m) * s)
            .collect()
    }

    fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let z = self.standardise(x);
        let mut logits: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| b + dot(w, &z))
            .collect();
        softmax_in_place(&mut logits);
        logits
    }

    /// Full-batch Adam on the cross-entropy of `rows` (indices into `features`).
    fn fit(features: &[Vec<f32>], labels: &[usize], rows: &[usize], classes: usize) -> Self {
        let dims = features[0].len();
        let n = rows.len().max(1) as f32;
        let mut mean = vec![0f32; dims];
        for &r in rows {
            for (m, v) in mean.iter_mut().zip(&features[r]) {
                *m += v / n;
            }
        }
        let mut var = vec![0f32; dims];
        for &r in rows {
            for ((s, v), m) in var.iter_mut().zip(&features[r]).zip(&mean) {
                *s += (v - m) * (v - m) / n;
            }
        }
        let scale = var.iter().map(|v| 1.0 / (v.sqrt() + 1e-6)).collect();
        let mut head = Self {
            mean,
            scale,
            weights: vec![vec![0.0; dims]; classes],
            bias: vec![0.0; classes],
        };
        let z: Vec<Vec<f32>> = rows
            .iter()
            .map(|&r| head.standardise(&features[r]))
            .collect();
        let mut adam = Adam::new(classes * (dims + 1));
        let mut grad = vec![0f32; classes * (dims + 1)];
        for _ in 0..STEPS {
            grad.fill(0.0);
            for (x, &r) in z.iter().zip(rows) {
                let mut p: Vec<f32> = head
                    .weights
                    .iter()
                    .zip(&head.bias)
                    .map(|(w, b)| b + dot(w, x))
                    .collect();
                softmax_in_place(&mut p);
                p[labels[r]] -= 1.0;
                for (c, pc) in p.iter().enumerate() {
                    let g = &mut grad[c * (dims + 1)..(c + 1) * (dims + 1)];
                    for (gi, xi) in g[..dims].iter_mut().zip(x) {
                        *gi += pc * xi / n;
                    }
                    g[dims] += pc / n;
                }
            }
            for c in 0..classes {
                for d in 0..dims {
                    grad[c * (dims + 1) + d] += WEIGHT_DECAY * head.weights[c][d];
                }
            }
            let step = adam.step(&grad);
            for c in 0..classes {
                for d in 0..dims {
                    head.weights[c][d] -= step[c * (dims + 1) + d];
                }
                head.bias[c] -= step[c * (dims + 1) + dims];
            }
        }
        head
    }
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, grad: &[f32]) -> Vec<f32> {
        let (b1, b2) = (0.9f32, 0.999f32);
        self.t += 1;
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        grad.iter()
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
            .map(|(g, (m, v))| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                LR * (*m / c1) / ((*v / c2).sqrt() + 1e-8)
            })
            .collect()
    }
}

/// Seeded stratified folds: each class's images dealt round-robin after a shuffle.
pub fn stratified_folds(labels: &[usize], classes: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed, 23);
    let mut fold_of = vec![0; labels.len()];
    for class in 0..classes {
        let mut of_class: Vec<usize> = (0..labels.len()).filter(|i| labels[*i] == class).collect();
        rng.shuffle(&mut of_class);
        for (k, i) in of_class.into_iter().enumerate() {
            fold_of[i] = k % folds.max(1);
        }
    }
    fold_of
}

/// How many of the `test` rows a head fitted on the `train` rows classifies right.
pub fn held_out_correct(
    features: &[Vec<f32>],
    labels: &[usize],
    train: &[usize],
    test: &[usize],
    classes: usize,
) -> usize {
    if train.is_empty() {
        return 0;
    }
    let head = Head::fit(features, labels, train, classes);
    test.iter()
        .filter(|&&i| {
            let p = head.probabilities(&features[i]);
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(c, _)| c);
            best == labels[i]
        })
        .count()
}

/// Out-of-fold class probabilities of every image, from `folds` heads each trained on the other
/// folds.
pub fn out_of_fold(
    features: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    folds: usize,
    seed: u64,
) -> Vec<Vec<f32>> {
    use rayon::prelude::*;
    let fold_of = stratified_folds(labels, classes, folds, seed);
    let per_fold: Vec<Vec<(usize, Vec<f32>)>> = (0..folds)
        .into_par_iter()
        .map(|fold| {
            let train: Vec<usize> = (0..features.len())
                .filter(|i| fold_of[*i] != fold)
                .collect();
            let held: Vec<usize> = (0..features.len())
                .filter(|i| fold_of[*i] == fold)
                .collect();
            if train.is_empty() || held.is_empty() {
                return Vec::new();
            }
            let head = Head::fit(features, labels, &train, classes);
            held.into_iter()
                .map(|i| (i, head.probabilities(&features[i])))
                .collect()
        })
        .collect();
    let mut probabilities = vec![Vec::new(); features.len()];
    for (i, p) in per_fold.into_iter().flatten() {
        probabilities[i] = p;
    }
    probabilities
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_clusters_are_classified_out_of_fold() {
        let mut rng = Rng::new(1, 1);
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for i in 0..60 {
            let class = i % 3;
            let mut x: Vec<f32> = (0..8).map(|_| rng.next_f64() as f32 * 0.5).collect();
            x[class] += 3.0;
            features.push(x);
            labels.push(class);
        }
        let folds = stratified_folds(&labels, 3, 5, 0);
        for f in 0..5 {
            assert_eq!(folds.iter().filter(|k| **k == f).count(), 12);
        }
        let p = out_of_fold(&features, &labels, 3, 5, 0);
        let right = p
            .iter()
            .zip(&labels)
            .filter(|(p, l)| {
                p.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap()
                    .0
                    == **l
            })
            .count();
        assert_eq!(right, 60);
    }
}
