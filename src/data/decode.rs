//! Decoding one image file into 8-bit RGB, or a reason why not.

use std::fs::Metadata;
use std::io::{BufRead, Read, Seek};
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

/// Largest side accepted; anything bigger is refused before it is allocated.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded image accepted, in bytes (about 85 megapixels of 8-bit RGB): with the
/// conversion to RGB this bounds the memory one image can take while it is decoded (see
/// [`decode_bytes`]).
pub const MAX_ALLOC: u64 = 256 << 20;
/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 512 << 20;
/// Longest side over shortest side beyond which a centre crop shows almost nothing of the image.
pub const MAX_ASPECT: u32 = 20;

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
    /// So long and thin that the centre crop would show a sliver of it.
    #[error(
        "{width}×{height} pixels: one side is over {MAX_ASPECT} times the other, so the centre crop would show almost none of it"
    )]
    ExtremeAspect {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A format feature the decoder does not support.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// A named pipe, socket or device: reading it could wait for ever.
    #[error("{0}, not a regular file: skipped without reading it")]
    NotRegular(String),
    /// A folder already listed, reached again through a link.
    #[error("a link back to a folder already scanned: followed once, not again")]
    FolderSeen,
    /// A folder whose listing failed.
    #[error("cannot read this folder: {0}")]
    UnreadableFolder(String),
    /// Folders nested deeper than the scan follows.
    #[error("nested more than {0} folders deep: not followed")]
    TooDeep(usize),
}

impl DecodeError {
    /// Whether the folder scan passed the entry over (a link, a special file, a folder), as
    /// opposed to a file that was read and could not be used.
    pub fn is_scan_finding(&self) -> bool {
        matches!(
            self,
            Self::NotRegular(_) | Self::FolderSeen | Self::UnreadableFolder(_) | Self::TooDeep(_)
        )
    }
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

/// What a non-regular, non-folder entry is, in words.
pub fn special_kind(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    let _ = meta;
    "not a regular file"
}

/// The file's size when it is a regular file Graft is willing to read; a named pipe, socket or
/// device is refused before it is opened (opening a pipe waits for a writer).
pub fn check_regular_file(path: &Path) -> Result<u64, DecodeError> {
    let meta = std::fs::metadata(path).map_err(|e| DecodeError::Io(e.to_string()))?;
    if meta.is_dir() {
        return Err(DecodeError::Io(
            "this is a folder, not an image file".into(),
        ));
    }
    if !meta.is_file() {
        return Err(DecodeError::NotRegular(special_kind(&meta).into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DecodeError::TooLarge(format!(
            "the file is {} MiB; at most {} MiB",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(meta.len())
}

/// Refuses dimensions that are too large to decode within the bounds, or too thin to crop.
pub fn check_dimensions(width: u32, height: u32, bytes_per_pixel: u64) -> Result<(), DecodeError> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DecodeError::TooLarge(format!(
            "{width}×{height} pixels; at most {MAX_SIDE} per side"
        )));
    }
    let bytes = u64::from(width) * u64::from(height) * bytes_per_pixel;
    if bytes > MAX_ALLOC {
        return Err(DecodeError::TooLarge(format!(
            "{width}×{height} pixels need {} MiB decoded; at most {} MiB per image",
            bytes >> 20,
            MAX_ALLOC >> 20
        )));
    }
    let (long, short) = (width.max(height), width.min(height));
    if short == 0 || long / short > MAX_ASPECT || (long / short == MAX_ASPECT && long % short > 0) {
        return Err(DecodeError::ExtremeAspect { width, height });
    }
    Ok(())
}

/// The decoder of `reader` once its header shows that the image fits the bounds of
/// [`check_dimensions`]. The header is read without limits so that a refusal can say what is
/// too large.
pub fn checked_decoder<'a, R: 'a + BufRead + Seek>(
    mut reader: ImageReader<R>,
) -> Result<impl ImageDecoder + 'a, DecodeError> {
    reader.no_limits();
    let decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    check_dimensions(
        width,
        height,
        u64::from(decoder.color_type().bytes_per_pixel()),
    )?;
    Ok(decoder)
}

/// Reads and decodes `path`: EXIF orientation applied, alpha composited on white, any bit depth,
/// palette or colour model converted to 8-bit RGB.
pub fn decode_file(path: &Path) -> Result<RgbImage, DecodeError> {
    decode_file_at(path, None)
}

/// [`decode_file`], resized so the shorter side is `shorter_side` (when given) before the EXIF
/// rotation, so that a rotation never copies the full-size image.
pub fn decode_file_at(path: &Path, shorter_side: Option<u32>) -> Result<RgbImage, DecodeError> {
    Ok(read_file(path)?.finish(shorter_side))
}

/// Reads and decodes `path` up to (not including) resizing and the EXIF rotation: the file is
/// checked whole, and [`Decoded::finish`] makes the same pixels as [`decode_file_at`].
pub fn read_file(path: &Path) -> Result<Decoded, DecodeError> {
    let size = check_regular_file(path)?;
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    read_bytes(&bytes)
}

/// Decodes an in-memory image file; see [`decode_file`].
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    decode_bytes_at(bytes, None)
}

/// Decodes an in-memory image file; see [`decode_file_at`].
///
/// Memory: the decoder's buffer is at most [`MAX_ALLOC`]; 8-bit images become RGB in place, and
/// a 16-bit image's 8-bit copy adds at most half of that again. Resizing and rotating work on
/// copies no larger than the resized image.
pub fn decode_bytes_at(bytes: &[u8], shorter_side: Option<u32>) -> Result<RgbImage, DecodeError> {
    Ok(read_bytes(bytes)?.finish(shorter_side))
}

/// An image decoded to 8-bit RGB at its stored size, its EXIF rotation not yet applied.
pub struct Decoded {
    rgb: RgbImage,
    orientation: Option<Orientation>,
}

impl Decoded {
    /// Width and height as stored (before the rotation).
    pub fn stored_dimensions(&self) -> (u32, u32) {
        self.rgb.dimensions()
    }

