//! How parameter names in PyTorch files map to Graft's, both ways: each architecture keeps its
//! own table (`KEY_REMAP` in, `EXPORT_REMAP` out); this file picks the table for a family.

use super::kind::{Family, ModelKind};
use super::{efficientnet_lite, resnet};

/// burn names the backbone's variant in checkpoint paths (`backbone.Lite.stem…`); PyTorch files
/// and runs saved before Graft had several architectures have no such level.
pub const VARIANT_LEVEL: (&str, &str) = (r"^backbone\.(Lite|ResNet|MobileNet)\.", "backbone.");

fn owned(table: &[(&str, &str)]) -> Vec<(String, String)> {
    table
        .iter()
        .map(|(from, to)| (from.to_string(), to.to_string()))
        .collect()
}

/// The file's names → ours for `family`.
pub fn import_remap(family: &Family) -> Vec<(String, String)> {
    let mut remap = match family {
        Family::Lite(_) => owned(efficientnet_lite::KEY_REMAP),
        Family::ResNet(_) => owned(resnet::KEY_REMAP),
        Family::MobileNet(arch) => arch.key_remap(),
    };
    // A configured hidden head layer, as Graft's export names it.
    remap.push((r"^_?fc_hidden\.".into(), "head.hidden.".into()));
    remap
}

/// Our names → the PyTorch names of `kind`'s reference implementation.
pub fn export_remap(kind: ModelKind) -> Vec<(String, String)> {
    let mut remap = owned(&[VARIANT_LEVEL]);
    remap.extend(match kind.family() {
        Family::Lite(_) => owned(efficientnet_lite::EXPORT_REMAP),
        Family::ResNet(_) => owned(resnet::EXPORT_REMAP),
        Family::MobileNet(arch) => arch.export_remap(),
    });
    remap
}
