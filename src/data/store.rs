//! Decoded images within a memory budget. The images decoded first stay in memory until the
//! budget is full; any other image is decoded again each time a batch needs it. Each epoch visits
//! the images in a new random order, so no eviction policy would keep more of them useful than a
//! fixed set does, and a fixed set never churns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::decode::{DecodeError, decode_file_at, read_file};
use super::preprocess::shorter_side_dimensions;

/// The images of one data set, each decoded at one shorter side, some of them kept.
#[derive(Debug)]
pub struct ImageStore {
    paths: Vec<PathBuf>,
    /// The shorter side images are resized to as they are decoded (`None`: as stored).
    resize_to: Option<u32>,
    budget_bytes: usize,
    kept: Mutex<Kept>,
    decodes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Kept {
    images: HashMap<usize, Arc<RgbImage>>,
    bytes: usize,
    peak_bytes: usize,
}

/// What a store did over its life, for run records and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// The budget, in bytes.
    pub budget_bytes: usize,
    /// The most bytes of decoded images it ever held.
    pub peak_bytes: usize,
    /// Images it holds now.
    pub kept_images: usize,
    /// Times an image file was decoded (first decodes included).
    pub decodes: usize,
}

impl ImageStore {
    /// A store for `paths`, decoding each at shorter side `resize_to`, keeping at most
    /// `budget_bytes` of decoded pixels.
    pub fn new(paths: Vec<PathBuf>, resize_to: Option<u32>, budget_bytes: usize) -> Self {
        Self {
            paths,
            resize_to,
            budget_bytes,
            kept: Mutex::new(Kept::default()),
            decodes: AtomicUsize::new(0),
        }
    }