    /// Resized so the shorter side is `shorter_side` (when given), then turned upright.
    pub fn finish(self, shorter_side: Option<u32>) -> RgbImage {
        let mut rgb = self.rgb;
        if let Some(side) = shorter_side {
            // The shorter side is the same before and after a rotation.
            rgb = super::preprocess::resize_shorter_side(&rgb, side);
        }
        match self.orientation {
            Some(o) if o != Orientation::NoTransforms => {
                let mut image = DynamicImage::ImageRgb8(rgb);
                image.apply_orientation(o);
                image.into_rgb8()
            }
            _ => rgb,
        }
    }
}

fn read_bytes(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Io(e.to_string()))?;
    let format = reader.format().ok_or(DecodeError::NotAnImage)?;
    super::complete::check_complete(format, bytes)?;
    let mut decoder = checked_decoder(reader)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    decoder.set_limits(limits)?;
    let orientation = decoder.orientation().ok();
    let rgb = flatten_on_white(DynamicImage::from_decoder(decoder)?);
    Ok(Decoded { rgb, orientation })
}

/// Converts to 8-bit RGB, compositing any transparency onto white (8-bit RGBA in place).
pub fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut pixels = rgba.into_raw();
    for i in 0..(w as usize * h as usize) {
        let a = pixels[4 * i + 3] as u32;
        for c in 0..3 {
            let v = pixels[4 * i + c] as u32;
            // Writes only behind the read position: 3i + c < 4i + c.
            pixels[3 * i + c] = ((v * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    pixels.truncate(3 * w as usize * h as usize);
    pixels.shrink_to_fit();
    RgbImage::from_raw(w, h, pixels).unwrap_or_else(|| RgbImage::new(w, h))
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

    #[test]
    fn thin_and_huge_images_are_refused_before_decoding() {
        let thin = encode(DynamicImage::new_rgb8(1, 100), ImageFormat::Png);
        assert_eq!(
            decode_bytes(&thin),
            Err(DecodeError::ExtremeAspect {
                width: 1,
                height: 100
            })
        );
        assert!(decode_bytes(&encode(DynamicImage::new_rgb8(20, 400), ImageFormat::Png)).is_ok());
        assert!(matches!(
            check_dimensions(12_000, 12_000, 3),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(check_dimensions(8_000, 6_000, 3).is_ok());
    }
}
