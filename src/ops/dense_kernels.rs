//! A dense convolution (one group, dilation 1) and its two gradients as register-tiled AVX-512
//! (or AVX2) loops over channels-last (NHWC) copies of the tensors.
//!
//! burn's CPU backend runs a convolution as im2col plus a general matrix product, and its
//! gradients through a transposed convolution and a convolution with batch and channels swapped;
//! at ResNet-18's shapes these reach 15–120 GFLOP/s on this project's 2-core machine, where
//! PyTorch (oneDNN) reaches 300–450. Here each output tile is a block of registers (with
//! AVX-512 14 pixels by 32 channels, 12 taps by 32 channels for the weight gradient; with AVX2 6
//! by 16) that accumulates its sum without an im2col buffer:
//! - forward: `y[p][o] = Σ_{kh, kw, i} x[p·s + (kh, kw)][i] · w[kh][kw][i][o]`;
//! - weight gradient: `dw[kh][kw][i][o] = Σ_p x[p·s + (kh, kw)][i] · dy[p][o]`;
//! - input gradient: `dx[p·s + (kh, kw)][i] += Σ_o dy[p][o] · w[kh][kw][i][o]`, scattered.
//!
//! In channels-last layout the taps `(kw, i)` of one kernel row are contiguous, so they form one
//! index `j = kw·C + i` of length `kw·C`. The input is copied with its zero padding, so no loop
//! checks bounds.

use std::arch::x86_64::{
    __m256, __m256i, __m512, __m512i, _mm_load_ss, _mm_store_ss, _mm256_add_ps,
    _mm256_broadcastss_ps, _mm256_fmadd_ps, _mm256_i32gather_ps, _mm256_loadu_ps,
    _mm256_loadu_si256, _mm256_setzero_ps, _mm256_storeu_ps, _mm512_add_ps, _mm512_broadcastss_ps,
    _mm512_fmadd_ps, _mm512_i32gather_ps, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use rayon::prelude::*;

use super::conv::Clamp;
pub use super::flex_values::ImageLayout;

/// Channels the kernels vectorise must be a multiple of this: one AVX-512 register, two AVX2 ones.
const CHANNEL_MULTIPLE: usize = 16;

/// The vector instructions the kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512: 16 lanes, 32 registers.
    Avx512,
    /// AVX2 with FMA: 8 lanes, 16 registers.
    Avx2,
}

/// The best instruction set this CPU has for the kernels, if any; callers use burn's convolution
/// where it has none.
pub fn detect() -> Option<Isa> {
    if std::arch::is_x86_feature_detected!("avx512f") {
        Some(Isa::Avx512)
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        Some(Isa::Avx2)
    } else {
        None
    }
}

/// Whether this CPU runs the kernels.
pub fn available() -> bool {
    detect().is_some()
}

/// Whether `channels` fill the AVX-512 tiles two registers wide (otherwise one register wide).
fn two_avx512_registers(channels: usize) -> bool {
    channels.is_multiple_of(32)
}

/// Whether `channels` fill whole registers, as the kernels' vectorised channels must.
pub fn whole_registers(channels: usize) -> bool {
    channels > 0 && channels.is_multiple_of(CHANNEL_MULTIPLE)
}

