//! Image folders: finding classes and files, decoding them on worker threads, splitting them, and
//! turning them into batches.

pub mod augment;
pub mod batches;
pub mod cleaned;
pub mod complete;
pub mod curate;
pub mod decode;
pub mod inspect;
pub mod manifest;
pub mod preprocess;
pub mod resample;
pub mod rng;
pub mod scan;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::config::Curation;
use crate::platform::hash::Fnv1a;
use manifest::Part;
use store::{ImageRef, ImageStore};

pub use decode::DecodeError;
pub use scan::{Layout, Scan, ScanWatch, scan_folder, scan_folder_watched};

/// A data set that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path is not a folder.
    #[error("{path} is not a folder: point Graft at a folder with one sub-folder per class")]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// A folder could not be listed.
    #[error("cannot read folder {path}: {reason}")]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Fewer than two classes with usable images.
    #[error(
        "{root} has {} class{} with usable images ({}): Graft needs at least two sub-folders, one per class, each with images",
        usable.len(), if usable.len() == 1 { "" } else { "es" },
        if usable.is_empty() { "none".to_string() } else { usable.join(", ") }
    )]
    TooFewClasses {
        /// The data set root.
        root: PathBuf,
        /// The classes that do have images.
        usable: Vec<String>,
    },
    /// Preparation was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// A file that was left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The file.
    #[serde(with = "crate::platform::paths::as_path")]
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: DecodeError,
}

impl std::fmt::Display for SkippedFile {
    /// "path: reason", as every list of skipped files shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// One usable image, decoded and resized for training.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Where it came from.
    pub path: PathBuf,
    /// Class index.
    pub label: usize,
    /// The image resized so its shorter side is [`preprocess::resize_side`] of the input size:
    /// kept in memory or decoded again when needed.
    pub image: ImageRef,
}

impl Sample {
    /// A sample whose pixels were made in memory.
    pub fn in_memory(path: PathBuf, label: usize, image: RgbImage) -> Self {
        Self {
            image: ImageRef::in_memory(path.clone(), image),
            path,
            label,
        }
    }

    /// The pixels; a file that can no longer be decoded comes back with its reason.
    pub fn load(&self) -> Result<Arc<RgbImage>, SkippedFile> {
        self.image.load().map_err(|reason| SkippedFile {
            path: self.path.clone(),
            reason,
        })
    }
}

/// A decoded, split data set, ready for training at one input size.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder.
    pub root: PathBuf,
    /// How the folder was laid out.
    pub layout: Layout,
    /// Class names, sorted; classes without a usable image are not among them.
    pub classes: Vec<String>,
    /// Training images.
    pub train: Vec<Sample>,
    /// Validation images.
    pub val: Vec<Sample>,
    /// Test images: scored once, after training, never used to choose an epoch.
    pub test: Vec<Sample>,
    /// Files the user's decisions left out.
    pub excluded: Vec<PathBuf>,
    /// Files the user's decisions moved to another class.
    pub relabelled: usize,
    /// The user's decisions that could not be applied, in words.
    pub curation_notes: Vec<String>,
    /// Files that could not be used.
    pub skipped: Vec<SkippedFile>,
    /// Class folders left with no usable image (not trained on).
    pub empty_classes: Vec<String>,
    /// Classes with validation images but no training image: left out, since no model can
    /// learn them.
    pub no_train_images: Vec<String>,
    /// Classes trained on without a validation image: nothing measures them.
    pub no_val_images: Vec<String>,
    /// The input side the images were prepared for.
    pub input_size: u32,
    /// The decoded images, within the memory budget.
    pub images: Arc<ImageStore>,
    /// [`fingerprint`] of every file found (skipped ones included).
    pub fingerprint: String,
}

/// How to prepare a folder.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// Network input side.
    pub input_size: u32,
    /// Validation fraction for a flat folder.
    pub val_fraction: f64,
    /// Test fraction for a flat folder.
    pub test_fraction: f64,
    /// Files to leave out or relabel.
    pub curation: Curation,
    /// Split seed.
    pub seed: u64,
    /// Cap on images per class.
    pub max_images_per_class: Option<usize>,
    /// Decoding threads.
    pub threads: usize,
    /// Decoded images kept in memory up to this many bytes; the rest are decoded again when
    /// needed.
    pub image_memory_bytes: usize,
}

