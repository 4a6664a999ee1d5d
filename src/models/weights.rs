//! Loading PyTorch weight files into our modules, with a report a person can read.

use std::path::{Path, PathBuf};

use burn::store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;
use serde::Serialize;

use super::key_remap::import_remap;
use super::kind::{Family, ModelKind};
use super::network::{Network, NetworkSpec};

/// Where the file's ImageNet classifier goes when it is not wanted: nowhere in our module, so it
/// shows up as "unused" and is expected there.
const DROPPED_CLASSIFIER: &str = "dropped_imagenet_classifier.";

/// What a weight load did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Tensors loaded.
    pub applied: usize,
    /// Module tensors the file did not provide (expected: the new head's).
    pub missing: Vec<String>,
    /// File tensors with no place in the module (expected: BatchNorm batch counters, the
    /// dropped ImageNet classifier).
    pub unused: Vec<String>,
}

/// A weight file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file is not there.
    #[error("weight file {path} does not exist")]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// A folder was given where a weight file belongs.
    #[error(
        "{path} is a folder; a weight file is needed here (.pth, .pt or .safetensors){}",
        if inside.is_empty() { String::new() } else { format!(", such as one of these in it: {}", inside.join(", ")) }
    )]
    IsAFolder {
        /// The folder.
        path: PathBuf,
        /// Weight files directly inside it, by name.
        inside: Vec<String>,
    },
    /// A checkpoint's classifier has another number of outputs than the run has classes.
    #[error(
        "{path} has a classifier with {found} outputs but the run's labels.json lists {expected} classes: the two files do not belong to the same run (was labels.json edited or copied from another run?)"
    )]
    HeadOutputs {
        /// The checkpoint.
        path: PathBuf,
        /// Outputs in the checkpoint.
        found: usize,
        /// Classes in the labels.
        expected: usize,
    },
    /// The file could not be read as a PyTorch checkpoint.
    #[error("cannot read {path} as a PyTorch weight file: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        reason: String,
    },
    /// The file's keys fit no architecture Graft knows.
    #[error(
        "{path} is not a model Graft knows (EfficientNet-Lite0/1/2, ResNet-18/34/50/101, MobileNetV2, MobileNetV3-Small/Large); its first tensors:\n{}",
        sample.join("\n")
    )]
    UnknownArchitecture {
        /// The file.
        path: PathBuf,
        /// A few of its keys and shapes.
        sample: Vec<String>,
    },
    /// The file does not fit the architecture.
    #[error("{path} does not fit this architecture:\n{}", problems.join("\n"))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// One line per key: missing, unexpected, or of the wrong shape.
        problems: Vec<String>,
    },
}

fn is_expected_unused(key: &str) -> bool {
    key.ends_with("num_batches_tracked") || key.starts_with(DROPPED_CLASSIFIER)
}

fn is_expected_missing(key: &str, keep_classifier: bool) -> bool {
    // Module-owned training flags are not tensors in any PyTorch file.
    key.ends_with(".training") || (!keep_classifier && key.starts_with("head."))
}

/// The file's format, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// safetensors: an 8-byte header length, then JSON.
    Safetensors,
    /// PyTorch: a zip archive (1.6+) or a legacy pickle.
    Pytorch,
}

/// The weight files directly inside `dir`, by name.
fn weight_files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["pth", "pt", "safetensors"].contains(&e))
        })
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.truncate(5);
    names
}

