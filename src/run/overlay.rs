//! Drawing a class map on its image: smooth (cubic B-spline) upsampling to the crop, the
//! viridis colour map (perceptually uniform, readable in grey and by most colour-blind people),
//! and blending.

use image::RgbImage;

/// Viridis at nine evenly spaced points (matplotlib's values), interpolated in between.
const VIRIDIS: [[f32; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [72.0, 40.0, 120.0],
    [62.0, 74.0, 137.0],
    [49.0, 104.0, 142.0],
    [38.0, 130.0, 142.0],
    [31.0, 158.0, 137.0],
    [53.0, 183.0, 121.0],
    [109.0, 205.0, 89.0],
    [253.0, 231.0, 37.0],
];

/// Opacity of the map over the image unless the user chooses another.
pub const DEFAULT_OPACITY: f32 = 0.5;

/// The viridis colour of `t` in `[0, 1]` (clamped).
pub fn viridis(t: f32) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f32;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + f * (b[c] - a[c])).round() as u8)
}

/// The cells that a cubic B-spline at `pos` (in cell units, cell `i`'s centre at `i`) weighs,
/// with their weights (non-negative; cells past the edge, which hold no evidence, are left
/// out).
fn spline_taps(pos: f32, cells: usize) -> Vec<(usize, f32)> {
    let base = pos.floor();
    let t = pos - base;
    let weights = [
        (1.0 - t).powi(3) / 6.0,
        (4.0 - 6.0 * t * t + 3.0 * t.powi(3)) / 6.0,
        (1.0 + 3.0 * t + 3.0 * t * t - 3.0 * t.powi(3)) / 6.0,
        t.powi(3) / 6.0,
    ];
    (0..4)
        .filter_map(|k| {
            let cell = base as i64 - 1 + k as i64;
            (0..cells as i64)
                .contains(&cell)
                .then_some((cell as usize, weights[k]))
        })
        .collect()
}

/// The grid resized to `width`×`height`, row-major, as a smooth surface: a cubic B-spline
/// with the cells' values as its control points (cell centres aligned as in PyTorch's
/// `align_corners=False`, nothing past the edges), scaled so that its peak is 1.
///
/// The cells are samples of heavily overlapping receptive fields, so a saturated 3×3 patch
/// is one blob, not nine equal candidates; the spline peaks at the middle of such a patch,
/// where bilinear interpolation would peak at whichever cell happens to be a hair higher.
pub fn upsample(grid: &[Vec<f32>], width: u32, height: u32) -> Vec<f32> {
    let rows = grid.len();
    let cols = grid.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return vec![0.0; (width * height) as usize];
    }
    let taps = |size: u32, cells: usize| -> Vec<Vec<(usize, f32)>> {
        (0..size)
            .map(|out| spline_taps((out as f32 + 0.5) * cells as f32 / size as f32 - 0.5, cells))
            .collect()
    };
    let (row_taps, col_taps) = (taps(height, rows), taps(width, cols));
    // Columns first (rows × width), then rows.
    let across: Vec<Vec<f32>> = grid
        .iter()
        .map(|row| {
            col_taps
                .iter()
                .map(|t| t.iter().map(|&(c, w)| w * row[c]).sum())
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity((width * height) as usize);
    for t in &row_taps {
        out.extend(
            (0..width as usize).map(|x| t.iter().map(|&(r, w)| w * across[r][x]).sum::<f32>()),
        );
    }
    let peak = out.iter().copied().fold(0f32, f32::max);
    if peak > 0.0 && peak.is_finite() {
        out.iter_mut()
            .for_each(|v| *v = (*v / peak).clamp(0.0, 1.0));
    }
    out
}

/// The map upsampled to `width`×`height` and coloured with viridis.
pub fn heat_image(grid: &[Vec<f32>], width: u32, height: u32) -> RgbImage {
    let values = upsample(grid, width, height);
    let mut out = RgbImage::new(width, height);
    for (pixel, v) in out.pixels_mut().zip(values) {
        pixel.0 = viridis(v);
    }
    out
}

/// `crop` with the map blended over it: `(1 − opacity) · pixel + opacity · viridis(map)`.
pub fn overlay(crop: &RgbImage, grid: &[Vec<f32>], opacity: f32) -> RgbImage {
    let (w, h) = crop.dimensions();
    let heat = heat_image(grid, w, h);
    let alpha = opacity.clamp(0.0, 1.0);
    let mut out = crop.clone();
    for (pixel, colour) in out.pixels_mut().zip(heat.pixels()) {
        for c in 0..3 {
            let blended = (1.0 - alpha) * f32::from(pixel[c]) + alpha * f32::from(colour[c]);
            pixel[c] = blended.round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_runs_from_purple_to_yellow_and_brightens() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(viridis(2.0), viridis(1.0));
        let luma = |c: [u8; 3]| 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
        let steps: Vec<f32> = (0..=20).map(|i| luma(viridis(i as f32 / 20.0))).collect();
        assert!(steps.windows(2).all(|w| w[1] > w[0]), "{steps:?}");
    }

    #[test]
    fn the_spline_weights_are_a_partition_of_unity_inside_the_grid() {
        for pos in [1.0, 1.25, 1.5, 1.99, 4.4] {
            let taps = spline_taps(pos, 7);
            let sum: f32 = taps.iter().map(|t| t.1).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{pos}: {sum}");
            assert!(taps.iter().all(|t| t.1 >= 0.0));
        }
        // Near the edge the cells past it are left out, so the surface falls off there.
        let edge = spline_taps(-0.4, 7);
        assert!(edge.iter().all(|t| t.0 <= 1), "{edge:?}");
        assert!(edge.iter().map(|t| t.1).sum::<f32>() < 0.9);
    }

    #[test]
    fn upsampling_peaks_in_the_middle_of_a_flat_patch() {
        // A 3×3 patch, one cell a hair higher at its corner: the surface peaks at the patch's
        // middle cell, not at the corner.
        let mut grid = vec![vec![0.0f32; 7]; 7];
        for row in &mut grid[1..4] {
            row[2..5].iter_mut().for_each(|v| *v = 0.97);
        }
        grid[1][2] = 1.0;
        let up = upsample(&grid, 70, 70);
        let at = up
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| (i / 70, i % 70))
            .unwrap();
        assert!(
            (20..30).contains(&at.0) && (30..40).contains(&at.1),
            "{at:?}"
        );
        assert!(up.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!((up.iter().copied().fold(0f32, f32::max) - 1.0).abs() < 1e-6);
        // An empty map stays empty.
        assert!(
            upsample(&vec![vec![0.0; 3]; 3], 9, 9)
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn opacity_zero_keeps_the_image_and_one_shows_only_the_map() {
        let crop = RgbImage::from_pixel(8, 8, image::Rgb([10, 200, 30]));
        let grid = vec![vec![1.0; 2]; 2];
        assert_eq!(overlay(&crop, &grid, 0.0), crop);
        let full = overlay(&crop, &grid, 1.0);
        assert_eq!(full.get_pixel(3, 3).0, viridis(1.0));
    }
}
