//! From a decoded image to the network's input: resize, crop, augment, normalise.

use image::RgbImage;
use image::imageops;

use super::augment;
use super::resample::{self, Filter};
use super::rng::Rng;
use crate::config::AugmentConfig;
use crate::models::Normalization;

/// The centre crop keeps this fraction of the shorter side (the ImageNet evaluation rule).
pub const CROP_FRACTION: f64 = 0.875;

/// The shorter side an image is resized to before a centre crop of `input_size`.
pub fn resize_side(input_size: u32) -> u32 {
    (input_size as f64 / CROP_FRACTION).round() as u32
}

/// Resizes (bicubic, antialiased) so the shorter side is `side`, keeping the aspect ratio. An
/// image over four times larger is first averaged down by a whole factor (to between two and
/// four times `side`), which bounds the time and the scratch memory of the bicubic pass.
pub fn resize_shorter_side(image: &RgbImage, side: u32) -> RgbImage {
    let shorter = image.width().min(image.height());
    if side > 0 && shorter >= 4 * side {
        let shrunk = box_shrink(image, shorter / (2 * side));
        return resize_exact_shorter(&shrunk, side);
    }
    resize_exact_shorter(image, side)
}

/// The mean of each `factor`×`factor` block (edge pixels that do not fill a block are dropped).
fn box_shrink(image: &RgbImage, factor: u32) -> RgbImage {
    let (w, h) = (image.width() / factor, image.height() / factor);
    let area = factor * factor;
    let mut sums = vec![0u32; w as usize * 3];
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        sums.fill(0);
        for dy in 0..factor {
            for x in 0..w * factor {
                let p = image.get_pixel(x, y * factor + dy).0;
                let cell = (x / factor) as usize * 3;
                for c in 0..3 {
                    sums[cell + c] += u32::from(p[c]);
                }
            }
        }
        for x in 0..w {
            let cell = x as usize * 3;
            let mean = |c: usize| ((sums[cell + c] + area / 2) / area) as u8;
            out.put_pixel(x, y, image::Rgb([mean(0), mean(1), mean(2)]));
        }
    }
    out
}

/// The size of a `w`×`h` image resized so its shorter side is `side`, aspect ratio kept.
pub fn shorter_side_dimensions(w: u32, h: u32, side: u32) -> (u32, u32) {
    let longer = |long: u32, short: u32| {
        ((long as f64 * side as f64 / short.max(1) as f64).round() as u32).max(side)
    };
    if w <= h {
        (side, longer(h, w))
    } else {
        (longer(w, h), side)
    }
}

fn resize_exact_shorter(image: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let (nw, nh) = shorter_side_dimensions(w, h, side);
    if (nw, nh) == (w, h) {
        return image.clone();
    }
    resample::resize(image, nw, nh, Filter::CatmullRom)
}

/// The centred `size`×`size` square (the image must be at least that large on both sides).
pub fn center_crop(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let size_w = size.min(w);
    let size_h = size.min(h);
    let x = ((w - size_w) as f64 / 2.0).round() as u32;
    let y = ((h - size_h) as f64 / 2.0).round() as u32;
    let crop = imageops::crop_imm(image, x, y, size_w, size_h).to_image();
    if (size_w, size_h) == (size, size) {
        crop
    } else {
        resample::resize(&crop, size, size, Filter::Triangle)
    }
}

/// Evaluation transform of an image already at [`resize_side`]: the centre crop.
pub fn eval_view(base: &RgbImage, size: u32) -> RgbImage {
    center_crop(base, size)
}

/// Training transform: a random crop of random area and aspect ratio, resized to `size`,
/// maybe flipped, turned and colour-jittered (as configured).
pub fn train_view(base: &RgbImage, size: u32, augment: &AugmentConfig, rng: &mut Rng) -> RgbImage {
    if !augment.enabled {
        return eval_view(base, size);
    }
    let (w, h) = base.dimensions();
    let area = (w * h) as f64;
    let mut view = None;
    for _ in 0..10 {
        let target = area * rng.uniform(augment.min_crop_area, 1.0);
        let ratio = rng.uniform((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln()).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw >= 1 && ch >= 1 && cw <= w && ch <= h {
            let x = rng.below((w - cw + 1) as usize) as u32;
            let y = rng.below((h - ch + 1) as usize) as u32;
            let crop = imageops::crop_imm(base, x, y, cw, ch).to_image();
            view = Some(resample::resize(&crop, size, size, Filter::Triangle));
            break;
        }
    }
    let mut view = view.unwrap_or_else(|| eval_view(base, size));
    if augment.horizontal_flip && rng.next_f64() < 0.5 {
        imageops::flip_horizontal_in_place(&mut view);
    }
    let angle = augment::draw_rotation(augment, rng);
    if angle != 0.0 {
        view = augment::rotate(&view, angle);
    }
    augment::Jitter::draw(augment, rng).apply(&mut view);
    view
}

/// Appends the image as normalised CHW floats.
pub fn push_chw(image: &RgbImage, norm: &Normalization, out: &mut Vec<f32>) {
    let (w, h) = image.dimensions();
    let start = out.len();
    let plane = (w * h) as usize;
    out.resize(start + 3 * plane, 0.0);
    for (i, p) in image.pixels().enumerate() {
        for c in 0..3 {
            out[start + c * plane + i] = (p[c] as f32 - norm.mean[c]) / norm.std[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_then_crop_gives_the_input_size() {
        let img = RgbImage::new(300, 200);
        let base = resize_shorter_side(&img, resize_side(224));
        assert_eq!(base.dimensions(), (384, 256));
        assert_eq!(eval_view(&base, 224).dimensions(), (224, 224));
        let mut rng = Rng::new(0, 0);
        let view = train_view(&base, 224, &AugmentConfig::default(), &mut rng);
        assert_eq!(view.dimensions(), (224, 224));
    }

    #[test]
    fn large_images_are_averaged_down_to_the_same_shape() {
        let img = RgbImage::from_fn(1203, 902, |x, _| {
            image::Rgb([if x % 2 == 0 { 0 } else { 200 }, 50, 9])
        });
        let base = resize_shorter_side(&img, 73);
        assert_eq!(base.dimensions(), (97, 73));
        // Alternating columns average to their mean, not to one of them.
        let p = base.get_pixel(40, 30).0;
        assert!((90..=110).contains(&p[0]), "{p:?}");
        assert_eq!(p[1], 50);
    }

    #[test]
    fn normalisation_is_channel_planar() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([127, 255, 0]));
        let norm = Normalization {
            mean: [127.0; 3],
            std: [128.0; 3],
        };
        let mut out = Vec::new();
        push_chw(&img, &norm, &mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(out[0], 0.0); // R of pixel 0
        assert_eq!(out[2], 1.0); // G of pixel 0
        assert_eq!(out[4], -127.0 / 128.0); // B of pixel 0
    }
}
