//! Convolution kernels as plain loops over NCHW `f32` slices: a depthwise convolution's
//! inference pass and its two gradients.
//!
//! burn's CPU backend computes a depthwise layer's gradients through its generic grouped
//! convolutions: one small matrix product per channel for the input gradient, one convolution per
//! channel for the weights. Each channel is a single plane, so direct loops are a few times faster
//! (they were about 40 % of an EfficientNet-Lite0 training step).

use burn::tensor::Shape;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

/// burn's options for a convolution with dilation 1; `padding` is `[top, left, bottom, right]`.
pub fn conv_options(stride: usize, padding: [usize; 4], groups: usize) -> ConvOptions<2> {
    let [top, left, bottom, right] = padding;
    ConvOptions::new_with_padding([stride; 2], [(top, bottom), (left, right)], [1, 1], groups)
}

/// Sizes and padding of one convolution (square kernel, dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Rows of zeros above the input.
    pub pad_top: usize,
    /// Columns of zeros left of the input.
    pub pad_left: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Geometry {
    /// The geometry of a call, from the shapes of the input `[N, C, H, W]`, the weight
    /// `[_, _, k, k]` and the output `[N, _, out_h, out_w]`; `padding` is `[top, left, bottom, right]`.
    pub fn from_shapes(
        x: &Shape,
        weight: &Shape,
        output: &Shape,
        stride: usize,
        padding: [usize; 4],
    ) -> Self {
        Self {
            batch: x[0],
            channels: x[1],
            kernel: weight[2],
            stride,
            pad_top: padding[0],
            pad_left: padding[1],
            in_h: x[2],
            in_w: x[3],
            out_h: output[2],
            out_w: output[3],
        }
    }

    /// Output positions `o` (along one axis) whose input index `o * stride + k - pad` lies in
    /// `0..size`, as a half-open range.
    fn valid(&self, k: usize, pad: usize, size: usize, out: usize) -> (usize, usize) {
        let s = self.stride;
        let start = pad.saturating_sub(k).div_ceil(s);
        let end = (size + pad).saturating_sub(k).div_ceil(s).min(out);
        (start, end.max(start))
    }

    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }
}

/// Output values a depthwise inference step computes at once (one AVX-512 register).
const LANES: usize = 16;

/// How [`depthwise_forward`] lays out one padded input plane: each row split into its `stride`
/// phases (the values at columns `m·stride + phase`), so that every tap of a run of outputs
/// reads consecutive values.
struct PhasePlane {
    rows: usize,
    /// Values per phase of a row.
    per_phase: usize,
    /// Where tap `a·k + b` of the run of outputs starting at column 0 of output row 0 reads
    /// (computed once: the phase arithmetic divides by the stride).
    taps: Vec<usize>,
}

impl PhasePlane {
    fn new(g: &Geometry) -> Self {
        let (s, k) = (g.stride, g.kernel);
        let rows = (g.in_h + g.pad_top).max((g.out_h - 1) * s + k);
        // Room for the last run of outputs (padded to whole runs) and its widest tap.
        let runs = g.out_w.div_ceil(LANES) * LANES;
        let per_phase = (runs + (k - 1) / s).max((g.in_w + g.pad_left).div_ceil(s));
        let row = s * per_phase;
        let taps = (0..k * k)
            .map(|t| (t / k) * row + (t % k % s) * per_phase + t % k / s)
            .collect();
        Self {
            rows,
            per_phase,
            taps,
        }
    }

    fn row_len(&self, g: &Geometry) -> usize {
        g.stride * self.per_phase
    }

    /// `x`'s plane placed in `out`. Every plane of one geometry writes the same positions, so a
    /// buffer that started as zeros keeps zeros around each plane it is given.
    fn fill(&self, x: &[f32], out: &mut [f32], g: &Geometry) {
        let (s, row) = (g.stride, self.row_len(g));
        for (h, x_row) in x.chunks_exact(g.in_w).enumerate() {
            let dst = &mut out[(h + g.pad_top) * row..][..row];
            if s == 1 {
                dst[g.pad_left..g.pad_left + g.in_w].copy_from_slice(x_row);
                continue;
            }
            for phase in 0..s {
                // The input columns that land in this phase: every `s`-th from `first`.
                let first = (phase + s - g.pad_left % s) % s;
                if first >= g.in_w {
                    continue;
                }
                let at = phase * self.per_phase + (first + g.pad_left) / s;
                for (d, &v) in dst[at..].iter_mut().zip(x_row[first..].iter().step_by(s)) {
                    *d = v;
                }
            }
        }
    }
}

