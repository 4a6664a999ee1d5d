//! Class activation maps that mean something: blanking where the map is high hurts the
//! prediction more than blanking at random (faithfulness), and on pictures whose class is a
//! coloured shape the map's maximum lies on the shape (localisation).

mod common;

use std::path::{Path, PathBuf};

use common::TempDir;
use graft::config::FreezePlan;
use graft::run::overlay::upsample;
use graft::run::predict::{TrainedRun, softmax};
use graft::train::TrainEvent;
use image::RgbImage;

/// Share of each image blanked in the deletion test.
const DELETED: f64 = 0.20;
/// Random masks per image.
const RANDOM_MASKS: usize = 3;

/// A small deterministic generator (SplitMix64) for masks and pictures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Trains Lite0 (224 px, no augmentation) on `data` with `frozen` groups; returns the run
/// folder.
fn train(data: &Path, runs: &Path, epochs: usize, frozen: FreezePlan) -> PathBuf {
    let mut config = common::small_config(data, runs);
    config.input_size = None;
    config.epochs = epochs;
    config.batch_size = 16;
    config.freeze = frozen;
    let events = common::run_to_end(config);
    match events.last() {
        Some(TrainEvent::Finished(s)) => s.run_dir.clone(),
        other => panic!("the run did not finish: {other:?}"),
    }
}

/// The crop with the pixels in `mask` set to the crop's mean colour.
fn blanked(crop: &RgbImage, mask: &[usize]) -> RgbImage {
    let n = crop.pixels().len() as u64;
    let mut sums = [0u64; 3];
    for p in crop.pixels() {
        for c in 0..3 {
            sums[c] += u64::from(p[c]);
        }
    }
    let mean = image::Rgb(sums.map(|s| (s / n) as u8));
    let mut out = crop.clone();
    let width = crop.width() as usize;
    for &i in mask {
        out.put_pixel((i % width) as u32, (i / width) as u32, mean);
    }
    out
}

/// Indices of the `share` of pixels where the upsampled map is highest.
fn top_pixels(map: &[Vec<f32>], side: u32, share: f64) -> Vec<usize> {
    let values = upsample(map, side, side);
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.truncate((values.len() as f64 * share).round() as usize);
    order
}

fn random_pixels(pixels: usize, share: f64, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pixels).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order.truncate((pixels as f64 * share).round() as usize);
    order
}

#[test]
fn blanking_where_the_map_is_high_hurts_more_than_blanking_at_random() {
    let runs = TempDir::new("explain-runs");
    let run_dir = train(&common::demo(), runs.path(), 3, FreezePlan::AllButHead);
    let device = burn::tensor::Device::flex();
    let run = TrainedRun::open(&run_dir, &device).unwrap();
    let manifest = graft::run::folder::read_manifest(&run_dir)
        .unwrap()
        .unwrap();
    let validation = manifest.validation(&common::demo());
    assert!(
        validation.len() >= 50,
        "{} validation images",
        validation.len()
    );
    let predictor = &run.predictor;
    let side = predictor.input_size();
    let mut rng = Rng(15);
    let (mut map_drop, mut random_drop) = (0.0, 0.0);
    let started = std::time::Instant::now();
    for (path, _) in &validation {
        let image = graft::data::decode::decode_file(path).unwrap();
        let explained = predictor.explain(&image, &[]).unwrap();
        let class = explained.predicted;
        let before = f64::from(explained.probabilities[class]);
        let pixels = (side * side) as usize;
        let mut masks = vec![top_pixels(&explained.maps[0].grid, side, DELETED)];
        masks.extend((0..RANDOM_MASKS).map(|_| random_pixels(pixels, DELETED, &mut rng)));
        let crops: Vec<RgbImage> = masks.iter().map(|m| blanked(&explained.crop, m)).collect();
        let after: Vec<f64> = predictor
            .logits_of_crops(&crops)
            .unwrap()
            .iter()
            .map(|l| f64::from(softmax(l)[class]))
            .collect();
        map_drop += before - after[0];
        random_drop += after[1..].iter().map(|p| before - p).sum::<f64>() / RANDOM_MASKS as f64;
    }
    let n = validation.len() as f64;
    let (map_drop, random_drop) = (map_drop / n, random_drop / n);
    eprintln!(
        "deletion test over {n} validation images: the map's top 20 % lowers the predicted \
         class's probability by {map_drop:.3} on average, 20 % at random by {random_drop:.3} \
         ({:.1} s with {RANDOM_MASKS} random masks each)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        map_drop > random_drop,
        "map {map_drop:.3} vs random {random_drop:.3}"
    );
}

/// A colour of class `class` (red, green, blue), slightly varied.
fn class_colour(class: usize, rng: &mut Rng) -> [u8; 3] {
    let base = [[210, 40, 40], [40, 170, 60], [40, 70, 210]][class];
    base.map(|c: i32| (c + rng.below(31) as i32 - 15).clamp(0, 255) as u8)
}

