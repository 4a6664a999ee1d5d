//! Whether an image file holds all of its image, checked from its structure before decoding.
//!
//! Decoders fill a cut-off image with grey rather than fail, and a marker search near the end
//! of a file can find the end of an embedded thumbnail instead. So each format is walked the
//! way it is laid out: JPEG segment by segment (metadata segments, thumbnails inside, skipped by
//! their length), PNG chunk by chunk up to `IEND`, RIFF (WebP) and BMP by their declared size.

use image::ImageFormat;

use super::decode::DecodeError;

/// `Err(Corrupt)` when `bytes`, a file of `format`, ends before its image does.
pub fn check_complete(format: ImageFormat, bytes: &[u8]) -> Result<(), DecodeError> {
    let whole = match format {
        ImageFormat::Jpeg => jpeg_is_complete(bytes),
        ImageFormat::Png => png_is_complete(bytes),
        ImageFormat::WebP => declared_size_fits(bytes, 4, 8),
        ImageFormat::Bmp => declared_size_fits(bytes, 2, 0),
        _ => true,
    };
    if whole {
        Ok(())
    } else {
        Err(DecodeError::Corrupt(format!(
            "the {} data ends before the image does (the file was cut off)",
            format_name(format)
        )))
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        _ => "image",
    }
}

/// Walks the segments from SOI: length-prefixed segments are skipped whole (an EXIF thumbnail
/// with its own end marker lives inside one), entropy-coded data after each SOS runs to the
/// next real marker. Complete when EOI is reached.
fn jpeg_is_complete(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // Bytes between segments are not allowed but are tolerated, as decoders do.
        let Some(at) = b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
        else {
            return false;
        };
        i += at;
        let Some(&marker) = b.get(i + 1) else {
            return false;
        };
        i += 2;
        match marker {
            0xD9 => return true,
            // Fill byte: the marker follows.
            0xFF => i -= 1,
            // Markers without a length.
            0x00 | 0x01 | 0xD0..=0xD8 => {}
            _ => {
                let Some(len) = b.get(i..i + 2).map(|l| u16::from_be_bytes([l[0], l[1]])) else {
                    return false;
                };
                i += usize::from(len);
                if marker == 0xDA {
                    match skip_entropy_coded(b, i) {
                        Some(next) => i = next,
                        None => return false,
                    }
                }
            }
        }
    }
}

/// The offset of the first marker after entropy-coded data starting at `i` (stuffed `FF 00`
/// bytes and restart markers are part of the data); `None` when the file ends first.
fn skip_entropy_coded(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += b.get(i..)?.iter().position(|&x| x == 0xFF)?;
        match *b.get(i + 1)? {
            0x00 | 0xD0..=0xD7 => i += 2,
            0xFF => i += 1,
            _ => return Some(i),
        }
    }
}

/// Walks the chunks after the signature; complete when an `IEND` chunk fits in the file.
fn png_is_complete(b: &[u8]) -> bool {
    let mut i = 8;
    while let Some(header) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = i + 12 + len;
        if end > b.len() {
            return false;
        }
        if &header[4..8] == b"IEND" {
            return true;
        }
        i = end;
    }
    false
}

/// Whether a little-endian u32 size at `offset` (counting from `base` bytes in) fits in the
/// file; a size of 0 (left unset by some writers) is accepted.
fn declared_size_fits(b: &[u8], offset: usize, base: usize) -> bool {
    let Some(field) = b.get(offset..offset + 4) else {
        return false;
    };
    let size = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
    size == 0 || base + size <= b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};

    fn encoded(format: ImageFormat) -> Vec<u8> {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    /// A JPEG with an APP1 segment holding a whole small JPEG (as an EXIF thumbnail does).
    fn with_thumbnail(main: &[u8]) -> Vec<u8> {
        let thumb = encoded(ImageFormat::Jpeg);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((thumb.len() + 2 + 6) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(&thumb);
        out.extend_from_slice(&main[2..]);
        out
    }

    #[test]
    fn whole_files_pass_and_cut_ones_fail() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            let bytes = encoded(format);
            assert!(check_complete(format, &bytes).is_ok(), "{format:?}");
            for cut in [bytes.len() / 3, bytes.len() - 3] {
                assert!(
                    check_complete(format, &bytes[..cut]).is_err(),
                    "{format:?} cut at {cut} of {}",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn a_thumbnail_end_marker_does_not_hide_a_cut_main_image() {
        let full = with_thumbnail(&encoded(ImageFormat::Jpeg));
        assert!(jpeg_is_complete(&full));
        assert!(image::load_from_memory(&full).is_ok());
        let cut = &full[..full.len() - 40];
        assert!(!jpeg_is_complete(cut));
        // The old check: an end marker somewhere in the last 4 KiB.
        assert!(cut.windows(2).any(|w| w == [0xFF, 0xD9]));
    }
}