/// The inference pass: `y[n,c,i,j] = clamp(bias[c] + Σ x[n,c,i·s+a−pad_top, j·s+b−pad_left] ·
/// w[c,a,b])`. `x` is `[N, C, in_h, in_w]`, `weight` `[C, k, k]`, `bias` `[C]`; returns
/// `[N, C, out_h, out_w]`. Each plane is padded into a small buffer first, so every run of
/// outputs sums all its taps in registers without bounds to check.
pub fn depthwise_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    clamp: super::conv::Clamp,
    g: &Geometry,
) -> Vec<f32> {
    let k = g.kernel;
    let layout = PhasePlane::new(g);
    let plane_fn = widest_plane_fn();
    let mut y = vec![0.0f32; g.batch * g.channels * g.out_plane()];
    y.par_chunks_mut(g.out_plane())
        .zip(x.par_chunks(g.in_plane()))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; layout.rows * layout.row_len(g)],
            |padded, (plane, (y, x))| {
                let c = plane % g.channels;
                layout.fill(x, padded, g);
                let plane = Plane {
                    padded,
                    weight: &weight[c * k * k..][..k * k],
                    bias: bias[c],
                    clamp,
                };
                plane_fn(&plane, &layout, y, g);
            },
        );
    y
}

/// One channel of one image for [`depthwise_plane`].
struct Plane<'a> {
    padded: &'a [f32],
    weight: &'a [f32],
    bias: f32,
    clamp: super::conv::Clamp,
}

type PlaneFn = fn(&Plane, &PhasePlane, &mut [f32], &Geometry);

/// [`depthwise_plane`] compiled for the widest vectors this CPU has.
fn widest_plane_fn() -> PlaneFn {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(p: &Plane, l: &PhasePlane, y: &mut [f32], g: &Geometry) {
            depthwise_plane(p, l, y, g);
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(p: &Plane, l: &PhasePlane, y: &mut [f32], g: &Geometry) {
            depthwise_plane(p, l, y, g);
        }
        use super::dense_kernels::{Isa, detect};
        match detect() {
            // SAFETY: the CPU has the instructions each was compiled for.
            Some(Isa::Avx512) => return |p, l, y, g| unsafe { avx512(p, l, y, g) },
            Some(Isa::Avx2) => return |p, l, y, g| unsafe { avx2(p, l, y, g) },
            None => {}
        }
    }
    depthwise_plane
}

/// One output plane `y` from its padded input plane.
#[inline(always)]
fn depthwise_plane(p: &Plane, layout: &PhasePlane, y: &mut [f32], g: &Geometry) {
    let row = layout.row_len(g);
    for (i, y_row) in y.chunks_exact_mut(g.out_w).enumerate() {
        let row_start = i * g.stride * row;
        for j0 in (0..g.out_w).step_by(LANES) {
            let mut acc = [p.bias; LANES];
            let input = &p.padded[row_start + j0..];
            for (&tap, &wv) in layout.taps.iter().zip(p.weight) {
                let values: &[f32; LANES] = input[tap..tap + LANES].try_into().expect("run");
                for l in 0..LANES {
                    acc[l] += values[l] * wv;
                }
            }
            let n = LANES.min(g.out_w - j0);
            let clamped = acc.map(|v| p.clamp.apply(v));
            y_row[j0..j0 + n].copy_from_slice(&clamped[..n]);
        }
    }
}

