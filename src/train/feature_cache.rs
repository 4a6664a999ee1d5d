//! The frozen-prefix feature cache. When a stage starts with frozen layer groups, their output
//! for an image never changes during that stage, so it is computed once per image and view,
//! kept, and later epochs run only the groups after the boundary.
//!
//! A cache lives for one stage of one run: a different freeze plan, model, preprocessing or data
//! set is a different stage or run, so it can never see stale features.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::models::{Activation, Network};

/// Why the cache could not keep or give back features.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The device could not hand the activations back.
    #[error("the compute device failed: {0}")]
    Device(String),
    /// The scratch file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The scratch file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A row could not be written.
    #[error("cannot write the feature cache: {0}")]
    Write(#[source] std::io::Error),
    /// A row could not be read back.
    #[error("cannot read the feature cache: {0}")]
    Read(#[source] std::io::Error),
    /// Nothing was cached yet.
    #[error("the feature cache is empty")]
    Empty,
    /// The cached activations have a shape no layer group gives.
    #[error("unexpected cached shape {0:?}")]
    Shape(Vec<usize>),
}

/// Fixed-size float rows, in memory or in a scratch file.
pub struct FeatureStore {
    row_len: usize,
    present: Vec<bool>,
    backing: Backing,
}

enum Backing {
    Memory(Vec<f32>),
    File { file: File, path: PathBuf },
}

impl FeatureStore {
    /// Room for `rows` rows of `row_len` floats: in memory when that fits `memory_bytes`,
    /// otherwise in a file at `spill` (removed when the store is dropped).
    pub fn new(
        rows: usize,
        row_len: usize,
        memory_bytes: usize,
        spill: &Path,
    ) -> std::io::Result<Self> {
        let bytes = rows * row_len * 4;
        let backing = if bytes <= memory_bytes {
            Backing::Memory(vec![0.0; rows * row_len])
        } else {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(spill)?;
            file.set_len(bytes as u64)?;
            Backing::File {
                file,
                path: spill.to_path_buf(),
            }
        };
        Ok(Self {
            row_len,
            present: vec![false; rows],
            backing,
        })
    }

    /// Whether the rows are on disk.
    pub fn on_disk(&self) -> bool {
        matches!(self.backing, Backing::File { .. })
    }

    /// Whether row `i` was stored.
    pub fn has(&self, i: usize) -> bool {
        self.present.get(i).copied().unwrap_or(false)
    }

    /// Stores row `i`.
    pub fn put(&mut self, i: usize, row: &[f32]) -> std::io::Result<()> {
        debug_assert_eq!(row.len(), self.row_len);
        match &mut self.backing {
            Backing::Memory(data) => {
                data[i * self.row_len..(i + 1) * self.row_len].copy_from_slice(row)
            }
            Backing::File { file, .. } => {
                file.seek(SeekFrom::Start((i * self.row_len * 4) as u64))?;
                let bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
                file.write_all(&bytes)?;
            }
        }
        self.present[i] = true;
        Ok(())
    }

    /// Appends row `i` to `out`.
    pub fn read_into(&mut self, i: usize, out: &mut Vec<f32>) -> std::io::Result<()> {
        match &mut self.backing {
            Backing::Memory(data) => {
                out.extend_from_slice(&data[i * self.row_len..(i + 1) * self.row_len])
            }
            Backing::File { file, .. } => {
                file.seek(SeekFrom::Start((i * self.row_len * 4) as u64))?;
                let mut bytes = vec![0u8; self.row_len * 4];
                file.read_exact(&mut bytes)?;
                out.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
        }
        Ok(())
    }
}

impl Drop for FeatureStore {
    fn drop(&mut self) {
        if let Backing::File { path, .. } = &self.backing {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Cached activations at one boundary for a set of images, in one or more fixed views.
pub struct FeatureCache {
    /// Groups before this index are frozen and cached.
    pub boundary: usize,
    views: usize,
    images: usize,
    /// Per-image shape of the cached activation (one entry when pooled).
    shape: Vec<usize>,
    store: Option<FeatureStore>,
    memory_bytes: usize,
    spill: PathBuf,
    /// Seconds spent running the frozen groups since [`FeatureCache::take_fill_seconds`].
    fill_seconds: f64,
}

impl FeatureCache {
    /// An empty cache for `images` images in `views` views at `boundary`; `spill` is the file
    /// used when the cache outgrows `memory_bytes`.
    pub fn new(
        boundary: usize,
        images: usize,
        views: usize,
        memory_bytes: usize,
        spill: PathBuf,
    ) -> Self {
        Self {
            boundary,
            views: views.max(1),
            images,
            shape: Vec::new(),
            store: None,
            memory_bytes,
            spill,
            fill_seconds: 0.0,
        }
    }

    /// Seconds spent running the frozen groups since the last call.
    pub fn take_fill_seconds(&mut self) -> f64 {
        std::mem::take(&mut self.fill_seconds)
    }

    /// Whether every image of `view` is cached.
    pub fn has_view(&self, view: usize) -> bool {
        self.store
            .as_ref()
            .is_some_and(|s| (0..self.images).all(|i| s.has(self.slot(view, i))))
    }

    fn slot(&self, view: usize, image: usize) -> usize {
        (view % self.views) * self.images + image
    }

    /// Runs the frozen groups on `images` (the images `indices`, seen in `view`), stores the
    /// result and returns it.
    pub fn fill(
        &mut self,
        network: &Network,
        images: Tensor<4>,
        view: usize,
        indices: &[usize],
    ) -> Result<Activation, CacheError> {
        let started = std::time::Instant::now();
        let activation = network.forward_until(images, self.boundary);
        let data = match &activation {
            Activation::Map(x) => x.to_data(),
            Activation::Pooled(x) => x.to_data(),
        };
        let values: Vec<f32> = data
            .try_to_vec::<f32>()
            .map_err(|e| CacheError::Device(e.to_string()))?;
        let dims = activation.dims();
        let row_len: usize = dims[1..].iter().product();
        if self.store.is_none() {
            self.shape = dims[1..].to_vec();
            let rows = self.views * self.images;
            let store = FeatureStore::new(rows, row_len, self.memory_bytes, &self.spill).map_err(
                |source| CacheError::Create {
                    path: self.spill.clone(),
                    source,
                },
            )?;
            self.store = Some(store);
        }
        let slots: Vec<usize> = indices.iter().map(|&i| self.slot(view, i)).collect();
        let store = self.store.as_mut().ok_or(CacheError::Empty)?;
        for (row, slot) in values.chunks_exact(row_len).zip(slots) {
            store.put(slot, row).map_err(CacheError::Write)?;
        }
        self.fill_seconds += started.elapsed().as_secs_f64();
        Ok(activation)
    }

    /// The cached activations of images `indices` in `view`, as one batch on `device`.
    pub fn read(
        &mut self,
        view: usize,
        indices: &[usize],
        device: &Device,
    ) -> Result<Activation, CacheError> {
        let slots: Vec<usize> = indices.iter().map(|&i| self.slot(view, i)).collect();
        let store = self.store.as_mut().ok_or(CacheError::Empty)?;
        let mut values = Vec::with_capacity(slots.len() * store.row_len);
        for slot in slots {
            store
                .read_into(slot, &mut values)
                .map_err(CacheError::Read)?;
        }
        let n = indices.len();
        Ok(match self.shape.as_slice() {
            [c] => Activation::Pooled(Tensor::from_data(TensorData::new(values, [n, *c]), device)),
            [c, h, w] => Activation::Map(Tensor::from_data(
                TensorData::new(values, [n, *c, *h, *w]),
                device,
            )),
            other => return Err(CacheError::Shape(other.to_vec())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_file_stores_give_back_what_was_put() {
        let dir = std::env::temp_dir().join(format!("graft-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spill = dir.join("cache.bin");
        for budget in [1 << 20, 8] {
            let mut store = FeatureStore::new(4, 3, budget, &spill).unwrap();
            assert_eq!(store.on_disk(), budget == 8);
            store.put(2, &[1.0, -2.5, 3.0]).unwrap();
            store.put(0, &[7.0, 8.0, 9.0]).unwrap();
            assert!(store.has(2) && store.has(0) && !store.has(1));
            let mut out = Vec::new();
            store.read_into(2, &mut out).unwrap();
            store.read_into(0, &mut out).unwrap();
            assert_eq!(out, [1.0, -2.5, 3.0, 7.0, 8.0, 9.0]);
            drop(store);
            assert!(!spill.exists(), "the scratch file goes with the store");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