/// A grey, cluttered 256² picture (the 224 crop is its middle) with a disc or square of the
/// class's colour at a random place inside the crop; returns it and the shape's pixels in
/// crop coordinates.
fn shape_picture(class: usize, rng: &mut Rng) -> (RgbImage, Vec<bool>) {
    let mut image = RgbImage::from_fn(256, 256, |_, _| {
        let g = 90 + rng.below(60) as u8;
        image::Rgb([g, g, g])
    });
    for _ in 0..14 {
        let (x0, y0) = (rng.below(256) as u32, rng.below(256) as u32);
        let (w, h) = (4 + rng.below(60) as u32, 4 + rng.below(12) as u32);
        let (w, h) = if rng.below(2) == 0 { (w, h) } else { (h, w) };
        let g = rng.below(256) as u8;
        for y in y0..(y0 + h).min(256) {
            for x in x0..(x0 + w).min(256) {
                image.put_pixel(x, y, image::Rgb([g, g, g]));
            }
        }
    }
    let r = 30 + rng.below(9) as i64;
    let (cx, cy) = (
        16 + r + 6 + rng.below((224 - 2 * (r + 6)) as u64) as i64,
        16 + r + 6 + rng.below((224 - 2 * (r + 6)) as u64) as i64,
    );
    let square = rng.below(2) == 0;
    let colour = image::Rgb(class_colour(class, rng));
    let mut inside = vec![false; 224 * 224];
    for y in 0..256i64 {
        for x in 0..256i64 {
            let (dx, dy) = (x - cx, y - cy);
            let hit = if square {
                dx.abs() <= r * 8 / 10 && dy.abs() <= r * 8 / 10
            } else {
                dx * dx + dy * dy <= r * r
            };
            if hit {
                image.put_pixel(x as u32, y as u32, colour);
                if (16..240).contains(&x) && (16..240).contains(&y) {
                    inside[((y - 16) * 224 + (x - 16)) as usize] = true;
                }
            }
        }
    }
    (image, inside)
}

/// Pictures of each class to train on, and held out.
const SHAPES_TRAINED: usize = 60;
const SHAPES_HELD_OUT: usize = 40;

/// Where `grid` peaks as the overlay draws it (upsampled to the 224² crop): a crop pixel index.
fn overlay_peak(grid: &[Vec<f32>]) -> usize {
    let values = upsample(grid, 224, 224);
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0)
}

/// The centre of `grid`'s highest cell, as a crop pixel index.
fn peak_cell_centre(grid: &[Vec<f32>]) -> usize {
    let (rows, cols) = (grid.len(), grid[0].len());
    let at = (0..rows * cols)
        .max_by(|&a, &b| grid[a / cols][a % cols].total_cmp(&grid[b / cols][b % cols]))
        .unwrap_or(0);
    let y = ((at / cols) as f64 + 0.5) * 224.0 / rows as f64;
    let x = ((at % cols) as f64 + 0.5) * 224.0 / cols as f64;
    y as usize * 224 + x as usize
}

#[test]
fn the_map_finds_the_shape_that_makes_the_class() {
    let data = TempDir::new("explain-shapes");
    let mut rng = Rng(3);
    let classes = ["red", "green", "blue"];
    for (c, name) in classes.iter().enumerate() {
        let dir = data.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..SHAPES_TRAINED {
            shape_picture(c, &mut rng)
                .0
                .save(dir.join(format!("{i}.png")))
                .unwrap();
        }
    }
    // The last block (3×3 convolutions at 7×7), the 1×1 convolution to features and the head
    // learn; everything before stays as pre-trained.
    let mut frozen: std::collections::BTreeSet<String> =
        (0..15).map(|i| format!("block{i}")).collect();
    frozen.insert("stem".into());
    let runs = TempDir::new("explain-shape-runs");
    let run_dir = train(data.path(), runs.path(), 20, FreezePlan::Groups(frozen));
    let device = burn::tensor::Device::flex();
    let run = TrainedRun::open(&run_dir, &device).unwrap();
    let predictor = &run.predictor;
    let (mut hits, mut cell_hits, mut tried) = (0, 0, 0);
    for (index, name) in predictor.classes().iter().enumerate() {
        let c = classes.iter().position(|n| n == name).unwrap();
        for _ in 0..SHAPES_HELD_OUT {
            let (image, inside) = shape_picture(c, &mut rng);
            let explained = predictor.explain(&image, &[index]).unwrap();
            let grid = &explained.maps[0].grid;
            hits += usize::from(inside[overlay_peak(grid)]);
            cell_hits += usize::from(inside[peak_cell_centre(grid)]);
            tried += 1;
        }
    }
    let rate = hits as f64 / tried as f64;
    eprintln!(
        "localisation: the overlay's maximum lies on the shape in {hits} of {tried} held-out \
         pictures ({:.0} %); the centre of the grid's highest cell in {cell_hits}",
        rate * 100.0
    );
    assert!(rate >= 0.9, "{hits} of {tried}");
}