/// The input gradient: `dx[n,c,h,w] = Σ dy[n,c,i,j] · w[c,a,b]` over `h = i·s + a − pad_top`,
/// `w = j·s + b − pad_left`. `dy` is `[N, C, out_h, out_w]`, `weight` `[C, k, k]`; returns
/// `[N, C, in_h, in_w]`.
pub fn depthwise_input_grad(dy: &[f32], weight: &[f32], g: &Geometry) -> Vec<f32> {
    let k = g.kernel;
    let mut dx = vec![0.0f32; g.batch * g.channels * g.in_plane()];
    dx.par_chunks_mut(g.in_plane())
        .zip(dy.par_chunks(g.out_plane()))
        .enumerate()
        .for_each(|(plane, (dx, dy))| {
            let w = &weight[(plane % g.channels) * k * k..][..k * k];
            for i in 0..g.out_h {
                let dy_row = &dy[i * g.out_w..][..g.out_w];
                for a in 0..k {
                    let Some(h) = (i * g.stride + a).checked_sub(g.pad_top) else {
                        continue;
                    };
                    if h >= g.in_h {
                        continue;
                    }
                    let dx_row = &mut dx[h * g.in_w..][..g.in_w];
                    for b in 0..k {
                        let wv = w[a * k + b];
                        let (j0, j1) = g.valid(b, g.pad_left, g.in_w, g.out_w);
                        if j0 == j1 {
                            // This tap lies in the padding for every output column.
                            continue;
                        }
                        let first = j0 * g.stride + b - g.pad_left;
                        if g.stride == 1 {
                            let dst = &mut dx_row[first..first + (j1 - j0)];
                            for (d, &v) in dst.iter_mut().zip(&dy_row[j0..j1]) {
                                *d += v * wv;
                            }
                        } else {
                            for (n, &v) in dy_row[j0..j1].iter().enumerate() {
                                dx_row[first + n * g.stride] += v * wv;
                            }
                        }
                    }
                }
            }
        });
    dx
}

/// The weight gradient: `dw[c,a,b] = Σ_{n,i,j} dy[n,c,i,j] · x[n,c,i·s+a−pad_top, j·s+b−pad_left]`.
/// `x` is `[N, C, in_h, in_w]`, `dy` `[N, C, out_h, out_w]`; returns `[C, k, k]`.
pub fn depthwise_weight_grad(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let k = g.kernel;
    let per_channel: Vec<Vec<f32>> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let mut dw = vec![0.0f32; k * k];
            for n in 0..g.batch {
                let plane = n * g.channels + c;
                let x = &x[plane * g.in_plane()..][..g.in_plane()];
                let dy = &dy[plane * g.out_plane()..][..g.out_plane()];
                for a in 0..k {
                    let (i0, i1) = g.valid(a, g.pad_top, g.in_h, g.out_h);
                    for b in 0..k {
                        let (j0, j1) = g.valid(b, g.pad_left, g.in_w, g.out_w);
                        if j0 == j1 {
                            continue;
                        }
                        let mut sum = 0.0f32;
                        for i in i0..i1 {
                            let h = i * g.stride + a - g.pad_top;
                            let dy_row = &dy[i * g.out_w + j0..i * g.out_w + j1];
                            let first = h * g.in_w + j0 * g.stride + b - g.pad_left;
                            sum += if g.stride == 1 {
                                dot(dy_row, &x[first..first + dy_row.len()])
                            } else {
                                dy_row
                                    .iter()
                                    .enumerate()
                                    .map(|(n, &v)| v * x[first + n * g.stride])
                                    .sum::<f32>()
                            };
                        }
                        dw[a * k + b] += sum;
                    }
                }
            }
            dw
        })
        .collect();
    per_channel.concat()
}

