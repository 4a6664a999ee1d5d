//! `graft explain`: where a trained run looks in each image, as `<stem>.cam.png` overlays and
//! optionally the raw maps as JSON.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::{CliError, image_files, parse_device, report};
use crate::data::decode::decode_file_at;
use crate::data::preprocess::resize_side;
use crate::platform::device::{self, DevicePreference};
use crate::platform::fsutil::{ensure_outside, write_atomic, write_json_atomic};
use crate::run::explain::MapMethod;
use crate::run::overlay::{DEFAULT_OPACITY, overlay};
use crate::run::predict::{PredictError, TrainedRun};

/// `graft explain` flags.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A run folder written by `graft train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Images to explain; a folder stands for every image below it.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Folder for the `<file stem>.cam.png` overlays (created; never inside a data set).
    #[arg(long)]
    pub out: PathBuf,
    /// Show the evidence for this class instead of the predicted one.
    #[arg(long)]
    pub class: Option<String>,
    /// Also write the raw maps to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Opacity of the map over the image, 0 to 1.
    #[arg(long, default_value_t = DEFAULT_OPACITY)]
    pub opacity: f32,
    /// Where to compute: cpu (the default), gpu or auto.
    #[arg(long, value_parser = parse_device, default_value = "cpu")]
    pub device: DevicePreference,
}

/// One image in the JSON file.
#[derive(Serialize)]
struct ExplainedImage {
    #[serde(with = "crate::platform::paths::as_path")]
    file: PathBuf,
    class: String,
    probability: f32,
    map: Vec<Vec<f32>>,
}

/// The JSON file.
#[derive(Serialize)]
struct ExplainedImages {
    method: MapMethod,
    images: Vec<ExplainedImage>,
}

/// Refuses an output path inside the run's data set or inside a folder of images given.
fn check_outputs(args: &ExplainArgs, data_root: &Path) -> Result<(), CliError> {
    let folders = args.images.iter().filter(|p| p.is_dir());
    for root in std::iter::once(data_root).chain(folders.map(PathBuf::as_path)) {
        ensure_outside(&args.out, root)?;
        if let Some(json) = &args.json {
            ensure_outside(json, root)?;
        }
    }
    Ok(())
}

/// `stem.cam.png`, or `stem-2.cam.png`… when an earlier image had the same stem.
fn overlay_name(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    let mut name = format!("{stem}.cam.png");
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}-{n}.cam.png");
        n += 1;
    }
    name
}

fn png_bytes(image: &image::RgbImage) -> std::io::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(std::io::Error::other)?;
    Ok(out.into_inner())
}

/// Runs `graft explain`.
pub(super) fn run(args: &ExplainArgs) -> Result<(), CliError> {
    let device = device::select(args.device).device;
    let run = TrainedRun::open(&args.run, &device)?;
    check_outputs(args, &run.settings.config.data)?;
    let classes = run.predictor.classes().to_vec();
    let target =
        match &args.class {
            Some(name) => Some(classes.iter().position(|c| c == name).ok_or_else(|| {
                CliError::UnknownClass {
                    name: name.clone(),
                    classes: classes.join(", "),
                }
            })?),
            None => None,
        };
    let (images, errors) = image_files(&args.images)?;
    std::fs::create_dir_all(&args.out).map_err(|source| CliError::Write {
        path: args.out.clone(),
        source,
    })?;
    let mut failures = errors.len();
    errors.iter().for_each(|e| report(e));
    let mut explained = Vec::new();
    let mut used = HashSet::new();
    let mut method = MapMethod::Cam;
    for path in &images {
        match explain_one(&run, path, target, args, &mut used) {
            Ok((entry, m)) => {
                method = m;
                explained.push(entry);
            }
            Err(e) => {
                report(&e);
                failures += 1;
            }
        }
    }
    if let Some(json) = &args.json {
        let file = ExplainedImages {
            method,
            images: explained,
        };
        write_json_atomic(json, &file).map_err(|source| CliError::Write {
            path: json.clone(),
            source,
        })?;
    }
    if failures > 0 {
        Err(CliError::Reported(failures))
    } else {
        Ok(())
    }
}

/// Explains one file and writes its overlay.
fn explain_one(
    run: &TrainedRun,
    path: &Path,
    target: Option<usize>,
    args: &ExplainArgs,
    used: &mut HashSet<String>,
) -> Result<(ExplainedImage, MapMethod), CliError> {
    let predictor = &run.predictor;
    let image =
        decode_file_at(path, Some(resize_side(predictor.input_size()))).map_err(|reason| {
            PredictError::Image {
                path: path.to_path_buf(),
                reason,
            }
        })?;
    let classes: Vec<usize> = target.into_iter().collect();
    let explanation = predictor.explain(&image, &classes)?;
    let map = explanation
        .maps
        .into_iter()
        .next()
        .ok_or(CliError::Usage("no map was computed"))?;
    let picture = overlay(&explanation.crop, &map.grid, args.opacity);
    let out = args.out.join(overlay_name(path, used));
    png_bytes(&picture)
        .and_then(|bytes| write_atomic(&out, &bytes))
        .map_err(|source| CliError::Write {
            path: out.clone(),
            source,
        })?;
    let class = predictor.classes()[map.class].clone();
    println!(
        "{}: {class} ({:.1} %) → {}",
        path.display(),
        map.probability * 100.0,
        out.display()
    );
    Ok((
        ExplainedImage {
            file: path.to_path_buf(),
            class,
            probability: map.probability,
            map: map.grid,
        },
        explanation.method,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_of_images_with_the_same_stem_get_different_names() {
        let mut used = HashSet::new();
        assert_eq!(
            overlay_name(Path::new("a/cat.jpg"), &mut used),
            "cat.cam.png"
        );
        assert_eq!(
            overlay_name(Path::new("b/cat.png"), &mut used),
            "cat-2.cam.png"
        );
        assert_eq!(
            overlay_name(Path::new("c/cat.png"), &mut used),
            "cat-3.cam.png"
        );
    }
}
