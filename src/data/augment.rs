//! Photometric and geometric augmentations on a training view: colour jitter (brightness,
//! contrast, saturation, as torchvision's `ColorJitter` defines them) and a small rotation.

use image::RgbImage;

use super::rng::Rng;
use crate::config::AugmentConfig;

/// Luma weights (ITU-R 601-2, as PIL's `convert("L")`).
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// The factors one view is jittered by (1: unchanged).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    /// Pixel values times this.
    pub brightness: f32,
    /// Distance from the image's mean grey times this.
    pub contrast: f32,
    /// Distance from each pixel's own grey times this.
    pub saturation: f32,
}

impl Jitter {
    /// Factors drawn uniformly from `[1 − s, 1 + s]` for each strength `s` of `augment`.
    pub fn draw(augment: &AugmentConfig, rng: &mut Rng) -> Self {
        let mut factor = |strength: f64| {
            if strength > 0.0 {
                rng.uniform((1.0 - strength).max(0.0), 1.0 + strength) as f32
            } else {
                1.0
            }
        };
        Self {
            brightness: factor(augment.brightness),
            contrast: factor(augment.contrast),
            saturation: factor(augment.saturation),
        }
    }

    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        *self
            == Self {
                brightness: 1.0,
                contrast: 1.0,
                saturation: 1.0,
            }
    }

    /// Applies brightness, then contrast, then saturation, each clamped to 0..=255.
    pub fn apply(&self, image: &mut RgbImage) {
        if self.is_identity() {
            return;
        }
        let grey = |p: [f32; 3]| p[0] * LUMA[0] + p[1] * LUMA[1] + p[2] * LUMA[2];
        let clamp = |v: f32| v.clamp(0.0, 255.0);
        let mut pixels: Vec<[f32; 3]> = image
            .pixels()
            .map(|p| p.0.map(|c| clamp(f32::from(c) * self.brightness)))
            .collect();
        let mean = pixels.iter().map(|p| grey(*p)).sum::<f32>() / pixels.len().max(1) as f32;
        for p in &mut pixels {
            *p = p.map(|c| clamp(mean + (c - mean) * self.contrast));
            let g = grey(*p);
            *p = p.map(|c| clamp(g + (c - g) * self.saturation));
        }
        for (out, p) in image.pixels_mut().zip(pixels) {
            out.0 = p.map(|c| c.round() as u8);
        }
    }
}

/// The angle of one view's rotation, uniform in `[−r, r]` degrees for `r` of `augment`.
pub fn draw_rotation(augment: &AugmentConfig, rng: &mut Rng) -> f64 {
    let r = augment.rotation_degrees;
    if r > 0.0 { rng.uniform(-r, r) } else { 0.0 }
}

/// `image` turned by `degrees` (counter-clockwise) about its centre, bilinear, same size;
/// corners that fall outside take the nearest edge pixel. 0 returns the image unchanged.
pub fn rotate(image: &RgbImage, degrees: f64) -> RgbImage {
    if degrees == 0.0 {
        return image.clone();
    }
    let (w, h) = image.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
        // The source of an output pixel: the inverse rotation.
        let sx = (cx + dx * cos - dy * sin).clamp(0.0, w as f64 - 1.0);
        let sy = (cy + dx * sin + dy * cos).clamp(0.0, h as f64 - 1.0);
        bilinear(image, sx, sy)
    })
}

fn bilinear(image: &RgbImage, x: f64, y: f64) -> image::Rgb<u8> {
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = (
        (x0 + 1).min(image.width() - 1),
        (y0 + 1).min(image.height() - 1),
    );
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let p = |x, y| image.get_pixel(x, y).0.map(f64::from);
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    image::Rgb(std::array::from_fn(|i| {
        let top = a[i] + (b[i] - a[i]) * fx;
        let bottom = c[i] + (d[i] - c[i]) * fx;
        (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(value: u8) -> RgbImage {
        RgbImage::from_pixel(8, 6, image::Rgb([value; 3]))
    }

    fn mean(image: &RgbImage) -> f64 {
        image.pixels().flat_map(|p| p.0).map(f64::from).sum::<f64>() / (image.len() as f64)
    }

    #[test]
    fn brightness_moves_the_mean_by_its_factor() {
        let mut image = grey(100);
        let jitter = Jitter {
            brightness: 1.2,
            contrast: 1.0,
            saturation: 1.0,
        };
        jitter.apply(&mut image);
        assert!((mean(&image) - 120.0).abs() < 0.5, "{}", mean(&image));
    }

    #[test]
    fn contrast_scales_the_distance_from_the_mean_and_saturation_greys_out() {
        let mut image =
            RgbImage::from_fn(8, 2, |x, _| image::Rgb([if x < 4 { 80 } else { 160 }; 3]));
        Jitter {
            brightness: 1.0,
            contrast: 0.5,
            saturation: 1.0,
        }
        .apply(&mut image);
        assert_eq!(image.get_pixel(0, 0).0, [100; 3]);
        assert_eq!(image.get_pixel(7, 0).0, [140; 3]);
        let mut red = RgbImage::from_pixel(2, 2, image::Rgb([200, 0, 0]));
        Jitter {
            brightness: 1.0,
            contrast: 1.0,
            saturation: 0.0,
        }
        .apply(&mut red);
        let p = red.get_pixel(0, 0).0;
        assert!(p[0] == p[1] && p[1] == p[2], "{p:?}");
    }

    #[test]
    fn drawn_factors_stay_in_range_and_repeat_with_the_seed() {
        let augment = AugmentConfig {
            brightness: 0.3,
            contrast: 0.2,
            saturation: 0.1,
            rotation_degrees: 10.0,
            ..AugmentConfig::default()
        };
        let draws = |seed| {
            let mut rng = Rng::new(seed, 1);
            (0..50)
                .map(|_| {
                    (
                        Jitter::draw(&augment, &mut rng),
                        draw_rotation(&augment, &mut rng),
                    )
                })
                .collect::<Vec<_>>()
        };
        let a = draws(7);
        assert_eq!(a, draws(7));
        assert_ne!(a, draws(8));
        for (j, r) in a {
            assert!((0.7..=1.3).contains(&j.brightness) && (0.9..=1.1).contains(&j.saturation));
            assert!((-10.0..=10.0).contains(&r));
        }
        let mut rng = Rng::new(0, 0);
        assert!(Jitter::draw(&AugmentConfig::default(), &mut rng).is_identity());
    }

    #[test]
    fn rotating_by_zero_is_the_identity_and_by_ninety_turns_a_square() {
        let image = RgbImage::from_fn(5, 5, |x, y| image::Rgb([(x * 50) as u8, (y * 50) as u8, 7]));
        assert_eq!(rotate(&image, 0.0), image);
        let turned = rotate(&image, 90.0);
        // A quarter turn moves the left column to the bottom row.
        for i in 0..5 {
            assert_eq!(
                turned.get_pixel(i, 4).0,
                image.get_pixel(0, i).0,
                "pixel {i}"
            );
        }
        assert_eq!(turned.get_pixel(2, 2).0, image.get_pixel(2, 2).0);
    }
}
