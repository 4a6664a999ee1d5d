//! Resizing 8-bit RGB images with a separable filter: columns first into floats, then rows.
//!
//! The arithmetic is `image::imageops::resize`'s (the same kernels, support, weights and order of
//! summation, so the same bytes come out), but each output row's and column's weights are
//! computed once instead of once per pixel, and both passes run over contiguous rows of plain
//! numbers instead of through generic per-pixel access. That makes a decode-and-resize several
//! times faster, which every image Graft reads goes through.

use image::RgbImage;

/// The resampling kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Linear interpolation (antialiased when shrinking).
    Triangle,
    /// Catmull-Rom bicubic (antialiased when shrinking).
    CatmullRom,
}

impl Filter {
    fn support(self) -> f32 {
        match self {
            Self::Triangle => 1.0,
            Self::CatmullRom => 2.0,
        }
    }

    fn weight(self, x: f32) -> f32 {
        match self {
            Self::Triangle => {
                if x.abs() < 1.0 {
                    1.0 - x.abs()
                } else {
                    0.0
                }
            }
            Self::CatmullRom => cubic_spline(x, 0.0, 0.5),
        }
    }
}

/// The Mitchell–Netravali family of cubics with parameters `b` and `c`, written as `image`
/// writes it so that the weights are the same to the last bit.
fn cubic_spline(x: f32, b: f32, c: f32) -> f32 {
    let a = x.abs();
    let k = if a < 1.0 {
        (12.0 - 9.0 * b - 6.0 * c) * a.powi(3)
            + (-18.0 + 12.0 * b + 6.0 * c) * a.powi(2)
            + (6.0 - 2.0 * b)
    } else if a < 2.0 {
        (-b - 6.0 * c) * a.powi(3)
            + (6.0 * b + 30.0 * c) * a.powi(2)
            + (-12.0 * b - 48.0 * c) * a
            + (8.0 * b + 24.0 * c)
    } else {
        0.0
    };
    k / 6.0
}

/// For each output index along one axis, the first input index it reads and its weights.
struct Taps {
    first: Vec<usize>,
    /// `weights[offsets[i]..offsets[i + 1]]` belong to output `i`.
    offsets: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    fn new(source: u32, target: u32, filter: Filter) -> Self {
        let ratio = source as f32 / target as f32;
        let scale = ratio.max(1.0);
        let support = filter.support() * scale;
        let mut taps = Self {
            first: Vec::with_capacity(target as usize),
            offsets: vec![0],
            weights: Vec::new(),
        };
        for out in 0..target {
            let centre = (out as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, i64::from(source) - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, i64::from(source));
            let start = taps.weights.len();
            let mut sum = 0.0;
            for i in left..right {
                let w = filter.weight((i as f32 - (centre - 0.5)) / scale);
                taps.weights.push(w);
                sum += w;
            }
            for w in &mut taps.weights[start..] {
                *w /= sum;
            }
            taps.first.push(left as usize);
            taps.offsets.push(taps.weights.len());
        }
        taps
    }

    fn of(&self, out: usize) -> (usize, &[f32]) {
        let weights = &self.weights[self.offsets[out]..self.offsets[out + 1]];
        (self.first[out], weights)
    }
}

/// `image` resized to `width`×`height` with `filter`.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (source_width, source_height) = image.dimensions();
    if source_width == 0 || source_height == 0 {
        return RgbImage::new(width, height);
    }
    if (width, height) == (source_width, source_height) {
        return image.clone();
    }
    let columns = resize_columns(image, height, filter);
    resize_rows(&columns, source_width as usize, width, height, filter)
}

