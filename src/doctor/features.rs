//! The frozen backbone's pooled features of every image (plain centre crop), with a perceptual
//! hash of each, computed once per (model, weights, input size, file version) and kept in the
//! user's cache folder, never in the data set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::DoctorError;
use crate::data::preprocess::{eval_view, push_chw, resize_side};
use crate::data::{self, DecodeError};
use crate::models::{Activation, HeadConfig, ModelKind, Network, NetworkSpec};
use crate::platform::fsutil::{FileState, ensure_outside, file_state, write_json_atomic};
use crate::platform::hash::Fnv1a;

/// Images decoded and run through the backbone at a time (bounds memory).
const CHUNK: usize = 32;

/// One image's features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageFeatures {
    /// The file.
    #[serde(with = "crate::platform::paths::as_path")]
    pub path: PathBuf,
    /// Its size and time when read.
    pub state: FileState,
    /// Pooled backbone output.
    pub features: Vec<f32>,
    /// 64-bit difference hash of the grey image (9×8 gradient signs).
    pub dhash: u64,
    /// Mean colour of each cell of a 4×4 grid, RGB, row by row (48 bytes).
    pub colours: Vec<u8>,
}

/// Which features a cache file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureKey {
    /// The model.
    pub model: ModelKind,
    /// The weight file and its version.
    pub weights: (PathBuf, Option<FileState>),
    /// Input side.
    pub input_size: u32,
}

impl FeatureKey {
    fn file_name(&self) -> String {
        let text = format!(
            "{}|{}|{:?}|{}",
            self.model.name(),
            self.weights.0.display(),
            self.weights.1,
            self.input_size
        );
        let mut hash = Fnv1a::default();
        hash.feed(text.as_bytes());
        format!(
            "{}-{}-v2-{:016x}.json",
            self.model.name(),
            self.input_size,
            hash.finish()
        )
    }
}

/// Where feature caches live.
pub fn cache_dir() -> PathBuf {
    crate::platform::assets::user_data_dir().join("features")
}

/// The 64-bit difference hash: the image shrunk to 9×8 grey, one bit per horizontal neighbour
/// pair (left brighter than right). Re-encoding, resizing and mild crops keep most bits.
pub fn dhash(image: &RgbImage) -> u64 {
    let grey = image::imageops::grayscale(image);
    let small = image::imageops::resize(&grey, 9, 8, image::imageops::FilterType::Triangle);
    let mut bits = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let left = small.get_pixel(x, y)[0];
            let right = small.get_pixel(x + 1, y)[0];
            bits = (bits << 1) | u64::from(left > right);
        }
    }
    bits
}

/// The mean colour of each cell of a 4×4 grid over the image, RGB, row by row.
pub fn colour_grid(image: &RgbImage) -> Vec<u8> {
    let (w, h) = image.dimensions();
    let mut sums = [[0u64; 3]; 16];
    let mut counts = [0u64; 16];
    for (x, y, p) in image.enumerate_pixels() {
        let cell = ((y * 4 / h.max(1)) * 4 + x * 4 / w.max(1)) as usize;
        for c in 0..3 {
            sums[cell][c] += u64::from(p[c]);
        }
        counts[cell] += 1;
    }
    sums.iter()
        .zip(counts)
        .flat_map(|(s, n)| s.map(|v| (v / n.max(1)) as u8))
        .collect()
}

/// What a feature pass needs to know.
pub struct FeaturePass<'a> {
    /// Which network and preprocessing.
    pub key: FeatureKey,
    /// The data set root (the cache must lie outside it).
    pub data_root: &'a Path,
    /// Where to compute.
    pub device: &'a Device,
    /// Called with (images done, images in all).
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    /// Stops the pass early.
    pub cancel: &'a AtomicBool,
}

