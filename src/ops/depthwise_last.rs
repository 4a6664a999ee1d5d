//! A depthwise convolution's inference pass over channels-last (NHWC) values.
//!
//! A frozen MBConv block's expansion writes its output channels-last (see
//! [`super::folded::FoldSpec::output`]) and its projection reads channels-last. Here the depthwise
//! convolution between them reads and writes that layout too, so the block needs no
//! transposition. Each output pixel's channels are contiguous, as are each tap's weights over
//! the channels, so the sum over taps runs along the channels in vector registers.

use rayon::prelude::*;

use super::conv::Clamp;
use super::conv_kernels::Geometry;

/// Weights `[C, 1, k, k]` as `[k·k][C]`: each tap's weights over the channels side by side.
pub fn taps_by_channel(weight: &[f32], channels: usize, kernel: usize) -> Vec<f32> {
    let taps = kernel * kernel;
    let mut out = vec![0.0f32; weight.len()];
    for (c, w) in weight.chunks_exact(taps).enumerate().take(channels) {
        for (t, &v) in w.iter().enumerate() {
            out[t * channels + c] = v;
        }
    }
    out
}

/// `y[n, i, j, c] = clamp(bias[c] + Σ x[n, i·s + a − pad_top, j·s + b − pad_left, c] ·
/// taps[a·k + b][c])` over the taps inside the input. `x` is `[N, in_h, in_w, C]`, `taps` as
/// [`taps_by_channel`] gives them; returns `[N, out_h, out_w, C]`. One output row per task.
/// `None` where the CPU has neither AVX-512 nor AVX2 with FMA.
pub fn forward(
    x: &[f32],
    taps: &[f32],
    bias: &[f32],
    clamp: Clamp,
    g: &Geometry,
) -> Option<Vec<f32>> {
    let row_fn = widest_row_fn()?;
    let c = g.channels;
    let (image, row) = (g.in_h * g.in_w * c, g.out_w * c);
    assert!(x.len() >= g.batch * image && taps.len() >= g.kernel * g.kernel * c);
    assert_eq!(bias.len(), c);
    let mut y = vec![0.0f32; g.batch * g.out_h * row];
    if row == 0 {
        return Some(y);
    }
    y.par_chunks_mut(row)
        .enumerate()
        .for_each(|(index, y_row)| {
            let (n, i) = (index / g.out_h, index % g.out_h);
            let args = Row {
                x: &x[n * image..][..image],
                taps,
                bias,
                clamp,
                row: i,
            };
            row_fn(&args, y_row, g);
        });
    Some(y)
}

/// What one output row reads.
struct Row<'a> {
    /// One image, channels-last.
    x: &'a [f32],
    taps: &'a [f32],
    bias: &'a [f32],
    clamp: Clamp,
    /// The output row.
    row: usize,
}

type RowFn = fn(&Row, &mut [f32], &Geometry);

