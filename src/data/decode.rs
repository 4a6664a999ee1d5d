//! Decoding one image file into 8-bit RGB, or a reason why not.

use std::io::Read;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

/// Largest side accepted; anything bigger is refused before it is allocated.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoder allocation accepted.
pub const MAX_ALLOC: u64 = 1 << 30;

/// Why a file was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum DecodeError {
    /// Zero bytes.
    #[error("empty file (0 bytes)")]
    Empty,
    /// Content is not a known image format, whatever the extension says.
    #[error("not an image (the content is no PNG, JPEG, WebP, BMP, GIF or TIFF)")]
    NotAnImage,
    /// The file ends before the image data does.
    #[error("truncated or corrupt: {0}")]
    Corrupt(String),
    /// Dimensions beyond the decoder limits.
    #[error("too large for the decoder limits ({0})")]
    TooLarge(String),
    /// A format feature the decoder does not support.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
}

impl From<ImageError> for DecodeError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Limits(l) => Self::TooLarge(l.to_string()),
            ImageError::Unsupported(u) => Self::Unsupported(u.to_string()),
            ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                Self::Corrupt("unexpected end of file".into())
            }
            ImageError::IoError(io) => Self::Io(io.to_string()),
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// Reads and decodes `path`: EXIF orientation applied, alpha composited on white, any bit depth,
/// palette or colour model converted to 8-bit RGB.
pub fn decode_file(path: &Path) -> Result<RgbImage, DecodeError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    decode_bytes(&bytes)
}

/// Decodes an in-memory image file; see [`decode_file`].
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    let format = reader.format().ok_or(DecodeError::NotAnImage)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder)?;
    if format == image::ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        // The JPEG decoder fills a cut-off scan with grey instead of failing.
        return Err(DecodeError::Corrupt(
            "JPEG data ends before its end-of-image marker".into(),
        ));
    }
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(flatten_on_white(image))
}

/// A whole JPEG ends with the EOI marker `FF D9`, possibly followed by a little padding.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Converts to 8-bit RGB, compositing any transparency onto white.
pub fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = src[3] as u32;
        for c in 0..3 {
            dst[c] = ((src[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Luma, LumaA, Rgba, RgbaImage};

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn transparent_pixels_become_white_and_opaque_keep_colour() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, Rgba([10, 20, 30, 0]));
        img.put_pixel(1, 0, Rgba([10, 20, 30, 255]));
        let rgb = decode_bytes(&encode(DynamicImage::ImageRgba8(img), ImageFormat::Png)).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }

    #[test]
    fn grey_sixteen_bit_and_grey_alpha_become_rgb() {
        let grey16 = image::ImageBuffer::<Luma<u16>, _>::from_pixel(3, 2, Luma([65535u16]));
        let rgb =
            decode_bytes(&encode(DynamicImage::ImageLuma16(grey16), ImageFormat::Png)).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        let ga = image::ImageBuffer::<LumaA<u8>, _>::from_pixel(1, 1, LumaA([0u8, 255]));
        let rgb = decode_bytes(&encode(DynamicImage::ImageLumaA8(ga), ImageFormat::Png)).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn bad_bytes_get_the_right_reason() {
        assert_eq!(decode_bytes(b""), Err(DecodeError::Empty));
        assert_eq!(
            decode_bytes(b"hello, I am text"),
            Err(DecodeError::NotAnImage)
        );
        let png = encode(DynamicImage::new_rgb8(64, 64), ImageFormat::Png);
        assert!(matches!(
            decode_bytes(&png[..png.len() / 2]),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