impl FeaturePass<'_> {
    /// Features of `files`, in order: from the cache where the file is unchanged, computed
    /// otherwise. Files that cannot be decoded come back as errors.
    pub fn run(
        &self,
        files: &[PathBuf],
    ) -> Result<Vec<Result<ImageFeatures, DecodeError>>, DoctorError> {
        let cache_path = cache_dir().join(self.key.file_name());
        ensure_outside(&cache_path, self.data_root)?;
        let mut cached: HashMap<PathBuf, ImageFeatures> = std::fs::read(&cache_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<ImageFeatures>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let fresh = |p: &Path| {
            let state = file_state(p)?;
            cached.get(p).filter(|f| f.state == state).cloned()
        };
        let mut out: Vec<Option<Result<ImageFeatures, DecodeError>>> =
            files.iter().map(|p| fresh(p).map(Ok)).collect();
        let missing: Vec<usize> = (0..files.len()).filter(|i| out[*i].is_none()).collect();
        if !missing.is_empty() {
            let network = self.network()?;
            let total = files.len();
            for chunk in missing.chunks(CHUNK) {
                let paths: Vec<PathBuf> = chunk.iter().map(|i| files[*i].clone()).collect();
                let computed = self.compute(&network, &paths)?;
                for (i, result) in chunk.iter().zip(computed) {
                    out[*i] = Some(result);
                }
                let done = out.iter().filter(|o| o.is_some()).count();
                (self.progress)(done, total);
            }
            for f in out.iter().flatten().flatten() {
                cached.insert(f.path.clone(), f.clone());
            }
            // Entries of files that are gone (or changed) are dropped, so the cache stays the
            // size of the folders still on disk.
            let mut keep: Vec<ImageFeatures> = cached
                .into_values()
                .filter(|f| file_state(&f.path) == Some(f.state))
                .collect();
            keep.sort_by(|a, b| a.path.cmp(&b.path));
            // Only a cache: a failed write costs a recomputation next time.
            if std::fs::create_dir_all(cache_dir()).is_ok() {
                let _ = write_json_atomic(&cache_path, &keep);
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or(Err(DecodeError::Io("not computed".into()))))
            .collect())
    }

    fn network(&self) -> Result<Network, DoctorError> {
        let spec = NetworkSpec {
            kind: self.key.model,
            classes: 2,
            head: HeadConfig {
                dropout: 0.0,
                hidden: None,
            },
            input_size: self.key.input_size,
        };
        let (network, _) =
            Network::pretrained(&spec, &self.key.weights.0, false, None, self.device)?;
        Ok(network.valid())
    }

    fn compute(
        &self,
        network: &Network,
        paths: &[PathBuf],
    ) -> Result<Vec<Result<ImageFeatures, DecodeError>>, DoctorError> {
        let side = self.key.input_size;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let decoded = data::decode_all(paths, resize_side(side), threads, &|_, _| {}, self.cancel)?;
        let norm = self.key.model.normalization();
        let mut pixels = Vec::new();
        let mut good = Vec::new();
        for (i, result) in decoded.iter().enumerate() {
            if let Ok(image) = result {
                push_chw(&eval_view(image, side), &norm, &mut pixels);
                good.push(i);
            }
        }
        let mut features: Vec<Vec<f32>> = Vec::new();
        if !good.is_empty() {
            let s = side as usize;
            let x =
                Tensor::<4>::from_data(TensorData::new(pixels, [good.len(), 3, s, s]), self.device);
            let Activation::Pooled(pooled) = network.forward_until(x, network.backbone_groups())
            else {
                return Err(DoctorError::Device(
                    "the backbone gave no pooled output".into(),
                ));
            };
            let width = pooled.dims()[1];
            let flat = pooled
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| DoctorError::Device(e.to_string()))?;
            features = flat.chunks(width).map(<[f32]>::to_vec).collect();
        }
        let mut next = features.into_iter();
        Ok(paths
            .iter()
            .zip(decoded)
            .map(|(path, result)| {
                let image = result?;
                Ok(ImageFeatures {
                    path: path.clone(),
                    state: file_state(path).unwrap_or_default(),
                    features: next.next().unwrap_or_default(),
                    dhash: dhash(&image),
                    colours: colour_grid(&image),
                })
            })
            .collect())
    }
}