/// Each column resized to `height`: `height` rows of `width × 3` unrounded values.
fn resize_columns(image: &RgbImage, height: u32, filter: Filter) -> Vec<f32> {
    let row_len = image.width() as usize * 3;
    let source = image.as_raw();
    let taps = Taps::new(image.height(), height, filter);
    let mut out = vec![0.0f32; row_len * height as usize];
    for (y, row) in out.chunks_exact_mut(row_len).enumerate() {
        let (first, weights) = taps.of(y);
        for (i, &w) in weights.iter().enumerate() {
            let from = &source[(first + i) * row_len..][..row_len];
            for (sum, &value) in row.iter_mut().zip(from) {
                *sum += f32::from(value) * w;
            }
        }
    }
    out
}

/// `v.round() as u8` for `v` in `[0, 255]` (halves away from zero), without a call to the C
/// library's `roundf`: x86-64's baseline has no rounding instruction, and the call cost a
/// decode-and-resize about a quarter of its time. `v − ⌊v⌋` is exact in `f32` here.
fn round_to_byte(v: f32) -> u8 {
    let whole = v as u8;
    whole + u8::from(v - f32::from(whole) >= 0.5)
}

/// Each row of `columns` (`source_width` pixels) resized to `width`, rounded to bytes.
fn resize_rows(
    columns: &[f32],
    source_width: usize,
    width: u32,
    height: u32,
    filter: Filter,
) -> RgbImage {
    let taps = Taps::new(source_width as u32, width, filter);
    let out_len = width as usize * 3;
    let mut out = vec![0u8; out_len * height as usize];
    let rows = columns.chunks_exact(source_width * 3);
    for (from, to) in rows.zip(out.chunks_exact_mut(out_len)) {
        for (x, pixel) in to.chunks_exact_mut(3).enumerate() {
            let (first, weights) = taps.of(x);
            let mut sum = [0.0f32; 3];
            for (i, &w) in weights.iter().enumerate() {
                let p = &from[(first + i) * 3..][..3];
                for c in 0..3 {
                    sum[c] += p[c] * w;
                }
            }
            for c in 0..3 {
                pixel[c] = round_to_byte(sum[c].clamp(0.0, 255.0));
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("the buffer holds width × height pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_as_round_does() {
        // Every eighth from 0 to 255 and both neighbours of each: the halves and their
        // neighbours are where a rounding shortcut goes wrong.
        for eighth in 0..=2040u32 {
            let v = eighth as f32 / 8.0;
            for x in [v.next_down(), v, v.next_up()] {
                let x = x.clamp(0.0, 255.0);
                assert_eq!(round_to_byte(x), x.round() as u8, "{x}");
            }
        }
        assert_eq!(round_to_byte(f32::NAN.clamp(0.0, 255.0)), 0);
    }
    use image::imageops::{self, FilterType};

    fn noise(width: u32, height: u32, seed: u32) -> RgbImage {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        RgbImage::from_fn(width, height, |_, _| {
            let mut byte = || {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            };
            image::Rgb([byte(), byte(), byte()])
        })
    }

    #[test]
    fn the_bytes_match_image_crate_resizing() {
        let cases = [
            (139, 256, 256, 471),
            (300, 200, 224, 224),
            (57, 91, 224, 224),
            (640, 480, 292, 219),
            (1, 1, 5, 3),
            (7, 1, 2, 9),
            (224, 224, 224, 100),
        ];
        for (seed, &(w, h, nw, nh)) in cases.iter().enumerate() {
            let image = noise(w, h, seed as u32);
            for (ours, theirs) in [
                (Filter::CatmullRom, FilterType::CatmullRom),
                (Filter::Triangle, FilterType::Triangle),
            ] {
                let expected = imageops::resize(&image, nw, nh, theirs);
                let got = resize(&image, nw, nh, ours);
                assert_eq!(got.dimensions(), (nw, nh));
                assert!(
                    got.as_raw() == expected.as_raw(),
                    "{w}×{h} → {nw}×{nh} with {ours:?} differs from image's resize"
                );
            }
        }
    }

    #[test]
    fn an_empty_image_gives_a_blank_one_of_the_size_asked() {
        let empty = RgbImage::new(0, 0);
        assert_eq!(resize(&empty, 4, 3, Filter::Triangle).dimensions(), (4, 3));
    }
}