/// [`output_row`] compiled for the widest vectors this CPU has, with fused multiply-adds.
fn widest_row_fn() -> Option<RowFn> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(r: &Row, y: &mut [f32], g: &Geometry) {
            output_row(r, y, g);
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(r: &Row, y: &mut [f32], g: &Geometry) {
            output_row(r, y, g);
        }
        use super::dense_kernels::{Isa, detect};
        match detect() {
            // SAFETY: the CPU has the instructions each was compiled for.
            Some(Isa::Avx512) => Some(|r, y, g| unsafe { avx512(r, y, g) }),
            Some(Isa::Avx2) => Some(|r, y, g| unsafe { avx2(r, y, g) }),
            None => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The taps `t` whose input index `o·stride + t − pad` lies in `0..size`.
fn inside(
    o: usize,
    stride: usize,
    pad: usize,
    size: usize,
    kernel: usize,
) -> std::ops::Range<usize> {
    let start = pad.saturating_sub(o * stride).min(kernel);
    let end = (size + pad).saturating_sub(o * stride).min(kernel);
    start..end.max(start)
}

/// Channels summed at once: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// One output row: for each pixel, each run of [`LANES`] channels starts at the bias and adds
/// its taps in registers; the channels past the last whole run one by one.
#[inline(always)]
fn output_row(r: &Row, y_row: &mut [f32], g: &Geometry) {
    let (c, k, s) = (g.channels, g.kernel, g.stride);
    let rows = inside(r.row, s, g.pad_top, g.in_h, k);
    let whole = c - c % LANES;
    // Where each tap of a pixel reads: its input pixel and its weights.
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(k * k);
    for (j, out) in y_row.chunks_exact_mut(c).enumerate() {
        taps.clear();
        for a in rows.clone() {
            let input_row = r.row * s + a - g.pad_top;
            for b in inside(j, s, g.pad_left, g.in_w, k) {
                let pixel = input_row * g.in_w + j * s + b - g.pad_left;
                taps.push((pixel * c, (a * k + b) * c));
            }
        }
        // Four registers at a time where there are four: each sum is a chain of dependent
        // multiply-adds, and four chains keep the unit busy while one waits.
        let mut c0 = 0;
        while c0 < whole {
            if c0 + 4 * LANES <= whole {
                let sum = sum_run::<{ 4 * LANES }>(r, &taps, c0);
                out[c0..c0 + 4 * LANES].copy_from_slice(&sum);
                c0 += 4 * LANES;
            } else {
                out[c0..c0 + LANES].copy_from_slice(&sum_run::<LANES>(r, &taps, c0));
                c0 += LANES;
            }
        }
        for (ch, out) in out.iter_mut().enumerate().skip(whole) {
            let sum = taps.iter().fold(r.bias[ch], |acc, &(x_at, w_at)| {
                r.x[x_at + ch].mul_add(r.taps[w_at + ch], acc)
            });
            *out = r.clamp.apply(sum);
        }
    }
}

/// Channels `c0..c0 + W` of one pixel whose `taps` read as [`output_row`] lists them, clamped.
#[inline(always)]
fn sum_run<const W: usize>(r: &Row, taps: &[(usize, usize)], c0: usize) -> [f32; W] {
    let mut acc: [f32; W] = run(r.bias, c0);
    for &(x_at, w_at) in taps {
        let (x, w): ([f32; W], [f32; W]) = (run(r.x, x_at + c0), run(r.taps, w_at + c0));
        for l in 0..W {
            acc[l] = x[l].mul_add(w[l], acc[l]);
        }
    }
    acc.map(|v| r.clamp.apply(v))
}

/// The `W` values of `values` from `at`.
#[inline(always)]
fn run<const W: usize>(values: &[f32], at: usize) -> [f32; W] {
    values[at..at + W].try_into().expect("a whole run")
}

#[cfg(test)]
mod tests {
    use super::super::conv_kernels;
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(seed * 97)) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    /// `[N, C, H, W]` values as `[N, H, W, C]`.
    fn last(x: &[f32], [_, c, h, w]: [usize; 4]) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        for (i, &v) in x.iter().enumerate() {
            let (img, ch, p) = (i / (c * h * w), i / (h * w) % c, i % (h * w));
            out[(img * h * w + p) * c + ch] = v;
        }
        out
    }

    #[test]
    fn matches_the_channels_first_kernel() {
        if widest_row_fn().is_none() {
            eprintln!("neither AVX-512 nor AVX2 on this CPU: skipped");
            return;
        }
        // (batch, channels, side, kernel, stride, padding [top, left, bottom, right])
        let cases = [
            (2, 32, 9, 3, 1, [1, 1, 1, 1]),
            (1, 48, 11, 5, 2, [1, 1, 2, 2]),
            (1, 16, 7, 3, 2, [0, 0, 1, 1]),
            (1, 24, 6, 3, 1, [1, 1, 1, 1]),
        ];
        for (batch, c, side, k, s, padding) in cases {
            let out = (side + padding[0] + padding[2] - k) / s + 1;
            let g = Geometry {
                batch,
                channels: c,
                kernel: k,
                stride: s,
                pad_top: padding[0],
                pad_left: padding[1],
                in_h: side,
                in_w: side,
                out_h: out,
                out_w: out,
            };
            let x = values(batch * c * side * side, 1);
            let w = values(c * k * k, 2);
            let bias = values(c, 3);
            let expected = conv_kernels::depthwise_forward(&x, &w, &bias, Clamp::RELU6, &g);
            let taps = taps_by_channel(&w, c, k);
            let x_last = last(&x, [batch, c, side, side]);
            let y = forward(&x_last, &taps, &bias, Clamp::RELU6, &g).unwrap();
            let expected = last(&expected, [batch, c, out, out]);
            let worst = y
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{g:?}: {worst}");
        }
    }
}