    /// A store holding exactly `images`, whatever their size (for images made in memory).
    pub fn holding(images: Vec<(PathBuf, RgbImage)>) -> Self {
        let bytes: usize = images.iter().map(|(_, i)| image_bytes(i)).sum();
        let (paths, images): (Vec<PathBuf>, Vec<RgbImage>) = images.into_iter().unzip();
        let kept = Kept {
            images: images.into_iter().map(Arc::new).enumerate().collect(),
            bytes,
            peak_bytes: bytes,
        };
        Self {
            paths,
            resize_to: None,
            budget_bytes: bytes,
            kept: Mutex::new(kept),
            decodes: AtomicUsize::new(0),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the store has no image.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Image `slot` if it is in memory.
    pub fn kept(&self, slot: usize) -> Option<Arc<RgbImage>> {
        self.lock().images.get(&slot).cloned()
    }

    /// Image `slot`: from memory, or decoded from its file (and kept if the budget allows).
    pub fn get(&self, slot: usize) -> Result<Arc<RgbImage>, DecodeError> {
        if let Some(image) = self.kept(slot) {
            return Ok(image);
        }
        let image = self.decode(slot)?;
        Ok(self.offer(slot, image))
    }

    /// Decodes image `slot` from its file, without keeping it.
    pub fn decode(&self, slot: usize) -> Result<RgbImage, DecodeError> {
        self.decodes.fetch_add(1, Ordering::Relaxed);
        decode_file_at(&self.paths[slot], self.resize_to)
    }

    /// Decodes image `slot` (which checks its file whole) and keeps it if it fits the budget.
    /// An image that would not fit is dropped before it is resized: when a data set outgrows
    /// the budget, checking the rest of it costs their decoding only.
    pub fn check_and_keep(&self, slot: usize) -> Result<(), DecodeError> {
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let decoded = read_file(&self.paths[slot])?;
        let (w, h) = decoded.stored_dimensions();
        let (w, h) = match self.resize_to {
            Some(side) => shorter_side_dimensions(w, h, side),
            None => (w, h),
        };
        let room = {
            let kept = self.lock();
            kept.bytes + w as usize * h as usize * 3 <= self.budget_bytes
        };
        if room {
            self.offer(slot, decoded.finish(self.resize_to));
        }
        Ok(())
    }

    /// Keeps `image` as image `slot` if it fits the budget; returns it shared either way.
    pub fn offer(&self, slot: usize, image: RgbImage) -> Arc<RgbImage> {
        let image = Arc::new(image);
        let bytes = image_bytes(&image);
        let mut kept = self.lock();
        if kept.bytes + bytes <= self.budget_bytes && !kept.images.contains_key(&slot) {
            kept.bytes += bytes;
            kept.peak_bytes = kept.peak_bytes.max(kept.bytes);
            kept.images.insert(slot, image.clone());
        }
        image
    }

    /// What the store did so far.
    pub fn stats(&self) -> StoreStats {
        let kept = self.lock();
        StoreStats {
            budget_bytes: self.budget_bytes,
            peak_bytes: kept.peak_bytes,
            kept_images: kept.images.len(),
            decodes: self.decodes.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes of pixels in `image`.
pub fn image_bytes(image: &RgbImage) -> usize {
    image.as_raw().len()
}

/// One image of a store.
#[derive(Clone, Debug)]
pub struct ImageRef {
    store: Arc<ImageStore>,
    slot: usize,
}

impl ImageRef {
    /// Image `slot` of `store`.
    pub fn new(store: Arc<ImageStore>, slot: usize) -> Self {
        Self { store, slot }
    }

    /// An image made in memory, in a store of its own.
    pub fn in_memory(path: PathBuf, image: RgbImage) -> Self {
        Self::new(Arc::new(ImageStore::holding(vec![(path, image)])), 0)
    }

    /// The pixels: from memory, or decoded again from the file.
    pub fn load(&self) -> Result<Arc<RgbImage>, DecodeError> {
        self.store.get(self.slot)
    }

    /// The pixels if they are in memory (nothing is decoded).
    pub fn kept(&self) -> Option<Arc<RgbImage>> {
        self.store.kept(self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_of(n: usize, side: u32, tag: &str) -> (PathBuf, Vec<PathBuf>) {
        let dir = std::env::temp_dir().join(format!("graft-store-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.png"));
                RgbImage::from_pixel(side, side, image::Rgb([i as u8, 7, 9]))
                    .save(&path)
                    .unwrap();
                path
            })
            .collect();
        (dir, paths)
    }

    #[test]
    fn never_holds_more_than_its_budget_and_decodes_the_rest_again() {
        let (dir, paths) = folder_of(10, 8, "budget");
        let one = 8 * 8 * 3;
        let store = ImageStore::new(paths, None, 3 * one + 10);
        for round in 0..2 {
            for slot in 0..10 {
                let image = store.get(slot).unwrap();
                assert_eq!(image.get_pixel(0, 0)[0], slot as u8, "round {round}");
            }
        }
        let stats = store.stats();
        assert_eq!(stats.kept_images, 3);
        assert_eq!(stats.peak_bytes, 3 * one);
        // Three kept after their first decode; the other seven decoded in both rounds.
        assert_eq!(stats.decodes, 3 + 7 * 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn checking_keeps_what_fits_resized_and_still_reads_the_rest_whole() {
        let (dir, mut paths) = folder_of(4, 8, "check");
        let broken = dir.join("broken.png");
        std::fs::write(&broken, b"\x89PNG\r\n\x1a\n not really").unwrap();
        paths.push(broken);
        // Room for two images at shorter side 16.
        let store = ImageStore::new(paths.clone(), Some(16), 2 * 16 * 16 * 3);
        let checked: Vec<bool> = (0..5)
            .map(|slot| store.check_and_keep(slot).is_ok())
            .collect();
        assert_eq!(checked, [true, true, true, true, false]);
        let stats = store.stats();
        assert_eq!((stats.kept_images, stats.decodes), (2, 5));
        for (slot, path) in paths.iter().enumerate().take(4) {
            let served = store.get(slot).unwrap();
            assert_eq!(*served, decode_file_at(path, Some(16)).unwrap());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_gone_since_it_was_kept_is_still_served_and_one_gone_otherwise_is_an_error() {
        let (dir, paths) = folder_of(2, 4, "gone");
        let store = ImageStore::new(paths.clone(), None, 4 * 4 * 3);
        store.get(0).unwrap();
        std::fs::remove_file(&paths[0]).unwrap();
        std::fs::remove_file(&paths[1]).unwrap();
        assert!(store.get(0).is_ok());
        assert!(store.get(1).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
