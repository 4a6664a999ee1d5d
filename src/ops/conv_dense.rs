//! Dense convolutions through [`super::super::dense_kernels`]: each pass returns `None` where
//! the CPU or the shapes do not suit the kernels.

use std::borrow::Cow;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::Shape;

use super::super::dense_kernels::{self as kernels, Dense, Epilogue};
use super::super::flex_values::{
    ImageLayout, channels_last_f32, channels_last_tensor, contiguous_f32, flex_tensor, slice,
};
use super::{Clamp, ConvSpec, Finish};

pub fn available(in_channels: usize, out_channels: usize) -> bool {
    let whole = kernels::whole_registers;
    kernels::available() && whole(in_channels) && whole(out_channels)
}

fn dims(t: &FlexTensor) -> Option<[usize; 4]> {
    t.shape().as_slice().try_into().ok()
}

/// The geometry of a call the kernels handle.
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    spec: ConvSpec,
    input_grad: bool,
) -> Option<Dense> {
    // `None` also where the CPU has no instruction set for the kernels.
    let d = Dense::new(dims(x)?, dims(weight)?, spec.stride, spec.padding)?;
    d.supported(input_grad).then_some(d)
}

fn padded_input(x: &FlexTensor, d: &Dense) -> Option<Vec<f32>> {
    let xv = contiguous_f32(x)?;
    Some(kernels::to_channels_last(
        d.isa,
        slice(&xv),
        dims(x)?,
        d.pad,
        d.padded_hw,
    ))
}

fn output_grad(dy: &FlexTensor, d: &Dense) -> Option<Vec<f32>> {
    let dyv = contiguous_f32(dy)?;
    Some(kernels::to_channels_last(
        d.isa,
        slice(&dyv),
        dims(dy)?,
        [0, 0],
        d.out_hw,
    ))
}

/// The output of `x` convolved with `weight`, channels-first.
pub fn forward(x: &FlexTensor, weight: &FlexTensor, spec: ConvSpec) -> Option<FlexTensor> {
    let taps = taps(x, weight, spec)?;
    forward_taps(
        x,
        &taps,
        dims(weight)?,
        spec,
        None,
        ImageLayout::ChannelsFirst,
    )
}

/// `weight` laid out for the kernels' forward pass, where they run it on inputs like `x`.
pub fn taps(x: &FlexTensor, weight: &FlexTensor, spec: ConvSpec) -> Option<Vec<f32>> {
    let d = geometry(x, weight, spec, false)?;
    let w = contiguous_f32(weight)?;
    Some(kernels::weight_taps_by_output(slice(&w), &d))
}

/// An image tensor's values as the kernels read them: without a copy where it is channels-last.
enum Values<'a> {
    Last(&'a [f32]),
    First(FlexTensor),
}

impl<'a> Values<'a> {
    fn of(t: &'a FlexTensor) -> Option<Self> {
        match channels_last_f32(t) {
            Some(values) => Some(Self::Last(values)),
            None => contiguous_f32(t).map(Self::First),
        }
    }

    fn layout(&self) -> ImageLayout {
        match self {
            Self::Last(_) => ImageLayout::ChannelsLast,
            Self::First(_) => ImageLayout::ChannelsFirst,
        }
    }

    fn slice(&self) -> &[f32] {
        match self {
            Self::Last(values) => values,
            Self::First(t) => slice(t),
        }
    }
}

/// A residual's values laid out as `layout`: borrowed where it is laid out so already.
fn residual_values<'a>(
    r: &'a Values,
    dims: [usize; 4],
    layout: ImageLayout,
    d: &Dense,
) -> Cow<'a, [f32]> {
    match (r.layout(), layout) {
        (from, to) if from == to => Cow::Borrowed(r.slice()),
        (_, ImageLayout::ChannelsLast) => Cow::Owned(kernels::to_channels_last(
            d.isa,
            r.slice(),
            dims,
            [0, 0],
            d.out_hw,
        )),
        (_, ImageLayout::ChannelsFirst) => Cow::Owned(
            kernels::to_channels_first(r.slice(), dims).expect("the CPU runs the kernels"),
        ),
    }
}

/// The output of `x` convolved with the weights of shape `weight_shape` laid out as [`taps`]
/// gives them, through `finish` where given, laid out as `y_layout`. `x` may be laid out
/// either way.
pub fn forward_taps(
    x: &FlexTensor,
    taps: &[f32],
    weight_shape: [usize; 4],
    spec: ConvSpec,
    finish: Option<Finish>,
    y_layout: ImageLayout,
) -> Option<FlexTensor> {
    let d = Dense::new(dims(x)?, weight_shape, spec.stride, spec.padding)?;
    if !d.supported(false) || taps.len() != weight_shape.iter().product::<usize>() {
        return None;
    }
    let shape = [d.batch, d.c_out, d.out_hw[0], d.out_hw[1]];
    let xv = Values::of(x)?;
    let (bias, residual, clamp) = match finish {
        Some(f) => {
            let residual = match f.residual {
                Some(r) if dims(r)? == shape => Some(Values::of(r)?),
                Some(_) => return None,
                None => None,
            };
            (Some(contiguous_f32(f.bias)?), residual, f.clamp)
        }
        None => (None, None, Clamp::NONE),
    };
    let residual = residual
        .as_ref()
        .map(|r| residual_values(r, shape, y_layout, &d));
    let epilogue = bias.as_ref().map(|bias| Epilogue {
        bias: slice(bias),
        residual: residual.as_deref(),
        clamp,
    });
    let y = kernels::forward(xv.slice(), xv.layout(), taps, &d, epilogue, y_layout);
    Some(match y_layout {
        ImageLayout::ChannelsLast => channels_last_tensor(y, shape),
        ImageLayout::ChannelsFirst => flex_tensor(y, Shape::from(shape)),
    })
}

/// The input gradient from the channels-last output gradient `dy`.
fn x_grad_from(x: &FlexTensor, weight: &FlexTensor, dy: &[f32], d: &Dense) -> Option<FlexTensor> {
    let w = contiguous_f32(weight)?;
    let dx = kernels::input_grad(dy, &kernels::weight_taps_by_input(slice(&w), d), d);
    Some(flex_tensor(dx, x.shape()))
}

/// The weight gradient from the channels-last output gradient `dy`.
fn weight_grad_from(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &[f32],
    d: &Dense,
) -> Option<FlexTensor> {
    let xp = padded_input(x, d)?;
    let dw = kernels::weight_from_taps_by_output(&kernels::weight_grad(&xp, dy, d), d);
    Some(flex_tensor(dw, weight.shape()))
}

pub fn x_grad(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    spec: ConvSpec,
) -> Option<FlexTensor> {
    let d = geometry(x, weight, spec, true)?;
    x_grad_from(x, weight, &self::output_grad(output_grad, &d)?, &d)
}

pub fn weight_grad(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    spec: ConvSpec,
) -> Option<FlexTensor> {
    let d = geometry(x, weight, spec, false)?;
    weight_grad_from(x, weight, &self::output_grad(output_grad, &d)?, &d)
}

/// Both gradients, with the output gradient made channels-last once.
pub fn grads(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    spec: ConvSpec,
) -> Option<(FlexTensor, FlexTensor)> {
    let d = geometry(x, weight, spec, true)?;
    let dy = self::output_grad(output_grad, &d)?;
    Some((
        x_grad_from(x, weight, &dy, &d)?,
        weight_grad_from(x, weight, &dy, &d)?,
    ))
}
