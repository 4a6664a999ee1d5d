//! Drawing a class map on its image: bilinear upsampling to the crop, the viridis colour map
//! (perceptually uniform, readable in grey and by most colour-blind people), and blending.

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

/// The grid resized to `width`×`height` (bilinear, cell centres aligned as in PyTorch's
/// `align_corners=False`), row-major.
pub fn upsample(grid: &[Vec<f32>], width: u32, height: u32) -> Vec<f32> {
    let rows = grid.len();
    let cols = grid.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return vec![0.0; (width * height) as usize];
    }
    let source = |out: u32, size: u32, cells: usize| -> (usize, usize, f32) {
        let pos =
            ((out as f32 + 0.5) * cells as f32 / size as f32 - 0.5).clamp(0.0, (cells - 1) as f32);
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(cells - 1);
        (lo, hi, pos - lo as f32)
    };
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        let (y0, y1, fy) = source(y, height, rows);
        for x in 0..width {
            let (x0, x1, fx) = source(x, width, cols);
            let top = grid[y0][x0] + fx * (grid[y0][x1] - grid[y0][x0]);
            let bottom = grid[y1][x0] + fx * (grid[y1][x1] - grid[y1][x0]);
            out.push(top + fy * (bottom - top));
        }
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
    fn upsampling_keeps_cell_values_at_cell_centres_and_blends_between() {
        let grid = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        let up = upsample(&grid, 4, 4);
        // Pixel (0, 0) is at the first cell's centre or beyond it: the cell's own value.
        assert_eq!(up[0], 0.0);
        assert_eq!(up[3], 1.0);
        assert_eq!(up[12], 1.0);
        // Between the cells, halfway values.
        assert!((up[1] - 0.25).abs() < 1e-6, "{}", up[1]);
        assert!(up.iter().all(|v| (0.0..=1.0).contains(v)));
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