impl PrepareOptions {
    /// How `config` prepares its folder, at `input_size` on `threads` decoding threads.
    pub fn of_config(config: &crate::config::TrainConfig, input_size: u32, threads: usize) -> Self {
        Self {
            input_size,
            val_fraction: config.split.val_fraction,
            test_fraction: config.split.test_fraction,
            seed: config.seed,
            max_images_per_class: config.max_images_per_class,
            curation: config.curation.clone(),
            threads,
            image_memory_bytes: config.image_memory_mib.saturating_mul(1 << 20),
        }
    }

    /// Every image of a folder, unsplit (all in `train`) and as its folders label it.
    pub fn whole(input_size: u32, threads: usize) -> Self {
        Self {
            input_size,
            val_fraction: 0.0,
            test_fraction: 0.0,
            seed: 1,
            max_images_per_class: None,
            curation: Curation::default(),
            threads,
            image_memory_bytes: crate::config::DEFAULT_IMAGE_MEMORY_MIB << 20,
        }
    }
}

/// Decodes `files` on `threads` worker threads; results keep the input order.
///
/// `progress(done, total)` is called from the workers; `cancel` stops early.
pub fn decode_all(
    files: &[PathBuf],
    resize_to: u32,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<Result<RgbImage, DecodeError>>, DataError> {
    let decode = |i: usize| decode::decode_file_at(&files[i], Some(resize_to));
    parallel_map(files.len(), threads, progress, cancel, &decode)
}

/// Decodes every image of `store` once on `threads` worker threads, keeping what its budget
/// allows; says for each image (in order) whether it could be decoded.
pub fn decode_into(
    store: &ImageStore,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<Result<(), DecodeError>>, DataError> {
    let decode = |i: usize| store.check_and_keep(i);
    parallel_map(store.len(), threads, progress, cancel, &decode)
}

/// `f(i)` for every `i < n`, on `threads` worker threads, in order.
pub(crate) fn parallel_map<T: Send>(
    n: usize,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
    f: &(dyn Fn(usize) -> Result<T, DecodeError> + Sync),
) -> Result<Vec<Result<T, DecodeError>>, DataError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let chunks: Vec<Vec<(usize, Result<T, DecodeError>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while !cancel.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        out.push((i, f(i)));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, n);
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(DataError::Cancelled);
    }
    let mut results: Vec<Option<Result<T, DecodeError>>> = (0..n).map(|_| None).collect();
    for (i, r) in chunks.into_iter().flatten() {
        results[i] = Some(r);
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(DecodeError::Io("decoder thread failed".into()))))
        .collect())
}

/// Scans, decodes and splits `root`.
///
/// `progress(done, total)` first counts the image files found (with `total` 0), then the files
/// decoded; `cancel` stops either.
pub fn prepare(
    root: &Path,
    options: &PrepareOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<Dataset, DataError> {
    let found = |n: usize| progress(n, 0);
    let mut scan = scan_folder_watched(
        root,
        ScanWatch {
            found: &found,
            cancel,
        },
    )?;
    let applied = curate::apply(&mut scan, &options.curation);
    if let Some(cap) = options.max_images_per_class {
        cap_per_class(&mut scan, cap, options.seed);
    }
    let paths: Vec<PathBuf> = scan.files.iter().map(|f| f.path.clone()).collect();
    let fingerprint = fingerprint(root, paths.iter().map(PathBuf::as_path));
    let resize_to = preprocess::resize_side(options.input_size);
    let images = Arc::new(ImageStore::new(
        paths,
        Some(resize_to),
        options.image_memory_bytes,
    ));
    let decoded = decode_into(&images, options.threads, progress, cancel)?;
    let sorted = sort_decoded(&scan, &images, decoded);
    let per_class = sorted.per_class;
    let mut skipped = std::mem::take(&mut scan.passed_over);
    skipped.extend(sorted.skipped);

    let mut empty_classes = Vec::new();
    let mut no_train_images = Vec::new();
    let mut usable: Vec<(String, Vec<(Sample, Part)>)> = Vec::new();
    for (name, samples) in scan.classes.into_iter().zip(per_class) {
        if samples.is_empty() {
            empty_classes.push(name);
        } else if scan.layout.is_given() && samples.iter().all(|(_, part)| *part != Part::Train) {
            no_train_images.push(name);
        } else {
            usable.push((name, samples));
        }
    }
    if usable.len() < 2 {
        return Err(DataError::TooFewClasses {
            root: root.to_path_buf(),
            usable: usable.into_iter().map(|(c, _)| c).collect(),
        });
    }
    let split = split(usable, scan.layout, options);
    let no_val_images = if split.val.is_empty() {
        Vec::new()
    } else {
        (0..split.classes.len())
            .filter(|c| !split.val.iter().any(|s| s.label == *c))
            .map(|c| split.classes[c].clone())
            .collect()
    };
    Ok(Dataset {
        root: root.to_path_buf(),
        layout: scan.layout,
        classes: split.classes,
        train: split.train,
        val: split.val,
        test: split.test,
        excluded: applied.excluded,
        relabelled: applied.relabelled,
        curation_notes: applied.notes,
        skipped,
        empty_classes,
        no_train_images,
        no_val_images,
        input_size: options.input_size,
        images,
        fingerprint,
    })
}

impl Dataset {
    /// What a person should know about this data before trusting a run on it: every file left
    /// out with its reason, and every class left out or left unmeasured.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped
            .iter()
            .map(|s| format!("skipped {}: {}", s.path.display(), s.reason))
            .collect();
        out.extend(self.curation_notes.iter().cloned());
        for class in &self.empty_classes {
            out.push(format!(
                "class folder `{class}` has no usable image and is left out"
            ));
        }
        for class in &self.no_train_images {
            out.push(format!(
                "class `{class}` has validation images but no training image (no train/{class} folder with a usable image): it is left out, since no model can learn it"
            ));
        }
        for class in &self.no_val_images {
            out.push(format!(
                "class `{class}` has no validation image: the validation accuracy says nothing about it"
            ));
        }
        out
    }
}

