//! Each architecture of the zoo written as ONNX operators, layer for layer as its burn module
//! computes it in evaluation mode.

use burn::nn::PaddingConfig2d;

use super::OnnxError;
use super::graph::{Graph, Side, int, ints};
use crate::models::Backbone;
use crate::models::efficientnet_lite::{LiteBackbone, MbConv};
use crate::models::head::Head;
use crate::models::layers::{Act, ConvBn};
use crate::models::mobilenet::{InvertedResidual, MobileNet};
use crate::models::resnet::{ResBlock, ResNet};

type Step = Result<(String, Side), OnnxError>;

/// The backbone from normalised NCHW input `x` of side `side` to its last feature map.
pub fn backbone(g: &mut Graph, backbone: &Backbone, x: &str, side: Side) -> Step {
    match backbone {
        Backbone::Lite(b) => lite(g, b, x, side),
        Backbone::ResNet(b) => resnet(g, b, x, side),
        Backbone::MobileNet(b) => mobilenet(g, b, x, side),
    }
}

/// Pooling, the optional hidden layer and the classifier: outputs `logits` and
/// `probabilities`.
pub fn head(g: &mut Graph, head: &Head, features: &str) -> Result<(), OnnxError> {
    let mut x = g.pool(features);
    if let Some(hidden) = &head.hidden {
        let h = g.linear(&x, hidden, None)?;
        x = g.act(&h, head.hidden_act);
    }
    let logits = g.linear(&x, &head.fc, Some("logits"))?;
    g.node_named(
        "Softmax",
        &[&logits],
        vec![int("axis", 1)],
        Some("probabilities"),
    );
    Ok(())
}

fn conv_bn(g: &mut Graph, layer: &ConvBn, x: &str, side: Side) -> Step {
    g.conv_bn_act(x, &layer.conv, &layer.bn, layer.act, side)
}

fn lite(g: &mut Graph, b: &LiteBackbone, x: &str, side: Side) -> Step {
    let (mut x, mut side) = g.conv_bn_act(x, &b.stem.conv, &b.stem.bn, Act::Relu6, side)?;
    for block in &b.blocks {
        (x, side) = mb_conv(g, block, &x, side)?;
    }
    g.conv_bn_act(&x, &b.head_conv.conv, &b.head_conv.bn, Act::Relu6, side)
}

fn mb_conv(g: &mut Graph, block: &MbConv, input: &str, side: Side) -> Step {
    let mut x = input.to_string();
    if let (Some(expand), Some(bn)) = (&block.expand_conv, &block.bn0) {
        (x, _) = g.conv_bn_act(&x, expand, bn, Act::Relu6, side)?;
    }
    let (x, side) = g.conv_bn_act(&x, &block.depthwise_conv, &block.bn1, Act::Relu6, side)?;
    let (x, side) = g.conv(&x, &block.project_conv, Some(&block.bn2), side)?;
    Ok((if block.residual { g.add(&x, input) } else { x }, side))
}

fn mobilenet(g: &mut Graph, b: &MobileNet, x: &str, side: Side) -> Step {
    let (mut x, mut side) = conv_bn(g, &b.stem, x, side)?;
    for block in &b.blocks {
        (x, side) = inverted_residual(g, block, &x, side)?;
    }
    conv_bn(g, &b.last, &x, side)
}

fn inverted_residual(g: &mut Graph, block: &InvertedResidual, input: &str, side: Side) -> Step {
    let mut x = input.to_string();
    if let Some(expand) = &block.expand {
        (x, _) = conv_bn(g, expand, &x, side)?;
    }
    let (mut x, side) = conv_bn(g, &block.depthwise, &x, side)?;
    if let Some(se) = &block.se {
        let pooled = g.node("GlobalAveragePool", &[&x], vec![]);
        let (squeezed, _) = g.conv(&pooled, &se.fc1, None, [1, 1])?;
        let squeezed = g.act(&squeezed, Act::Relu);
        let (excited, _) = g.conv(&squeezed, &se.fc2, None, [1, 1])?;
        let gate = g.hard_sigmoid(&excited);
        x = g.node("Mul", &[&x, &gate], vec![]);
    }
    let (x, side) = conv_bn(g, &block.project, &x, side)?;
    Ok((if block.residual { g.add(&x, input) } else { x }, side))
}

fn resnet(g: &mut Graph, b: &ResNet, x: &str, side: Side) -> Step {
    let (x, side) = conv_bn(g, &b.stem.conv, x, side)?;
    let pool = &b.stem.pool;
    let pads = match &pool.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [*top, *left, *bottom, *right],
        _ => [0; 4],
    };
    let [k, s] = [pool.kernel_size[0], pool.stride[0]];
    let mut x = g.node(
        "MaxPool",
        &[&x],
        vec![
            ints("kernel_shape", &[k as i64, k as i64]),
            ints("strides", &[s as i64, s as i64]),
            ints("pads", &pads.map(|p| p as i64)),
        ],
    );
    let mut side = [
        (side[0] + pads[0] + pads[2] - k) / s + 1,
        (side[1] + pads[1] + pads[3] - k) / s + 1,
    ];
    for (_, block) in b.blocks() {
        (x, side) = res_block(g, block, &x, side)?;
    }
    Ok((x, side))
}

fn res_block(g: &mut Graph, block: &ResBlock, input: &str, side: Side) -> Step {
    let (x, out_side) = g.conv_bn_act(input, &block.conv1, &block.bn1, Act::Relu, side)?;
    let (mut x, mut out_side) = g.conv(&x, &block.conv2, Some(&block.bn2), out_side)?;
    if let (Some(conv3), Some(bn3)) = (&block.conv3, &block.bn3) {
        let relu = g.act(&x, Act::Relu);
        (x, out_side) = g.conv(&relu, conv3, Some(bn3), out_side)?;
    }
    let shortcut = match &block.downsample {
        Some(d) => g.conv(input, &d.conv, Some(&d.bn), side)?.0,
        None => input.to_string(),
    };
    let sum = g.add(&x, &shortcut);
    Ok((g.act(&sum, Act::Relu), out_side))
}