/// One instruction set's vector operations. The kernels are generic over it and always inlined
/// into entry points compiled for that instruction set ([`avx512`], [`avx2`]).
trait Vector {
    /// A register of floats.
    type V: Copy;
    /// A register of lane offsets.
    type Offsets: Copy;
    /// Floats in a register.
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a · b + c`.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `[0, stride, 2·stride, …]`.
    unsafe fn lane_offsets(stride: i32) -> Self::Offsets;
    /// `p[offsets[l]]` in lane `l`.
    unsafe fn gather(p: *const f32, offsets: Self::Offsets) -> Self::V;
}

/// AVX-512 registers.
struct Avx512;

impl Vector for Avx512 {
    type V = __m512;
    type Offsets = __m512i;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        unsafe { _mm512_broadcastss_ps(_mm_load_ss(p)) }
    }
    #[inline(always)]
    unsafe fn lane_offsets(stride: i32) -> __m512i {
        let offsets: [i32; 16] = std::array::from_fn(|l| l as i32 * stride);
        unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, offsets: __m512i) -> __m512 {
        unsafe { _mm512_i32gather_ps::<4>(offsets, p) }
    }
}

/// AVX2 registers (with FMA).
struct Avx2;

impl Vector for Avx2 {
    type V = __m256;
    type Offsets = __m256i;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        unsafe { _mm256_broadcastss_ps(_mm_load_ss(p)) }
    }
    #[inline(always)]
    unsafe fn lane_offsets(stride: i32) -> __m256i {
        let offsets: [i32; 8] = std::array::from_fn(|l| l as i32 * stride);
        unsafe { _mm256_loadu_si256(offsets.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, offsets: __m256i) -> __m256 {
        unsafe { _mm256_i32gather_ps::<4>(p, offsets) }
    }
}

/// Entry points compiled for one instruction set; everything they call is inlined into them.
macro_rules! entry_points {
    ($module:ident, $vector:ty, $feature:literal) => {
        /// The kernels compiled for one instruction set.
        mod $module {
            use super::*;

            #[target_feature(enable = $feature)]
            pub unsafe fn forward_image<const R: usize, const V: usize>(
                x: &[f32],
                w: &[f32],
                y: *mut f32,
                bases: &[usize],
                channels: std::ops::Range<usize>,
                d: &Dense,
            ) {
                unsafe { super::forward_image::<$vector, R, V>(x, w, y, bases, channels, d) }
            }

            #[target_feature(enable = $feature)]
            pub unsafe fn input_grad_image<const R: usize, const V: usize>(
                dy: &[f32],
                w: &[f32],
                dx: &mut [f32],
                bases: &[usize],
                d: &Dense,
            ) {
                unsafe { super::input_grad_image::<$vector, R, V>(dy, w, dx, bases, d) }
            }

            #[target_feature(enable = $feature)]
            pub unsafe fn weight_grad_range<const R: usize, const V: usize>(
                x: &[f32],
                dy: &[f32],
                dw: &mut [f32],
                bases: &[usize],
                range: std::ops::Range<usize>,
                d: &Dense,
            ) {
                unsafe { super::weight_grad_range::<$vector, R, V>(x, dy, dw, bases, range, d) }
            }

            #[target_feature(enable = $feature)]
            pub unsafe fn image_to_channels_last(
                x: &[f32],
                out: &mut [f32],
                chw: [usize; 3],
                corner: [usize; 2],
                width: usize,
            ) {
                unsafe { super::image_to_channels_last::<$vector>(x, out, chw, corner, width) }
            }

            #[target_feature(enable = $feature)]
            pub unsafe fn image_to_channels_first(
                x: &[f32],
                out: &mut [f32],
                chw: [usize; 3],
                corner: [usize; 2],
                width: usize,
            ) {
                unsafe { super::image_to_channels_first::<$vector>(x, out, chw, corner, width) }
            }
        }
    };
}

entry_points!(avx512, Avx512, "avx512f");
entry_points!(avx2, Avx2, "avx2,fma");

/// Sizes of one convolution and of the padded channels-last input copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride in both directions.
    pub stride: usize,
    /// Zero rows above and zero columns left of the input.
    pub pad: [usize; 2],
    /// Output height and width.
    pub out_hw: [usize; 2],
    /// Height and width of the padded input copy: every tap of every output lies inside it.
    pub padded_hw: [usize; 2],
    /// The instructions the kernels run on.
    pub isa: Isa,
}

impl Dense {
    /// The geometry of `x` `[N, C, H, W]` convolved with `weight` `[O, C, kh, kw]`; `padding` is
    /// `[top, left, bottom, right]`. `None` where the kernel is larger than the padded input, the
    /// stride is 0, or the CPU has neither AVX-512 nor AVX2 with FMA.
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: usize,
        padding: [usize; 4],
    ) -> Option<Self> {
        let [batch, c_in, h, w] = x;
        let [c_out, _, kh, kw] = weight;
        let [top, left, bottom, right] = padding;
        let out = |size: usize, k: usize| Some(size.checked_sub(k)?.checked_div(stride)? + 1);
        let out_hw = [out(h + top + bottom, kh)?, out(w + left + right, kw)?];
        let padded_hw = [
            (top + h).max((out_hw[0] - 1) * stride + kh),
            (left + w).max((out_hw[1] - 1) * stride + kw),
        ];
        Some(Self {
            batch,
            c_in,
            in_hw: [h, w],
            c_out,
            kernel: [kh, kw],
            stride,
            pad: [top, left],
            out_hw,
            padded_hw,
            isa: detect()?,
        })
    }

    /// Whether the kernels handle these sizes: whole registers of output channels (forward,
    /// weight gradient) and of input channels (input gradient).
    pub fn supported(&self, input_grad: bool) -> bool {
        let whole = whole_registers;
        self.batch > 0 && self.c_in > 0 && whole(self.c_out) && (!input_grad || whole(self.c_in))
    }

    /// Output pixels of one image.
    fn pixels(&self) -> usize {
        self.out_hw[0] * self.out_hw[1]
    }

    /// Floats in one padded input image.
    fn padded_image(&self) -> usize {
        self.padded_hw[0] * self.padded_hw[1] * self.c_in
    }

    /// Floats between two rows of the padded input.
    fn row(&self) -> usize {
        self.padded_hw[1] * self.c_in
    }

    /// Contiguous taps `(kw, i)` of one kernel row.
    fn taps(&self) -> usize {
        self.kernel[1] * self.c_in
    }

    /// Offsets, in one padded input image, of the top-left tap of each output pixel.
    fn bases(&self) -> Vec<usize> {
        let [out_h, out_w] = self.out_hw;
        (0..out_h * out_w)
            .map(|p| ((p / out_w) * self.padded_hw[1] + p % out_w) * self.stride * self.c_in)
            .collect()
    }
}

/// `[0, stride, 2·stride, …]` for `T`'s lanes.
#[inline(always)]
unsafe fn lane_offsets<T: Vector>(stride: usize) -> T::Offsets {
    let stride = i32::try_from(stride).expect("plane of under 2^27 floats");
    unsafe { T::lane_offsets(stride) }
}

/// Checks that an NCHW image of `channels` planes of `h`×`w` fits in `nchw` floats, and an NHWC
/// image of rows `width` pixels wide holding it at `(top, left)` in `nhwc` floats.
fn assert_window(
    nchw: usize,
    nhwc: usize,
    [channels, h, w]: [usize; 3],
    [top, left]: [usize; 2],
    width: usize,
) {
    assert!(nchw >= channels * h * w, "NCHW image size");
    assert!(
        nhwc >= (top + h) * width * channels && left + w <= width,
        "window inside the image"
    );
}

/// Copies one NCHW image `x` (`channels` planes of `h`×`w`) into the NHWC image `out`
/// (`[height, width, channels]`) with its top-left corner at `(top, left)`; the rest of `out` is
/// left as it is. Each pixel's channels are gathered a register at a time.
#[inline(always)]
unsafe fn image_to_channels_last<T: Vector>(
    x: &[f32],
    out: &mut [f32],
    [channels, h, w]: [usize; 3],
    [top, left]: [usize; 2],
    width: usize,
) {
    let plane = h * w;
    assert_window(x.len(), out.len(), [channels, h, w], [top, left], width);
    let whole = channels - channels % T::LANES;
    // SAFETY: every index is inside `x` and `out` by `assert_window`.
    unsafe {
        let offsets = lane_offsets::<T>(plane);
        for y in 0..h {
            for col in 0..w {
                let from = x.as_ptr().add(y * w + col);
                let to = out
                    .as_mut_ptr()
                    .add(((y + top) * width + left + col) * channels);
                for c in (0..whole).step_by(T::LANES) {
                    T::store(to.add(c), T::gather(from.add(c * plane), offsets));
                }
                for c in whole..channels {
                    _mm_store_ss(to.add(c), _mm_load_ss(from.add(c * plane)));
                }
            }
        }
    }
}

/// Copies the `h`×`w` window at `(top, left)` of the NHWC image `x` (`[_, width, channels]`)
/// into the NCHW image `out` (`channels` planes of `h`×`w`). Each channel's values at a
/// register's worth of neighbouring pixels are gathered into it. (Scattering each pixel's
/// channels instead writes 16 planes at once, which for planes a multiple of 1 KiB apart fall
/// into the same cache sets: 4 times slower on ResNet-18's first layer.)
#[inline(always)]
unsafe fn image_to_channels_first<T: Vector>(
    x: &[f32],
    out: &mut [f32],
    [channels, h, w]: [usize; 3],
    [top, left]: [usize; 2],
    width: usize,
) {
    let plane = h * w;
    assert_window(out.len(), x.len(), [channels, h, w], [top, left], width);
    // A window as wide as the image is one run of pixels.
    let (h, w, width) = if left == 0 && w == width {
        (1, plane, plane)
    } else {
        (h, w, width)
    };
    let whole = w - w % T::LANES;
    // SAFETY: as in `image_to_channels_last`.
    unsafe {
        let offsets = lane_offsets::<T>(channels);
        for y in 0..h {
            let from = x.as_ptr().add(((y + top) * width + left) * channels);
            let to = out.as_mut_ptr().add(y * w);
            for col in (0..whole).step_by(T::LANES) {
                for c in 0..channels {
                    let v = T::gather(from.add(col * channels + c), offsets);
                    T::store(to.add(c * plane + col), v);
                }
            }
            for col in whole..w {
                for c in 0..channels {
                    _mm_store_ss(
                        to.add(c * plane + col),
                        _mm_load_ss(from.add(col * channels + c)),
                    );
                }
            }
        }
    }
}

/// [`image_to_channels_last`] compiled for `isa`.
///
/// # Safety
/// The CPU must have `isa`.
unsafe fn image_to_channels_last_on(
    isa: Isa,
    x: &[f32],
    out: &mut [f32],
    chw: [usize; 3],
    corner: [usize; 2],
    width: usize,
) {
    // SAFETY: the caller's `isa` is one the CPU has.
    unsafe {
        match isa {
            Isa::Avx512 => avx512::image_to_channels_last(x, out, chw, corner, width),
            Isa::Avx2 => avx2::image_to_channels_last(x, out, chw, corner, width),
        }
    }
}

/// [`image_to_channels_first`] compiled for `isa`.
///
/// # Safety
/// The CPU must have `isa`.
unsafe fn image_to_channels_first_on(
    isa: Isa,
    x: &[f32],
    out: &mut [f32],
    chw: [usize; 3],
    corner: [usize; 2],
    width: usize,
) {
    // SAFETY: the caller's `isa` is one the CPU has.
    unsafe {
        match isa {
            Isa::Avx512 => avx512::image_to_channels_first(x, out, chw, corner, width),
            Isa::Avx2 => avx2::image_to_channels_first(x, out, chw, corner, width),
        }
    }
}

/// Copies NCHW `x` (`[N, C, H, W]`) into NHWC `[N, height, width, C]` with its top-left corner at
/// `(top, left)` and zeros around it, on `isa` (which the CPU must have: take [`Dense::isa`]).
pub fn to_channels_last(
    isa: Isa,
    x: &[f32],
    [batch, channels, h, w]: [usize; 4],
    pad: [usize; 2],
    [height, width]: [usize; 2],
) -> Vec<f32> {
    let image = height * width * channels;
    let mut out = vec![0.0f32; batch * image];
    if image * channels * h * w == 0 {
        return out;
    }
    out.par_chunks_mut(image)
        .zip(x.par_chunks(channels * h * w))
        // SAFETY: the caller's `isa` is one the CPU has.
        .for_each(|(out, x)| unsafe {
            image_to_channels_last_on(isa, x, out, [channels, h, w], pad, width)
        });
    out
}

/// Copies NHWC `x` (`[N, H, W, C]` for `dims` `[N, C, H, W]`) into NCHW, one image per task;
/// `None` where the CPU has neither AVX-512 nor AVX2 with FMA.
pub fn to_channels_first(x: &[f32], [batch, channels, h, w]: [usize; 4]) -> Option<Vec<f32>> {
    let isa = detect()?;
    let image = channels * h * w;
    let mut out = vec![0.0f32; batch * image];
    if image == 0 {
        return Some(out);
    }
    out.par_chunks_mut(image)
        .zip(x.par_chunks(image))
        // SAFETY: `detect` checked the CPU; each chunk holds one image.
        .for_each(|(out, x)| unsafe {
            image_to_channels_first_on(isa, x, out, [channels, h, w], [0, 0], w)
        });
    Some(out)
}

/// Channels per side of a tile of a weight re-layout: a tile's reads and writes stay in the
/// core's cache and fill whole cache lines.
const CHANNEL_TILE: usize = 16;

/// A pointer that tiles of [`relayout`] write through from several threads, each to its own
/// elements.
struct SharedOut(*mut f32);

// SAFETY: the tiles of `relayout` write disjoint elements.
unsafe impl Sync for SharedOut {}

/// A copy of the weights `w` (`co` output channels, `ci` input channels, `taps` kernel taps)
/// with the element at `from · (o, i, t)` moved to `to · (o, i, t)` (strides per index); `to`
/// must map one-to-one onto `0..w.len()`.
fn relayout(w: &[f32], [co, ci, taps]: [usize; 3], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    assert_eq!(w.len(), co * ci * taps, "weight size");
    let last =
        |s: [usize; 3]| (co.max(1) - 1) * s[0] + (ci.max(1) - 1) * s[1] + (taps.max(1) - 1) * s[2];
    assert!(
        w.is_empty() || (last(from) < w.len() && last(to) < w.len()),
        "strides fit"
    );
    let mut out = vec![0.0f32; w.len()];
    let shared = SharedOut(out.as_mut_ptr());
    let tiles: Vec<(usize, usize)> = (0..co)
        .step_by(CHANNEL_TILE)
        .flat_map(|o| (0..ci).step_by(CHANNEL_TILE).map(move |i| (o, i)))
        .collect();
    tiles.par_iter().for_each(|&(o0, i0)| {
        let shared = &shared;
        for o in o0..(o0 + CHANNEL_TILE).min(co) {
            for i in i0..(i0 + CHANNEL_TILE).min(ci) {
                let (mut src, mut dst) = (o * from[0] + i * from[1], o * to[0] + i * to[1]);
                for _ in 0..taps {
                    // SAFETY: both offsets are at most the asserted last ones, and no other
                    // tile writes `dst` (`to` is one-to-one, tiles cover disjoint `(o, i)`).
                    unsafe {
                        _mm_store_ss(
                            shared.0.wrapping_add(dst),
                            _mm_load_ss(w.as_ptr().wrapping_add(src)),
                        );
                    }
                    src = src.wrapping_add(from[2]);
                    dst = dst.wrapping_add(to[2]);
                }
            }
        }
    });
    out
}

/// The sizes [`relayout`] takes.
fn weight_dims(d: &Dense) -> [usize; 3] {
    [d.c_out, d.c_in, d.kernel[0] * d.kernel[1]]
}

/// The forward weight layout `[kh][kw][i][o]` from burn's `[o][i][kh][kw]`.
pub fn weight_taps_by_output(w: &[f32], d: &Dense) -> Vec<f32> {
    let [co, ci, taps] = weight_dims(d);
    relayout(w, [co, ci, taps], [ci * taps, taps, 1], [1, co, ci * co])
}

/// The input-gradient weight layout `[kh][kw][o][i]` from burn's `[o][i][kh][kw]`.
pub fn weight_taps_by_input(w: &[f32], d: &Dense) -> Vec<f32> {
    let [co, ci, taps] = weight_dims(d);
    relayout(w, [co, ci, taps], [ci * taps, taps, 1], [ci, 1, co * ci])
}

/// burn's weight layout `[o][i][kh][kw]` from `[kh][kw][i][o]`.
pub fn weight_from_taps_by_output(w: &[f32], d: &Dense) -> Vec<f32> {
    let [co, ci, taps] = weight_dims(d);
    relayout(w, [co, ci, taps], [1, co, ci * co], [ci * taps, taps, 1])
}

/// What the forward pass does to each output value before it leaves the core's cache: adds its
/// channel's bias and the matching value of a residual input, then clamps.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: &'a [f32],
    /// Values added to the output, shaped and laid out as it is (the whole batch).
    pub residual: Option<&'a [f32]>,
    /// The range of the output (the activation's, for ReLU or ReLU6).
    pub clamp: Clamp,
}

impl Epilogue<'_> {
    /// Applies it to the output of image `index`, laid out as `layout`.
    fn apply(&self, index: usize, image: &mut [f32], layout: ImageLayout) {
        let clamp = |v: f32| self.clamp.apply(v);
        let len = image.len();
        let residual = self.residual.map(|r| &r[index * len..][..len]);
        match layout {
            ImageLayout::ChannelsFirst => {
                let plane = len / self.bias.len();
                let planes = image.chunks_exact_mut(plane).zip(self.bias);
                match residual {
                    None => {
                        for (values, &bias) in planes {
                            values.iter_mut().for_each(|v| *v = clamp(*v + bias));
                        }
                    }
                    Some(residual) => {
                        for ((values, &bias), r) in planes.zip(residual.chunks_exact(plane)) {
                            for (v, r) in values.iter_mut().zip(r) {
                                *v = clamp(*v + bias + r);
                            }
                        }
                    }
                }
            }
            ImageLayout::ChannelsLast => {
                let pixels = image.chunks_exact_mut(self.bias.len());
                match residual {
                    None => {
                        for values in pixels {
                            for (v, &bias) in values.iter_mut().zip(self.bias) {
                                *v = clamp(*v + bias);
                            }
                        }
                    }
                    Some(residual) => {
                        for (values, r) in pixels.zip(residual.chunks_exact(self.bias.len())) {
                            for ((v, &bias), r) in values.iter_mut().zip(self.bias).zip(r) {
                                *v = clamp(*v + bias + r);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forward pass: `x` `[N, C, H, W]` laid out as `x_layout`, `w` `[kh][kw][i][o]`; returns
/// `[N, O, out_h, out_w]` laid out as `y_layout`, each value through `epilogue` where there is
/// one (its residual laid out as `y_layout` too).
///
/// Each image goes channels-last, through the kernel and (for channels-first output) back in one
/// task, so its copies stay in the core's cache. A channels-last image needs no copy where it
/// has no padding. With fewer images than threads (a single image to predict), each image's
/// output pixels are shared out among the threads instead, or its output channels where the
/// weights outweigh the image.
pub fn forward(
    x: &[f32],
    x_layout: ImageLayout,
    w: &[f32],
    d: &Dense,
    epilogue: Option<Epilogue>,
    y_layout: ImageLayout,
) -> Vec<f32> {
    assert!(d.supported(false), "dense kernel on {d:?}");
    let pixels = d.pixels();
    let [h, width] = d.in_hw;
    let mut y = vec![0.0f32; d.batch * d.c_out * pixels];
    let bases = d.bases();
    let split = d.batch < rayon::current_num_threads();
    let image =
        |padded: &mut Vec<f32>, out: &mut Vec<f32>, index: usize, y: &mut [f32], x: &[f32]| {
            let input = padded_image(x, x_layout, d, padded);
            let into = match y_layout {
                ImageLayout::ChannelsLast => &mut *y,
                ImageLayout::ChannelsFirst => &mut out[..],
            };
            if split && split_by_channels(d) {
                forward_by_channels(input, w, into, &bases, d);
            } else if split {
                let chunk = pixels_per_task(d);
                into.par_chunks_mut(chunk * d.c_out)
                    .zip(bases.par_chunks(chunk))
                    .for_each(|(into, bases)| forward_pixels(input, w, into, bases, d));
            } else {
                forward_pixels(input, w, into, &bases, d);
            }
            if y_layout == ImageLayout::ChannelsFirst {
                let [out_h, out_w] = d.out_hw;
                let output = [d.c_out, out_h, out_w];
                // SAFETY: `Dense::new` checked the CPU; the slices have the sizes `d` describes.
                unsafe { image_to_channels_first_on(d.isa, out, y, output, [0, 0], out_w) }
            }
            if let Some(epilogue) = &epilogue {
                epilogue.apply(index, y, y_layout);
            }
        };
    let buffers = || {
        let scratch = match y_layout {
            ImageLayout::ChannelsFirst => pixels * d.c_out,
            ImageLayout::ChannelsLast => 0,
        };
        let padded = if reads_in_place(x_layout, d) {
            0
        } else {
            d.padded_image()
        };
        (vec![0.0f32; padded], vec![0.0f32; scratch])
    };
    let images = y
        .chunks_mut(d.c_out * pixels)
        .zip(x.chunks(d.c_in * h * width));
    if split {
        let (mut padded, mut out) = buffers();
        for (index, (y, x)) in images.enumerate() {
            image(&mut padded, &mut out, index, y, x);
        }
    } else {
        y.par_chunks_mut(d.c_out * pixels)
            .zip(x.par_chunks(d.c_in * h * width))
            .enumerate()
            .for_each_init(buffers, |(padded, out), (index, (y, x))| {
                image(padded, out, index, y, x)
            });
    }
    y
}

/// Whether the kernels read an image laid out as `layout` as it is: channels-last and needing
/// no padding.
fn reads_in_place(layout: ImageLayout, d: &Dense) -> bool {
    layout == ImageLayout::ChannelsLast && d.pad == [0, 0] && d.padded_hw == d.in_hw
}

/// One image `x` laid out as `layout`, channels-last with its zero padding as the kernels read
/// it: written into `padded` (whose padding stays zero), or `x` itself where it is
/// channels-last and needs no padding.
fn padded_image<'a>(
    x: &'a [f32],
    layout: ImageLayout,
    d: &Dense,
    padded: &'a mut [f32],
) -> &'a [f32] {
    let [h, w] = d.in_hw;
    let [top, left] = d.pad;
    match layout {
        _ if reads_in_place(layout, d) => x,
        ImageLayout::ChannelsLast => {
            let (row, padded_row) = (w * d.c_in, d.row());
            for (y, from) in x.chunks_exact(row).take(h).enumerate() {
                let at = (y + top) * padded_row + left * d.c_in;
                padded[at..at + row].copy_from_slice(from);
            }
            padded
        }
        ImageLayout::ChannelsFirst => {
            let (input, width) = ([d.c_in, h, w], d.padded_hw[1]);
            // SAFETY: `Dense::new` checked the CPU; the slices have the sizes `d` describes.
            // Only the window of `padded` is written: the zero padding around it stays.
            unsafe { image_to_channels_last_on(d.isa, x, padded, input, d.pad, width) }
            padded
        }
    }
}

/// Output pixels each task of a split image computes: whole tiles, about two tasks per thread.
fn pixels_per_task(d: &Dense) -> usize {
    let tile = match d.isa {
        Isa::Avx512 if two_avx512_registers(d.c_out) => 14,
        Isa::Avx512 => 12,
        Isa::Avx2 => 6,
    };
    let tiles = d.pixels().div_ceil(tile);
    tiles.div_ceil(2 * rayon::current_num_threads()).max(1) * tile
}

/// The kernel over the output pixels whose top-left taps are at `bases` in the padded,
/// channels-last image `padded`, into `out` (`[pixel][c_out]`, one row per base).
fn forward_pixels(padded: &[f32], w: &[f32], out: &mut [f32], bases: &[usize], d: &Dense) {
    assert!(out.len() >= bases.len() * d.c_out, "a row per pixel");
    // SAFETY: `out` holds a row for each of `bases`.
    unsafe { forward_channels(padded, w, out.as_mut_ptr(), bases, 0..d.c_out, d) }
}

/// Output channels `channels` (whole register tiles) of the pixels at `bases`, into the rows
/// of `[pixel][c_out]` at `out`.
///
/// # Safety
/// `out` must hold `bases.len()` rows of `d.c_out` values that nothing else reads or writes at
/// `channels` meanwhile.
unsafe fn forward_channels(
    padded: &[f32],
    w: &[f32],
    out: *mut f32,
    bases: &[usize],
    channels: std::ops::Range<usize>,
    d: &Dense,
) {
    assert!(padded.len() >= d.padded_image() && w.len() >= d.kernel[0] * d.taps() * d.c_out);
    assert!(channels.end <= d.c_out && channels.start.is_multiple_of(tile_channels(d)));
    // SAFETY: `Dense::new` checked the CPU; the taps of `bases` lie inside `padded`, and the
    // caller passes the rows. The tile sizes match `pixels_per_task` and `tile_channels`.
    unsafe {
        match d.isa {
            Isa::Avx512 if two_avx512_registers(d.c_out) => {
                avx512::forward_image::<14, 2>(padded, w, out, bases, channels, d)
            }
            Isa::Avx512 => avx512::forward_image::<12, 1>(padded, w, out, bases, channels, d),
            Isa::Avx2 => avx2::forward_image::<6, 2>(padded, w, out, bases, channels, d),
        }
    }
}

/// Output channels of one register tile of the forward pass.
fn tile_channels(d: &Dense) -> usize {
    match d.isa {
        Isa::Avx512 if two_avx512_registers(d.c_out) => 32,
        Isa::Avx512 | Isa::Avx2 => 16,
    }
}

/// One image's output shared out among the threads by output channels (all pixels each), into
/// `out` (`[pixel][c_out]`): where the weights outweigh the image (the small maps of a
/// network's last layers), each weight is then read once instead of once per task.
fn forward_by_channels(padded: &[f32], w: &[f32], out: &mut [f32], bases: &[usize], d: &Dense) {
    assert!(out.len() >= bases.len() * d.c_out, "a row per pixel");
    let tile = tile_channels(d);
    let tiles = d.c_out / tile;
    let per_task = tiles.div_ceil(2 * rayon::current_num_threads()).max(1) * tile;
    let shared = SharedOut(out.as_mut_ptr());
    (0..d.c_out)
        .into_par_iter()
        .step_by(per_task)
        .for_each(|o0| {
            let shared = &shared;
            let channels = o0..(o0 + per_task).min(d.c_out);
            // SAFETY: `out` holds every row; the tasks take disjoint channels.
            unsafe { forward_channels(padded, w, shared.0, bases, channels, d) }
        });
}

/// Whether a single image's forward pass shares out output channels rather than pixels.
fn split_by_channels(d: &Dense) -> bool {
    d.kernel[0] * d.taps() * d.c_out > d.padded_image()
}

/// Kernel rows per pass over the output: the partial sums stay in registers for about this many
/// multiply-adds per output value, while the weights they use stay in the core's cache.
fn rows_per_pass(d: &Dense) -> usize {
    (1024 / d.taps()).clamp(1, d.kernel[0])
}

/// How the sum of [`accumulate`] walks its `a` side: `rows` runs of `cols` steps of `step`
/// floats, each run starting `row` floats after the previous one (kernel taps over several
/// kernel rows, or pixels over several output rows).
#[derive(Clone, Copy)]
struct Walk {
    step: usize,
    cols: usize,
    row: usize,
    rows: usize,
}

impl Walk {
    /// One run of `cols` steps of `step`.
    fn line(step: usize, cols: usize) -> Self {
        Self {
            step,
            cols,
            row: 0,
            rows: 1,
        }
    }
}

/// `acc[i][v] += Σ_t a[i][offset(t)] · b[t·b_step + v·16 ..][..16]` over the steps `t` of
/// `walk`: the register tile all three passes share, `R` rows by `V` registers.
///
/// Pointers advance with `wrapping_add` and are read through intrinsics: the debug build's checks
/// on `add` and `*` would cost as much as the multiply-adds here.
#[inline(always)]
unsafe fn accumulate<T: Vector, const R: usize, const V: usize>(
    acc: &mut [[T::V; V]; R],
    a: [*const f32; R],
    walk: Walk,
    mut b: *const f32,
    b_step: usize,
) {
    let mut regs = *acc;
    let mut start = 0usize;
    for _ in 0..walk.rows {
        let mut offset = start;
        for _ in 0..walk.cols {
            // SAFETY: the caller keeps every `a[i]` and `b` read inside its slice.
            unsafe {
                let bv: [T::V; V] = std::array::from_fn(|v| T::load(b.wrapping_add(v * T::LANES)));
                for (row, a) in regs.iter_mut().zip(&a) {
                    let s = T::splat(a.wrapping_add(offset));
                    for (r, bv) in row.iter_mut().zip(&bv) {
                        *r = T::fmadd(s, *bv, *r);
                    }
                }
            }
            offset = offset.wrapping_add(walk.step);
            b = b.wrapping_add(b_step);
        }
        start = start.wrapping_add(walk.row);
    }
    *acc = regs;
}

/// Loads (`add`) or zeroes a tile of `valid` rows at `out`, rows `row` floats apart.
#[inline(always)]
unsafe fn load_tile<T: Vector, const R: usize, const V: usize>(
    out: *const f32,
    row: usize,
    valid: usize,
    add: bool,
) -> [[T::V; V]; R] {
    // SAFETY: no memory is touched.
    let mut acc = [[unsafe { T::zero() }; V]; R];
    if add {
        for (i, acc) in acc.iter_mut().enumerate().take(valid) {
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: the caller passes a tile inside its slice.
                *acc = unsafe { T::load(out.add(i * row + v * T::LANES)) };
            }
        }
    }
    acc
}

/// Stores the first `valid` rows of a tile at `out`, rows `row` floats apart.
#[inline(always)]
unsafe fn store_tile<T: Vector, const R: usize, const V: usize>(
    acc: &[[T::V; V]; R],
    out: *mut f32,
    row: usize,
    valid: usize,
) {
    for (i, acc) in acc.iter().enumerate().take(valid) {
        for (v, acc) in acc.iter().enumerate() {
            // SAFETY: the caller passes a tile inside its slice.
            unsafe { T::store(out.add(i * row + v * T::LANES), *acc) };
        }
    }
}

/// One image of [`forward`]: `R` pixels by `V` registers of output channels at a time.
#[inline(always)]
unsafe fn forward_image<T: Vector, const R: usize, const V: usize>(
    x: &[f32],
    w: &[f32],
    y: *mut f32,
    bases: &[usize],
    channels: std::ops::Range<usize>,
    d: &Dense,
) {
    let (co, taps, row) = (d.c_out, d.taps(), d.row());
    let pixels = bases.len();
    let rows = rows_per_pass(d);
    for o0 in channels.step_by(V * T::LANES) {
        for k0 in (0..d.kernel[0]).step_by(rows) {
            let k1 = (k0 + rows).min(d.kernel[0]);
            for p0 in (0..pixels).step_by(R) {
                let valid = R.min(pixels - p0);
                let out = y.wrapping_add(p0 * co + o0);
                // The tile's pixels; the last tile computes its last pixel again in place of
                // missing ones.
                let at: [*const f32; R] =
                    std::array::from_fn(|i| x.as_ptr().wrapping_add(bases[p0 + i.min(valid - 1)]));
                // SAFETY: every index stays inside the padded image, the weights and the rows of
                // `y` the caller gives.
                unsafe {
                    let mut acc = load_tile::<T, R, V>(out, co, valid, k0 > 0);
                    let a = at.map(|p| p.wrapping_add(k0 * row));
                    let b = w.as_ptr().wrapping_add(k0 * taps * co + o0);
                    let walk = Walk {
                        step: 1,
                        cols: taps,
                        row,
                        rows: k1 - k0,
                    };
                    accumulate::<T, R, V>(&mut acc, a, walk, b, co);
                    store_tile::<T, R, V>(&acc, out, co, valid);
                }
            }
        }
    }
}

/// Output pixels per block of the weight gradient's sum: the block's rows of one register tile's
/// output channels in `dy` (up to 128 bytes a pixel) stay in the core's cache while every tap
/// tile reads them, and each block adds into the weight gradient once.
const PIXELS_PER_BLOCK: usize = 512;

/// The weight gradient: `x` padded NHWC, `dy` NHWC `[N, out_h, out_w, O]`; returns
/// `[kh][kw][i][o]`.
pub fn weight_grad(x: &[f32], dy: &[f32], d: &Dense) -> Vec<f32> {
    assert!(d.supported(false), "dense kernel on {d:?}");
    let size = d.kernel[0] * d.taps() * d.c_out;
    let total = d.batch * d.pixels();
    let threads = rayon::current_num_threads().max(1);
    let per_thread = total.div_ceil(threads).max(1);
    let bases = d.bases();
    let partials: Vec<Vec<f32>> = (0..total.div_ceil(per_thread))
        .into_par_iter()
        .map(|t| {
            let mut dw = vec![0.0f32; size];
            let range = t * per_thread..((t + 1) * per_thread).min(total);
            // SAFETY: `Dense::new` checked the CPU; the slices have the sizes `d` describes.
            unsafe {
                match (d.isa, two_avx512_registers(d.c_out)) {
                    (Isa::Avx512, true) => {
                        avx512::weight_grad_range::<12, 2>(x, dy, &mut dw, &bases, range, d)
                    }
                    (Isa::Avx512, false) => {
                        avx512::weight_grad_range::<12, 1>(x, dy, &mut dw, &bases, range, d)
                    }
                    (Isa::Avx2, _) => {
                        avx2::weight_grad_range::<6, 2>(x, dy, &mut dw, &bases, range, d)
                    }
                }
            }
            dw
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![0.0; size]);
    for partial in partials {
        dw.par_chunks_mut(4096)
            .zip(partial.par_chunks(4096))
            .for_each(|(dw, p)| dw.iter_mut().zip(p).for_each(|(a, b)| *a += b));
    }
    dw
}

/// The weight gradient's sum over the output pixels `range` (counted across the batch), added
/// to `dw`: tiles of `R` taps by `V` registers of output channels.
#[inline(always)]
unsafe fn weight_grad_range<T: Vector, const R: usize, const V: usize>(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    bases: &[usize],
    range: std::ops::Range<usize>,
    d: &Dense,
) {
    let (co, taps, row, pixels) = (d.c_out, d.taps(), d.row(), d.pixels());
    let (image, step) = (d.padded_image(), d.stride * d.c_in);
    let [out_h, out_w] = d.out_hw;
    let block = PIXELS_PER_BLOCK;
    // Runs of whole output rows of one image (or part of one row): pixel, offset of its
    // top-left tap in the padded batch, and the walk over the run's taps.
    let mut runs = Vec::new();
    let mut p = range.start;
    while p < range.end {
        let (col, y) = (p % out_w, (p % pixels) / out_w);
        let at = (p / pixels) * image + bases[p % pixels];
        let walk = if col == 0 && range.end - p >= out_w {
            let rows = ((range.end - p) / out_w)
                .min(out_h - y)
                .min((block / out_w).max(1));
            Walk {
                step,
                cols: out_w,
                row: d.stride * row,
                rows,
            }
        } else {
            Walk::line(step, (out_w - col).min(range.end - p))
        };
        runs.push((p, at, walk));
        p += walk.cols * walk.rows;
    }
    let mut first = 0;
    while first < runs.len() {
        // Whole runs, about `block` pixels.
        let mut last = first;
        let mut count = 0;
        while last < runs.len() {
            let len = runs[last].2.cols * runs[last].2.rows;
            if count > 0 && count + len > block {
                break;
            }
            count += len;
            last += 1;
        }
        for o0 in (0..co).step_by(V * T::LANES) {
            let g = dy.as_ptr().wrapping_add(o0);
            for k in 0..d.kernel[0] {
                for j0 in (0..taps).step_by(R) {
                    let valid = R.min(taps - j0);
                    // The tile's taps from a pixel's top-left one; the last tile reads its last
                    // tap again in place of missing ones.
                    let tap: [*const f32; R] = std::array::from_fn(|i| {
                        x.as_ptr().wrapping_add(k * row + j0 + i.min(valid - 1))
                    });
                    let out = dw[(k * taps + j0) * co + o0..].as_mut_ptr();
                    // SAFETY: every index stays inside the padded batch, `dy` and `dw`.
                    unsafe {
                        let mut acc = load_tile::<T, R, V>(out, co, valid, true);
                        for &(p, at, walk) in &runs[first..last] {
                            let a = tap.map(|t| t.wrapping_add(at));
                            accumulate::<T, R, V>(&mut acc, a, walk, g.wrapping_add(p * co), co);
                        }
                        store_tile::<T, R, V>(&acc, out, co, valid);
                    }
                }
            }
        }
        first = last;
    }
}

/// The input gradient: `dy` NHWC `[N, out_h, out_w, O]`, `w` `[kh][kw][o][i]`; returns NCHW
/// `[N, C, H, W]`.
pub fn input_grad(dy: &[f32], w: &[f32], d: &Dense) -> Vec<f32> {
    assert!(d.supported(true), "dense kernel on {d:?}");
    let pixels = d.pixels();
    let [h, width] = d.in_hw;
    let mut dx = vec![0.0f32; d.batch * d.c_in * h * width];
    let bases = d.bases();
    let wide = two_avx512_registers(d.c_in);
    dx.par_chunks_mut(d.c_in * h * width)
        .zip(dy.par_chunks(pixels * d.c_out))
        .for_each_init(
            || vec![0.0f32; d.padded_image()],
            |padded, (dx, dy)| {
                padded.fill(0.0);
                let input = [d.c_in, h, width];
                // SAFETY: `Dense::new` checked the CPU; the slices have the sizes `d` describes.
                unsafe {
                    match d.isa {
                        Isa::Avx512 => {
                            if wide {
                                avx512::input_grad_image::<14, 2>(dy, w, padded, &bases, d);
                            } else {
                                avx512::input_grad_image::<12, 1>(dy, w, padded, &bases, d);
                            }
                            avx512::image_to_channels_first(
                                padded,
                                dx,
                                input,
                                d.pad,
                                d.padded_hw[1],
                            );
                        }
                        Isa::Avx2 => {
                            avx2::input_grad_image::<6, 2>(dy, w, padded, &bases, d);
                            avx2::image_to_channels_first(padded, dx, input, d.pad, d.padded_hw[1]);
                        }
                    }
                }
            },
        );
    dx
}

/// One image of [`input_grad`]: `R` output pixels by `V` registers of input channels at a time,
/// added into the padded input gradient at each kernel tap.
#[inline(always)]
unsafe fn input_grad_image<T: Vector, const R: usize, const V: usize>(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    bases: &[usize],
    d: &Dense,
) {
    let (ci, co, row) = (d.c_in, d.c_out, d.row());
    let pixels = bases.len();
    for i0 in (0..ci).step_by(V * T::LANES) {
        for p0 in (0..pixels).step_by(R) {
            let valid = R.min(pixels - p0);
            let a = std::array::from_fn(|i| dy[(p0 + i.min(valid - 1)) * co..].as_ptr());
            // Where each pixel's top-left tap adds into the padded image.
            let out: [*mut f32; R] = std::array::from_fn(|i| {
                dx.as_mut_ptr()
                    .wrapping_add(bases[p0 + i.min(valid - 1)] + i0)
            });
            // SAFETY: every index stays inside `dy`, the weights and the padded image.
            unsafe {
                for k in 0..d.kernel[0] {
                    for kw in 0..d.kernel[1] {
                        let b = w
                            .as_ptr()
                            .wrapping_add((k * d.kernel[1] + kw) * co * ci + i0);
                        let mut acc = [[T::zero(); V]; R];
                        accumulate::<T, R, V>(&mut acc, a, Walk::line(1, co), b, ci);
                        let tap = k * row + kw * ci;
                        for (acc, out) in acc.iter().zip(out).take(valid) {
                            for (v, acc) in acc.iter().enumerate() {
                                let at = out.wrapping_add(tap + v * T::LANES);
                                T::store(at, T::add(T::load(at), *acc));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: ImageLayout = ImageLayout::ChannelsFirst;
    const LAST: ImageLayout = ImageLayout::ChannelsLast;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) - 0.5
            })
            .collect()
    }

    /// The convolution by its definition, NCHW in and out.
    fn reference_forward(x: &[f32], w: &[f32], d: &Dense) -> Vec<f32> {
        let [h, wd] = d.in_hw;
        let [oh, ow] = d.out_hw;
        let [kh, kw] = d.kernel;
        let mut y = vec![0.0f32; d.batch * d.c_out * oh * ow];
        for n in 0..d.batch {
            for o in 0..d.c_out {
                for r in 0..oh {
                    for c in 0..ow {
                        let mut sum = 0.0;
                        for i in 0..d.c_in {
                            for a in 0..kh {
                                for b in 0..kw {
                                    let yy = (r * d.stride + a) as isize - d.pad[0] as isize;
                                    let xx = (c * d.stride + b) as isize - d.pad[1] as isize;
                                    if yy < 0 || xx < 0 || yy >= h as isize || xx >= wd as isize {
                                        continue;
                                    }
                                    let (yy, xx) = (yy as usize, xx as usize);
                                    sum += x[((n * d.c_in + i) * h + yy) * wd + xx]
                                        * w[((o * d.c_in + i) * kh + a) * kw + b];
                                }
                            }
                        }
                        y[((n * d.c_out + o) * oh + r) * ow + c] = sum;
                    }
                }
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: length");
        for (k, (a, b)) in a.iter().zip(b).enumerate() {
            assert!((a - b).abs() < 1e-3, "{what}[{k}]: {a} vs {b}");
        }
    }

    #[test]
    fn forward_and_gradients_match_the_definition() {
        let mut isas = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            isas.push(Isa::Avx2);
        }
        if isas.is_empty() {
            eprintln!("neither AVX-512 nor AVX2 on this CPU: skipped");
        }
        for isa in isas {
            check_against_the_definition(isa);
        }
    }

    fn check_against_the_definition(isa: Isa) {
        // (x shape, weight shape, stride, padding): every register tiling, odd sizes, stride 2,
        // asymmetric padding and pixel counts that leave partial tiles.
        let cases = [
            ([2, 16, 7, 5], [64, 16, 3, 3], 1, [1, 1, 1, 1]),
            ([1, 32, 9, 9], [32, 32, 3, 3], 2, [1, 1, 1, 1]),
            ([2, 3, 11, 10], [16, 3, 7, 7], 2, [3, 3, 3, 3]),
            ([1, 48, 6, 7], [16, 48, 1, 1], 2, [0, 0, 0, 0]),
            ([1, 16, 5, 6], [32, 16, 3, 3], 2, [0, 0, 1, 1]),
            // One image whose weights outweigh it: shared out by output channels.
            ([1, 16, 2, 3], [64, 16, 1, 1], 1, [0, 0, 0, 0]),
            ([1, 16, 2, 2], [48, 16, 3, 3], 1, [1, 1, 1, 1]),
        ];
        for (xs, ws, stride, padding) in cases {
            let d = Dense {
                isa,
                ..Dense::new(xs, ws, stride, padding).expect("the kernel fits")
            };
            let x = values(xs.iter().product(), 1);
            let w = values(ws.iter().product(), 2);
            let [oh, ow] = d.out_hw;
            let y_shape = [d.batch, d.c_out, oh, ow];
            let probe = values(y_shape.iter().product(), 3);
            let xp = to_channels_last(isa, &x, xs, d.pad, d.padded_hw);
            let taps = weight_taps_by_output(&w, &d);
            let y = forward(&x, FIRST, &taps, &d, None, FIRST);
            close(&y, &reference_forward(&x, &w, &d), &format!("output {d:?}"));
            // Every pair of layouts gives the same values.
            let last = |v: &[f32], [n, c, h, w]: [usize; 4]| {
                to_channels_last(isa, v, [n, c, h, w], [0, 0], [h, w])
            };
            let (x_last, y_last) = (last(&x, xs), last(&y, y_shape));
            let pairs = [
                (&x, FIRST, LAST),
                (&x_last, LAST, FIRST),
                (&x_last, LAST, LAST),
            ];
            for (input, x_layout, y_layout) in pairs {
                let expected = if y_layout == LAST { &y_last } else { &y };
                let y = forward(input, x_layout, &taps, &d, None, y_layout);
                assert_eq!(&y, expected, "{x_layout:?} to {y_layout:?} {d:?}");
            }
            let bias: Vec<f32> = (0..d.c_out).map(|o| o as f32 * 0.1 - 1.0).collect();
            let residual = values(y.len(), 4);
            let epilogue = Epilogue {
                bias: &bias,
                residual: Some(&residual),
                clamp: Clamp::RELU6,
            };
            let fused = forward(&x, FIRST, &taps, &d, Some(epilogue), FIRST);
            let plane = oh * ow;
            let expected: Vec<f32> = y
                .iter()
                .zip(&residual)
                .enumerate()
                .map(|(i, (v, r))| (v + bias[(i / plane) % d.c_out] + r).clamp(0.0, 6.0))
                .collect();
            close(
                &fused,
                &expected,
                &format!("output with bias, residual and clamp {d:?}"),
            );
            let residual_last = last(&residual, y_shape);
            let epilogue_last = Epilogue {
                residual: Some(&residual_last),
                ..epilogue
            };
            let fused_last = forward(&x, FIRST, &taps, &d, Some(epilogue_last), LAST);
            assert_eq!(
                fused_last,
                last(&fused, y_shape),
                "channels-last epilogue {d:?}"
            );

            // Gradients of sum(y · probe) against numerical ones of the reference: the loss is
            // linear in x and w, so a unit step gives the exact derivative.
            let loss = |x: &[f32], w: &[f32]| -> f64 {
                let y = reference_forward(x, w, &d);
                y.iter().zip(&probe).map(|(a, b)| (a * b) as f64).sum()
            };
            let base = loss(&x, &w);
            let g = to_channels_last(isa, &probe, y_shape, [0, 0], d.out_hw);
            let dw = weight_from_taps_by_output(&weight_grad(&xp, &g, &d), &d);
            for k in (0..w.len()).step_by(7) {
                let mut w1 = w.clone();
                w1[k] += 1.0;
                let expected = (loss(&x, &w1) - base) as f32;
                assert!((dw[k] - expected).abs() < 2e-3, "dw[{k}] {d:?}");
            }
            if d.supported(true) {
                let dx = input_grad(&g, &weight_taps_by_input(&w, &d), &d);
                for k in (0..x.len()).step_by(5) {
                    let mut x1 = x.clone();
                    x1[k] += 1.0;
                    let expected = (loss(&x1, &w) - base) as f32;
                    assert!((dx[k] - expected).abs() < 2e-3, "dx[{k}] {d:?}");
                }
            }
        }
    }
}