/// Decodes `files` (each with its class index) for `input_size`, keeping their order and at
/// most the default memory budget of pixels; the files that cannot be used come back with
/// their reasons.
pub fn load_samples(
    files: &[(PathBuf, usize)],
    input_size: u32,
    threads: usize,
    cancel: &AtomicBool,
) -> Result<(Vec<Sample>, Vec<SkippedFile>), DataError> {
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let resize_to = preprocess::resize_side(input_size);
    let budget = crate::config::DEFAULT_IMAGE_MEMORY_MIB << 20;
    let store = Arc::new(ImageStore::new(paths, Some(resize_to), budget));
    let decoded = decode_into(&store, threads, &|_, _| {}, cancel)?;
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    for (slot, ((path, label), result)) in files.iter().zip(decoded).enumerate() {
        match result {
            Ok(()) => samples.push(Sample {
                path: path.clone(),
                label: *label,
                image: ImageRef::new(store.clone(), slot),
            }),
            Err(reason) => skipped.push(SkippedFile {
                path: path.clone(),
                reason,
            }),
        }
    }
    Ok((samples, skipped))
}

/// Keeps at most `cap` files of each class, drawn with `seed`.
fn cap_per_class(scan: &mut Scan, cap: usize, seed: u64) {
    let mut rng = rng::Rng::new(seed, 11);
    let mut kept = Vec::new();
    for class in 0..scan.classes.len() {
        let mut of_class: Vec<_> = scan
            .files
            .iter()
            .filter(|f| f.class == class)
            .cloned()
            .collect();
        rng.shuffle(&mut of_class);
        of_class.truncate(cap);
        of_class.sort_by(|a, b| a.path.cmp(&b.path));
        kept.extend(of_class);
    }
    scan.files = kept;
}

/// Decoded files sorted by class.
struct Sorted {
    /// Each class's images, with the part of a given split each came from (all
    /// [`Part::Train`] for a flat folder).
    per_class: Vec<Vec<(Sample, Part)>>,
    /// The files that could not be decoded.
    skipped: Vec<SkippedFile>,
}

fn sort_decoded(
    scan: &Scan,
    store: &Arc<ImageStore>,
    decoded: Vec<Result<(), DecodeError>>,
) -> Sorted {
    let mut skipped = Vec::new();
    let mut per_class: Vec<Vec<(Sample, Part)>> = vec![Vec::new(); scan.classes.len()];
    for (slot, (file, result)) in scan.files.iter().zip(decoded).enumerate() {
        let part = match (file.in_val_folder, file.in_test_folder) {
            (true, _) => Part::Val,
            (_, true) => Part::Test,
            _ => Part::Train,
        };
        match result {
            Ok(()) => per_class[file.class].push((
                Sample {
                    path: file.path.clone(),
                    label: file.class,
                    image: ImageRef::new(store.clone(), slot),
                },
                part,
            )),
            Err(reason) => skipped.push(SkippedFile {
                path: file.path.clone(),
                reason,
            }),
        }
    }
    Sorted { per_class, skipped }
}

/// The classes that have images, and their images split into training, validation and test.
#[derive(Default)]
struct Split {
    classes: Vec<String>,
    train: Vec<Sample>,
    val: Vec<Sample>,
    test: Vec<Sample>,
}