/// A dot product with eight independent sums, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    let tail: f32 = a[chunks..]
        .iter()
        .zip(&b[chunks..])
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward forward pass, to take gradients of numerically.
    fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
        let k = g.kernel;
        let mut y = vec![0.0; g.batch * g.channels * g.out_plane()];
        for n in 0..g.batch {
            for c in 0..g.channels {
                let plane = n * g.channels + c;
                for i in 0..g.out_h {
                    for j in 0..g.out_w {
                        let mut s = 0.0;
                        for a in 0..k {
                            for b in 0..k {
                                let h = (i * g.stride + a) as isize - g.pad_top as isize;
                                let v = (j * g.stride + b) as isize - g.pad_left as isize;
                                if h >= 0
                                    && v >= 0
                                    && (h as usize) < g.in_h
                                    && (v as usize) < g.in_w
                                {
                                    s += x[plane * g.in_plane() + h as usize * g.in_w + v as usize]
                                        * w[c * k * k + a * k + b];
                                }
                            }
                        }
                        y[plane * g.out_plane() + i * g.out_w + j] = s;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The loss `Σ y · dy` has gradient `input_grad` in x and `weight_grad` in w; both are
    /// linear, so comparing against the forward pass on unit vectors is exact up to rounding.
    fn check(g: Geometry) {
        let k = g.kernel;
        let x = values(g.batch * g.channels * g.in_plane(), 7);
        let w = values(g.channels * k * k, 11);
        let dy = values(g.batch * g.channels * g.out_plane(), 13);
        let loss = |x: &[f32], w: &[f32]| -> f32 {
            forward(x, w, &g).iter().zip(&dy).map(|(a, b)| a * b).sum()
        };
        let dx = depthwise_input_grad(&dy, &w, &g);
        let zeros_x = vec![0.0; x.len()];
        for idx in 0..x.len() {
            let mut e = zeros_x.clone();
            e[idx] = 1.0;
            let expected = loss(&e, &w);
            assert!(
                (dx[idx] - expected).abs() < 1e-4,
                "{g:?} dx[{idx}]: {} vs {expected}",
                dx[idx]
            );
        }
        let dw = depthwise_weight_grad(&x, &dy, &g);
        let zeros_w = vec![0.0; w.len()];
        for idx in 0..w.len() {
            let mut e = zeros_w.clone();
            e[idx] = 1.0;
            let expected = loss(&x, &e);
            assert!(
                (dw[idx] - expected).abs() < 1e-3,
                "{g:?} dw[{idx}]: {} vs {expected}",
                dw[idx]
            );
        }
    }

    fn geometry(
        kernel: usize,
        stride: usize,
        pads: [usize; 4],
        in_h: usize,
        in_w: usize,
    ) -> Geometry {
        let [pad_top, pad_left, pad_bottom, pad_right] = pads;
        Geometry {
            batch: 2,
            channels: 3,
            kernel,
            stride,
            pad_top,
            pad_left,
            in_h,
            in_w,
            out_h: (in_h + pad_top + pad_bottom - kernel) / stride + 1,
            out_w: (in_w + pad_left + pad_right - kernel) / stride + 1,
        }
    }

    #[test]
    fn the_inference_pass_matches_the_straightforward_one() {
        for g in [
            geometry(3, 1, [1, 1, 1, 1], 6, 5),
            geometry(3, 2, [0, 0, 1, 1], 8, 8),
            geometry(5, 2, [1, 1, 2, 2], 9, 8),
            geometry(5, 1, [2, 2, 2, 2], 5, 9),
        ] {
            let x = values(g.batch * g.channels * g.in_plane(), 7);
            let w = values(g.channels * g.kernel * g.kernel, 11);
            let bias = values(g.channels, 3);
            let clamp = super::super::conv::Clamp {
                min: -0.5,
                max: 1.5,
            };
            let y = depthwise_forward(&x, &w, &bias, clamp, &g);
            let expected = forward(&x, &w, &g);
            for (i, (a, e)) in y.iter().zip(&expected).enumerate() {
                let e = (e + bias[(i / g.out_plane()) % g.channels]).clamp(-0.5, 1.5);
                assert!((a - e).abs() < 1e-5, "{g:?} y[{i}]: {a} vs {e}");
            }
        }
    }

    #[test]
    fn gradients_match_the_forward_pass() {
        // MobileNet's symmetric padding, stride 1 and 2.
        check(geometry(3, 1, [1, 1, 1, 1], 6, 5));
        check(geometry(3, 2, [1, 1, 1, 1], 7, 6));
        // TensorFlow "same" padding of EfficientNet-Lite (more at the bottom and right).
        check(geometry(5, 2, [1, 1, 2, 2], 8, 8));
        check(geometry(5, 1, [2, 2, 2, 2], 5, 9));
        // No padding, and a kernel as large as the input.
        check(geometry(3, 1, [0, 0, 0, 0], 4, 4));
        check(geometry(3, 2, [0, 0, 0, 0], 3, 3));
        // Inputs smaller than the kernel (late layers of a small image): most taps fall in the
        // padding.
        check(geometry(5, 2, [2, 2, 2, 2], 1, 1));
        check(geometry(5, 2, [2, 1, 2, 3], 2, 1));
        check(geometry(3, 1, [1, 1, 1, 1], 1, 2));
    }
}
