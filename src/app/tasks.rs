//! The work background jobs do for the window: each returns what the window shows, or why not.

use std::path::{Path, PathBuf};

use super::class_maps::{MapKey, MapPicture, MapSource};
use super::jobs::Tries;
use super::state::{Project, TopK};
use crate::data::scan::expand_image_paths;
use crate::models::ModelKind;
use crate::run::export::export_run;
use crate::run::predict::Predictor;

/// Each model's pre-trained weight file that is here, with its size.
pub(super) fn weights_here() -> Vec<(ModelKind, u64)> {
    ModelKind::ALL
        .into_iter()
        .filter_map(|k| {
            let size = std::fs::metadata(k.find_weights()?).ok()?.len();
            Some((k, size))
        })
        .collect()
}

/// Exports the run and says what happened, for the Results page.
pub(super) fn export_message(run_dir: &Path, out: &Path) -> String {
    let device = burn::tensor::Device::flex();
    match export_run(run_dir, out, &device) {
        Ok(r) => format!(
            "Exported to {}. Reloaded and re-scored {} validation images: accuracy {:.1} % before, {:.1} % after; largest logit difference {:.1e}. model.onnx checked on {} crops by an ONNX runtime: largest probability difference {:.1e}.",
            r.dir.display(),
            r.images,
            r.accuracy_before * 100.0,
            r.accuracy_after * 100.0,
            r.max_logit_diff,
            r.onnx_check_images,
            r.onnx_max_probability_diff
        ),
        Err(e) => format!("Export failed: {e}"),
    }
}

/// The model's own ImageNet top-5 for one image, on the CPU (one image needs no GPU).
pub(super) fn imagenet_top5(kind: ModelKind, weights: Option<&Path>, image: &Path) -> TopK {
    let device = burn::tensor::Device::flex();
    let predictor = Predictor::imagenet(kind, weights, &device).map_err(|e| e.to_string())?;
    predictor.top_k_file(image, 5).map_err(|e| e.to_string())
}

/// Top-5 classes of the run in `run_dir` for each image named by `paths`; a file that cannot be
/// read gets its own error and the rest are still classified.
pub(super) fn try_images(run_dir: &Path, paths: &[PathBuf]) -> Result<Tries, String> {
    let device = burn::tensor::Device::flex();
    let predictor = Predictor::from_run(run_dir, &device).map_err(|e| e.to_string())?;
    let (files, errors) = expand_image_paths(paths);
    let mut tries: Vec<_> = errors
        .into_iter()
        .map(|e| (PathBuf::new(), Err(e)))
        .collect();
    if files.is_empty() && tries.is_empty() {
        return Err("no images there".into());
    }
    for path in files.into_iter().take(MAX_TRIES) {
        let top = predictor.top_k_file(&path, 5).map_err(|e| e.to_string());
        tries.push((path, top));
    }
    Ok(tries)
}

/// The data doctor's report on `root`, on the CPU (features of a few hundred images take
/// seconds, and a GPU may be training next to it).
pub(super) fn examine_data(
    root: &Path,
    options: &crate::doctor::DoctorOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<std::sync::Arc<crate::doctor::Report>, String> {
    let device = burn::tensor::Device::flex();
    crate::doctor::examine(root, options, &device, progress, cancel)
        .map(std::sync::Arc::new)
        .map_err(|e| e.to_string())
}

/// Images classified per try (a dropped folder can hold thousands).
const MAX_TRIES: usize = 200;

pub(super) fn read_project(path: &Path) -> Result<Box<Project>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map(Box::new)
        .map_err(|e| format!("{} is not a Graft project: {e}", path.display()))
}

/// Computes the maps of `keys` (all of `source`) one by one, sending each as it is done; the
/// model is loaded once, on the CPU.
pub(super) fn class_maps(
    source: &MapSource,
    keys: Vec<MapKey>,
    send: &dyn Fn(MapKey, Result<MapPicture, String>),
) {
    let device = burn::tensor::Device::flex();
    let predictor = match source {
        MapSource::Run(dir) => Predictor::from_run(dir, &device),
        MapSource::ImageNet(kind, weights) => {
            Predictor::imagenet(*kind, weights.as_deref(), &device)
        }
    };
    let predictor = match predictor {
        Ok(p) => p,
        Err(e) => {
            let why = e.to_string();
            keys.into_iter().for_each(|k| send(k, Err(why.clone())));
            return;
        }
    };
    // The gallery asks for two classes of one image: one decode and one pass serve both.
    let mut by_image: Vec<(PathBuf, Vec<MapKey>)> = Vec::new();
    for key in keys {
        match by_image.iter_mut().find(|(image, _)| *image == key.image) {
            Some((_, group)) => group.push(key),
            None => by_image.push((key.image.clone(), vec![key])),
        }
    }
    for (image, keys) in by_image {
        let classes: Vec<Option<usize>> = keys.iter().map(|k| k.class).collect();
        match image_maps(&predictor, &image, &classes) {
            Ok(pictures) => {
                for (key, picture) in keys.into_iter().zip(pictures) {
                    send(key, Ok(picture));
                }
            }
            Err(why) => keys.into_iter().for_each(|k| send(k, Err(why.clone()))),
        }
    }
}

/// The maps of one image for each of `classes` (`None`: the predicted class), in that order.
fn image_maps(
    predictor: &Predictor,
    image: &Path,
    classes: &[Option<usize>],
) -> Result<Vec<MapPicture>, String> {
    let side = crate::data::preprocess::resize_side(predictor.input_size());
    let decoded = crate::data::decode::decode_file_at(image, Some(side))
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let named: Vec<usize> = classes.iter().flatten().copied().collect();
    let mut explained = predictor
        .explain(&decoded, &named)
        .map_err(|e| e.to_string())?;
    let predicted = explained.predicted;
    let has_predicted = explained.maps.iter().any(|m| m.class == predicted);
    if classes.contains(&None) && !has_predicted {
        // Asked for by class and as "the predicted one" at once: the latter needs its own map.
        let extra = predictor
            .explain_crop(explained.crop.clone(), &[predicted])
            .map_err(|e| e.to_string())?;
        explained.maps.extend(extra.maps);
    }
    let (w, h) = explained.crop.dimensions();
    let colour = |img: &image::RgbImage| {
        eframe::egui::ColorImage::from_rgb([w as usize, h as usize], img.as_raw())
    };
    let crop = colour(&explained.crop);
    classes
        .iter()
        .map(|class| -> Result<MapPicture, String> {
            let wanted = class.unwrap_or(predicted);
            let map = explained
                .maps
                .iter()
                .find(|m| m.class == wanted)
                .ok_or("no map was computed")?;
            let heat = crate::run::overlay::heat_image(&map.grid, w, h);
            Ok(MapPicture {
                crop: crop.clone(),
                heat: colour(&heat),
                class: map.class,
                probability: map.probability,
            })
        })
        .collect()
}

/// Seeds the window's data-efficiency curve averages.
pub(super) const CURVE_SEEDS: usize = 5;

/// Accuracy against images per class for `root`, on the CPU (cached features, a linear head).
pub(super) fn measure_curve(
    root: &Path,
    options: &crate::doctor::DoctorOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<std::sync::Arc<crate::doctor::curve::Curve>, String> {
    let device = burn::tensor::Device::flex();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    crate::doctor::curve::data_efficiency(root, options, CURVE_SEEDS, &device, progress, &cancel)
        .map(std::sync::Arc::new)
        .map_err(|e| e.to_string())
}