fn sniff(path: &Path) -> Result<Format, WeightsError> {
    use std::io::Read;
    if path.is_dir() {
        return Err(WeightsError::IsAFolder {
            path: path.to_path_buf(),
            inside: weight_files_in(path),
        });
    }
    if !path.is_file() {
        return Err(WeightsError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let unreadable = |reason: String| WeightsError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let mut head = [0u8; 9];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| unreadable(e.to_string()))?;
    match &head[..n] {
        [b'P', b'K', ..] | [0x80, ..] => Ok(Format::Pytorch),
        [.., b'{'] if n == 9 => Ok(Format::Safetensors),
        _ => Err(unreadable(
            "neither a PyTorch checkpoint (zip or pickle) nor a safetensors file".into(),
        )),
    }
}

impl Network {
    /// A network with pre-trained backbone weights from `path` and a new head (drawn from
    /// `seed` when given).
    ///
    /// With `keep_classifier`, the file's own classifier is loaded too (`classes` must then match
    /// it, 1000 for ImageNet).
    pub fn pretrained(
        spec: &NetworkSpec,
        path: &Path,
        keep_classifier: bool,
        seed: Option<u64>,
        device: &Device,
    ) -> Result<(Self, LoadReport), WeightsError> {
        let mut network = Network::build(spec, device, seed);
        let report = load_weights(&mut network, &spec.kind.family(), path, keep_classifier)?;
        Ok((network, report))
    }
}

/// Names and shapes of the tensors in a weight file.
pub fn file_tensors(path: &Path) -> Result<Vec<(String, Vec<usize>)>, WeightsError> {
    let unreadable = |reason: String| WeightsError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let tensors = match sniff(path)? {
        Format::Pytorch => {
            names_and_shapes(&mut PytorchStore::from_file(path).map_indices_contiguous(false))
        }
        Format::Safetensors => names_and_shapes(&mut SafetensorsStore::from_file(path)),
    }
    .map_err(unreadable)?;
    Ok(tensors)
}

fn names_and_shapes<S: ModuleStore>(store: &mut S) -> Result<Vec<(String, Vec<usize>)>, String>
where
    S::Error: std::fmt::Display,
{
    Ok(store
        .get_all_tensors()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.to_vec()))
        .collect())
}

/// Loads a PyTorch (`.pth`/`.pt`, zip or legacy) or safetensors file with torchvision (or, for
/// EfficientNet-Lite, lukemelas) names into `network`, whose shape is `family`.
pub fn load_weights(
    network: &mut Network,
    family: &Family,
    path: &Path,
    keep_classifier: bool,
) -> Result<LoadReport, WeightsError> {
    let format = sniff(path)?;
    let mut remap = import_remap(family);
    if !keep_classifier {
        remap.push((r"^head\.fc\.".into(), DROPPED_CLASSIFIER.into()));
    }
    let unreadable = |reason: String| WeightsError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let remapper = KeyRemapper::from_patterns(remap).map_err(|e| unreadable(e.to_string()))?;
    let result = match format {
        Format::Pytorch => network
            .load_from(
                &mut PytorchStore::from_file(path)
                    .allow_partial(true)
                    .validate(false)
                    .map_indices_contiguous(false)
                    .remap(remapper),
            )
            .map_err(|e| e.to_string()),
        Format::Safetensors => network
            .load_from(
                &mut SafetensorsStore::from_file(path)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .allow_partial(true)
                    .validate(false)
                    .skip_enum_variants(true)
                    .remap(remapper),
            )
            .map_err(|e| e.to_string()),
    };
    let result = result.map_err(unreadable)?;

    let problems = mismatch_problems(&result, keep_classifier);
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(LoadReport {
        applied: result.applied.len(),
        missing: result.missing.iter().map(|(k, _)| k.clone()).collect(),
        unused: result.unused.clone(),
    })
}

/// What in a load does not fit: wrong shapes, tensors missing from the file, and tensors the
/// model has no place for, each kind listed up to a limit so one cannot hide the others.
fn mismatch_problems(result: &ApplyResult, keep_classifier: bool) -> Vec<String> {
    let capped = |mut lines: Vec<String>, what: &str| {
        lines.sort();
        let total = lines.len();
        if total > MAX_PROBLEMS {
            lines.truncate(MAX_PROBLEMS);
            lines.push(format!("  … and {} more {what}", total - MAX_PROBLEMS));
        }
        lines
    };
    let shapes: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "  {path}: shape {:?} in the file, the model needs {:?}",
                found.as_slice(),
                expected.as_slice()
            ),
            other => format!("  {other}"),
        })
        .collect();
    let absent: Vec<String> = result
        .missing
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !is_expected_missing(k, keep_classifier))
        .map(|k| format!("  {k}: missing from the file"))
        .collect();
    let extra: Vec<String> = result
        .unused
        .iter()
        .filter(|k| !is_expected_unused(k))
        .map(|k| format!("  {k}: in the file but not in the model"))
        .collect();
    let mut problems = capped(shapes, "wrong shapes");
    problems.extend(capped(absent, "missing"));
    problems.extend(capped(extra, "not in the model"));
    problems
}

