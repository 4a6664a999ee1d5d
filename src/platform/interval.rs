//! Confidence intervals for an accuracy: the Wilson score interval, which stays inside [0, 1]
//! and keeps its coverage on the few dozen images a person's validation set holds.

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95 % Wilson score interval for `right` successes out of `n`; `(0, 1)` when `n` is 0.
pub fn wilson95(right: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = right as f64 / n_f;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denominator;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// "87.0 % (95 % CI 83.1–90.2 %, 380 images)".
pub fn describe(right: usize, n: usize) -> String {
    let (lo, hi) = wilson95(right, n);
    let accuracy = if n == 0 { 0.0 } else { right as f64 / n as f64 };
    format!(
        "{:.1} % (95 % CI {:.1}–{:.1} %, {n} images)",
        accuracy * 100.0,
        lo * 100.0,
        hi * 100.0
    )
}

/// [`describe`] for an accuracy known as a share of `n` images (the count of right answers is
/// the share times `n`, rounded).
pub fn describe_share(accuracy: f64, n: usize) -> String {
    describe((accuracy * n as f64).round() as usize, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_wilson_bounds() {
        // Wilson (1927); 17 of 20 gives 0.640–0.948 (e.g. Newcombe 1998, method 3).
        let (lo, hi) = wilson95(17, 20);
        assert!((lo - 0.6396).abs() < 5e-4, "{lo}");
        assert!((hi - 0.9476).abs() < 5e-4, "{hi}");
        // Newcombe 1998, Table I: 81 of 263 gives 0.2553–0.3662.
        let (lo, hi) = wilson95(81, 263);
        assert!((lo - 0.2553).abs() < 5e-4, "{lo}");
        assert!((hi - 0.3662).abs() < 5e-4, "{hi}");
        assert_eq!(wilson95(0, 0), (0.0, 1.0));
        assert!(wilson95(20, 20).1 <= 1.0);
    }
}