/// Labels the usable classes in order and splits them: as the folders say for a given split,
/// otherwise a seeded share of each class for validation (and for test, when asked).
fn split(
    usable: Vec<(String, Vec<(Sample, Part)>)>,
    layout: Layout,
    options: &PrepareOptions,
) -> Split {
    let mut out = Split::default();
    let mut rng = rng::Rng::new(options.seed, 7);
    for (label, (name, samples)) in usable.into_iter().enumerate() {
        out.classes.push(name);
        let mut samples: Vec<(Sample, Part)> = samples
            .into_iter()
            .map(|(mut s, part)| {
                s.label = label;
                (s, part)
            })
            .collect();
        if layout == Layout::Flat {
            rng.shuffle(&mut samples);
            let (n_val, n_test) =
                held_out_counts(samples.len(), options.val_fraction, options.test_fraction);
            for (i, (_, part)) in samples.iter_mut().enumerate() {
                *part = if i < n_val {
                    Part::Val
                } else if i < n_val + n_test {
                    Part::Test
                } else {
                    Part::Train
                };
            }
        }
        for (s, part) in samples {
            match part {
                Part::Val => out.val.push(s),
                Part::Test => out.test.push(s),
                _ => out.train.push(s),
            }
        }
    }
    for part in [&mut out.train, &mut out.val, &mut out.test] {
        part.sort_by(|a, b| a.path.cmp(&b.path));
    }
    out
}

/// Validation and test images for a class of `n` in a flat folder: the test share is drawn
/// only where at least one image is left to train on after the validation share.
pub fn held_out_counts(n: usize, val_fraction: f64, test_fraction: f64) -> (usize, usize) {
    let n_val = val_count(n, val_fraction);
    let n_test = if test_fraction > 0.0 && n >= n_val + 2 {
        ((n as f64 * test_fraction).round() as usize).clamp(1, n - n_val - 1)
    } else {
        0
    };
    (n_val, n_test)
}

/// A fingerprint of the files a data set was made of: FNV-1a over each file's path (relative
/// to `root`), size and modification time, in path order. Any added, removed, renamed or
/// rewritten file changes it.
pub fn fingerprint<'a>(root: &Path, files: impl Iterator<Item = &'a Path>) -> String {
    let mut entries: Vec<(Vec<u8>, manifest::FileState)> = files
        .map(|path| {
            let state = manifest::file_state(path).unwrap_or_default();
            let rel = path.strip_prefix(root).unwrap_or(path);
            (crate::platform::paths::raw_bytes(rel), state)
        })
        .collect();
    entries.sort();
    let mut hash = Fnv1a::default();
    for (path, state) in &entries {
        hash.feed(path);
        hash.feed(&[0]);
        hash.feed(&state.size.to_le_bytes());
        hash.feed(&u128::from(state.modified_ns).to_le_bytes());
    }
    format!("{:016x}-{}", hash.finish(), entries.len())
}

/// Validation images for a class of `n`: the fraction, rounded, but at least one (and at least one
/// left to train on) whenever the class has two or more and the fraction is not zero.
pub fn val_count(n: usize, fraction: f64) -> usize {
    if n < 2 || fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_when_a_file_does() {
        let dir = std::env::temp_dir().join(format!("graft-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.png");
        std::fs::write(&a, b"one").unwrap();
        let first = fingerprint(&dir, [a.as_path()].into_iter());
        assert_eq!(first, fingerprint(&dir, [a.as_path()].into_iter()));
        std::fs::write(&a, b"longer").unwrap();
        assert_ne!(first, fingerprint(&dir, [a.as_path()].into_iter()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_class_of_two_or_more_gets_a_val_image() {
        assert_eq!(val_count(1, 0.2), 0);
        assert_eq!(val_count(2, 0.2), 1);
        assert_eq!(val_count(3, 0.2), 1);
        assert_eq!(val_count(10, 0.2), 2);
        assert_eq!(val_count(126, 0.2), 25);
        assert_eq!(val_count(2, 0.8), 1);
        assert_eq!(val_count(10, 0.0), 0);
    }

    #[test]
    fn a_test_share_leaves_something_to_train_on() {
        assert_eq!(held_out_counts(10, 0.2, 0.0), (2, 0));
        assert_eq!(held_out_counts(10, 0.2, 0.2), (2, 2));
        assert_eq!(held_out_counts(3, 0.2, 0.2), (1, 1));
        assert_eq!(held_out_counts(2, 0.2, 0.2), (1, 0));
        assert_eq!(held_out_counts(100, 0.2, 0.15), (20, 15));
    }
}