/// Loads a checkpoint Graft saved (burn's own names, `remap` applied) into `network`, which must
/// fit it exactly; a classifier of another width is told apart from other mismatches.
pub fn load_checkpoint(
    network: &mut Network,
    path: &Path,
    remap: (&str, &str),
) -> Result<(), WeightsError> {
    sniff(path)?;
    let mut store = SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .allow_partial(true)
        .validate(false)
        .with_key_remapping(remap.0, remap.1);
    let result = network
        .load_from(&mut store)
        .map_err(|e| WeightsError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let head_width = result.errors.iter().find_map(|e| match e {
        ApplyError::ShapeMismatch {
            path: key,
            expected,
            found,
        } if key.starts_with("head.") && key.ends_with("bias") && found.as_slice().len() == 1 => {
            Some((
                found.as_slice()[0],
                expected.as_slice().first().copied().unwrap_or(0),
            ))
        }
        _ => None,
    });
    if let Some((found, expected)) = head_width {
        return Err(WeightsError::HeadOutputs {
            path: path.to_path_buf(),
            found,
            expected,
        });
    }
    let problems = mismatch_problems(&result, true);
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(())
}

/// Problems of each kind listed in a mismatch report before the rest are counted.
const MAX_PROBLEMS: usize = 12;

/// The architecture a weight file was saved from, told by its key names and shapes.
pub fn detect_kind(path: &Path) -> Result<ModelKind, WeightsError> {
    let tensors = file_tensors(path)?;
    let has = |k: &str| tensors.iter().any(|(name, _)| name == k);
    let shape = |k: &str| {
        tensors
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, s)| s.clone())
    };
    // Distinct values of the numeric segment after `prefix` (`layer1.` → block indices).
    let count = |prefix: &str| {
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in &tensors {
            if let Some(rest) = name.strip_prefix(prefix)
                && let Some(n) = rest.split('.').next().and_then(|n| n.parse::<usize>().ok())
            {
                seen.insert(n);
            }
        }
        seen.len()
    };
    let kind = if has("_conv_stem.weight") {
        match count("_blocks.") {
            16 => Some(ModelKind::EfficientNetLite0),
            21 => match shape("_blocks.20._project_conv.weight").map(|s| s[0]) {
                Some(320) => Some(ModelKind::EfficientNetLite1),
                Some(352) => Some(ModelKind::EfficientNetLite2),
                _ => None,
            },
            _ => None,
        }
    } else if has("conv1.weight") && has("layer1.0.conv1.weight") {
        let layers = [1, 2, 3, 4].map(|l| count(&format!("layer{l}.")));
        let bottleneck = has("layer1.0.conv3.weight");
        match (bottleneck, layers) {
            (false, [2, 2, 2, 2]) => Some(ModelKind::ResNet18),
            (false, [3, 4, 6, 3]) => Some(ModelKind::ResNet34),
            (true, [3, 4, 6, 3]) => Some(ModelKind::ResNet50),
            (true, [3, 4, 23, 3]) => Some(ModelKind::ResNet101),
            _ => None,
        }
    } else if has("features.1.conv.0.0.weight") {
        Some(ModelKind::MobileNetV2)
    } else if has("features.1.block.0.0.weight") {
        match count("features.") {
            13 => Some(ModelKind::MobileNetV3Small),
            17 => Some(ModelKind::MobileNetV3Large),
            _ => None,
        }
    } else {
        None
    };
    kind.ok_or_else(|| {
        let mut sample: Vec<String> = tensors
            .iter()
            .take(6)
            .map(|(k, s)| format!("  {k} {s:?}"))
            .collect();
        if tensors.len() > 6 {
            sample.push(format!("  … {} tensors in all", tensors.len()));
        }
        WeightsError::UnknownArchitecture {
            path: path.to_path_buf(),
            sample,
        }
    })
}
