//! A frame → base64 JPEG/PNG no larger than `image_max_side`, with the `image` crate.

use super::{Frame, ImageError, Pixels};
use base64::Engine;
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, ImageReader, RgbImage, RgbaImage};
use std::io::Cursor;

/// JPEG quality of re-encoded frames (the `image` crate's scale, 1-100).
pub const JPEG_QUALITY: u8 = 85;

/// The image a request carries.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedImage {
    /// Standard base64 with padding (what Go's `[]byte` JSON decoding expects).
    pub base64: String,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// True if the frame's own compressed bytes were sent unchanged.
    pub passed_through: bool,
}

/// Encodes `frame` so that its longer side is at most `max_side` pixels (never enlarged).
pub fn encode_frame(frame: &Frame, max_side: u32) -> Result<EncodedImage, ImageError> {
    let corrupt = |detail: String| ImageError::Corrupt { topic: frame.topic.clone(), detail };
    match &frame.pixels {
        Pixels::Raw { encoding, width, height, step, data } => {
            let image = raw_to_image(encoding, *width, *height, *step, data).map_err(|e| match e {
                RawError::Unsupported(why) => ImageError::Unsupported(format!("camera frame on {}: {why}", frame.topic)),
                RawError::Corrupt(why) => corrupt(why),
            })?;
            encode(fit(image, max_side), ImageFormat::Jpeg, false).map_err(corrupt)
        }
        Pixels::Compressed { format, data } => {
            let kind = match image::guess_format(data) {
                Ok(kind @ (ImageFormat::Jpeg | ImageFormat::Png)) => kind,
                _ => {
                    return Err(ImageError::Unsupported(format!(
                        "camera frame on {}: compressed format '{format}' is not JPEG or PNG; only those are sent to the model",
                        frame.topic)))
                }
            };
            let (width, height) = ImageReader::with_format(Cursor::new(data), kind)
                .into_dimensions()
                .map_err(|e| corrupt(format!("its {kind:?} header does not decode ({e})")))?;
            if width.max(height) <= max_side {
                let base64 = base64::engine::general_purpose::STANDARD.encode(data);
                return Ok(EncodedImage { base64, format: kind, width, height, passed_through: true });
            }
            let image = image::load_from_memory_with_format(data, kind)
                .map_err(|e| corrupt(format!("it does not decode as {kind:?} ({e})")))?;
            encode(fit(image, max_side), kind, false).map_err(corrupt)
        }
    }
}

enum RawError {
    Unsupported(String),
    Corrupt(String),
}

/// `sensor_msgs/msg/Image` pixels → an image (BGR swapped to RGB, row padding dropped).
fn raw_to_image(encoding: &str, width: u32, height: u32, step: u32, data: &[u8]) -> Result<DynamicImage, RawError> {
    let channels: usize = match encoding {
        "mono8" => 1,
        "rgb8" | "bgr8" => 3,
        "rgba8" | "bgra8" => 4,
        other => {
            return Err(RawError::Unsupported(format!(
                "encoding '{other}' is not supported (supported: rgb8, bgr8, rgba8, bgra8, mono8, or a compressed JPEG/PNG topic)")))
        }
    };
    if width == 0 || height == 0 {
        return Err(RawError::Corrupt(format!("it is {width}x{height} pixels")));
    }
    let row = width as usize * channels;
    let step = step as usize;
    if step < row {
        return Err(RawError::Corrupt(format!("step {step} is shorter than a row of {width} {encoding} pixels ({row} bytes)")));
    }
    let needed = step * (height as usize - 1) + row;
    if data.len() < needed {
        return Err(RawError::Corrupt(format!("{} data bytes for {width}x{height} {encoding} with step {step} (needs {needed})", data.len())));
    }
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&data[y * step..y * step + row]);
    }
    if encoding.starts_with("bgr") {
        pixels.chunks_exact_mut(channels).for_each(|px| px.swap(0, 2));
    }
    let size_error = || RawError::Corrupt("the pixel buffer does not match its size".into());
    Ok(match channels {
        1 => DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, pixels).ok_or_else(size_error)?),
        3 => DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels).ok_or_else(size_error)?),
        _ => DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, pixels).ok_or_else(size_error)?),
    })
}

/// Shrinks `image` (keeping its aspect ratio) so its longer side is at most `max_side`.
fn fit(image: DynamicImage, max_side: u32) -> DynamicImage {
    if image.width().max(image.height()) <= max_side {
        return image;
    }
    image.resize(max_side, max_side, FilterType::Triangle)
}

fn encode(image: DynamicImage, format: ImageFormat, passed_through: bool) -> Result<EncodedImage, String> {
    let (width, height) = (image.width(), image.height());
    let mut bytes = Vec::new();
    let written = match format {
        ImageFormat::Png => image.write_with_encoder(image::codecs::png::PngEncoder::new(&mut bytes)),
        _ => {
            // JPEG has no alpha channel.
            let image = if image.color().has_alpha() { DynamicImage::ImageRgb8(image.to_rgb8()) } else { image };
            image.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY))
        }
    };
    written.map_err(|e| format!("it could not be encoded as {format:?} ({e})"))?;
    let base64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok(EncodedImage { base64, format, width, height, passed_through })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn raw(encoding: &str, width: u32, height: u32, step: u32, data: Vec<u8>) -> Frame {
        Frame { topic: "/cam".into(), pixels: Pixels::Raw { encoding: encoding.into(), width, height, step, data }, stamp: None, received: SystemTime::now() }
    }

    fn decode(encoded: &EncodedImage) -> DynamicImage {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&encoded.base64).unwrap();
        image::load_from_memory_with_format(&bytes, encoded.format).unwrap()
    }

    #[test]
    fn every_raw_encoding_becomes_a_jpeg_that_fits() {
        for (encoding, channels) in [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1)] {
            // 1000x500 with 8 bytes of row padding
            let step = 1000 * channels + 8;
            let out = encode_frame(&raw(encoding, 1000, 500, step, vec![128; step as usize * 500]), 672).unwrap();
            assert_eq!((out.format, out.width, out.height, out.passed_through), (ImageFormat::Jpeg, 672, 336, false), "{encoding}");
            assert_eq!((decode(&out).width(), decode(&out).height()), (672, 336));
        }
    }

    #[test]
    fn bgr_is_swapped_to_rgb_and_small_frames_are_not_enlarged() {
        // one pure blue pixel in bgr8 order, repeated
        let out = encode_frame(&raw("bgr8", 16, 16, 48, [255u8, 0, 0].repeat(256)), 672).unwrap();
        assert_eq!((out.width, out.height), (16, 16));
        let px = decode(&out).to_rgb8().get_pixel(8, 8).0;
        assert!(px[2] > 200 && px[0] < 40, "blue stays blue: {px:?}");
    }

    #[test]
    fn bad_raw_frames_are_named() {
        let e = encode_frame(&raw("16UC1", 4, 4, 8, vec![0; 32]), 672).unwrap_err();
        assert!(e.to_string().contains("encoding '16UC1' is not supported (supported: rgb8, bgr8, rgba8, bgra8, mono8"), "{e}");
        let e = encode_frame(&raw("rgb8", 4, 4, 12, vec![0; 40]), 672).unwrap_err();
        assert!(e.to_string().contains("the camera frame on /cam is unusable: 40 data bytes for 4x4 rgb8 with step 12 (needs 48)"), "{e}");
        assert!(encode_frame(&raw("rgb8", 4, 4, 8, vec![0; 48]), 672).unwrap_err().to_string().contains("step 8 is shorter"));
        assert!(encode_frame(&raw("mono8", 0, 4, 0, vec![]), 672).unwrap_err().to_string().contains("0x4 pixels"));
    }

    fn compressed(format: &str, image: DynamicImage, as_format: ImageFormat) -> Frame {
        let mut data = Vec::new();
        image.write_to(&mut Cursor::new(&mut data), as_format).unwrap();
        Frame { topic: "/cam/compressed".into(), pixels: Pixels::Compressed { format: format.into(), data }, stamp: None, received: SystemTime::now() }
    }

    #[test]
    fn compressed_frames_pass_through_or_are_resized_in_their_format() {
        let small = compressed("jpeg", DynamicImage::new_rgb8(320, 240), ImageFormat::Jpeg);
        let out = encode_frame(&small, 672).unwrap();
        let Pixels::Compressed { data, .. } = &small.pixels else { unreachable!() };
        assert!(out.passed_through && out.base64 == base64::engine::general_purpose::STANDARD.encode(data));
        let big = compressed("png", DynamicImage::new_rgb8(2000, 1000), ImageFormat::Png);
        let out = encode_frame(&big, 672).unwrap();
        assert_eq!((out.format, out.width, out.height, out.passed_through), (ImageFormat::Png, 672, 336, false));
        assert_eq!(decode(&out).width(), 672);
    }

    #[test]
    fn other_or_broken_compressed_frames_are_refused() {
        let gif = Frame { topic: "/c".into(), pixels: Pixels::Compressed { format: "gif".into(), data: b"GIF89a....".to_vec() }, stamp: None, received: SystemTime::now() };
        assert!(encode_frame(&gif, 672).unwrap_err().to_string().contains("compressed format 'gif' is not JPEG or PNG"));
        let cut = Frame { topic: "/c".into(), pixels: Pixels::Compressed { format: "png".into(), data: b"\x89PNG\r\n\x1a\n".to_vec() }, stamp: None, received: SystemTime::now() };
        assert!(encode_frame(&cut, 672).unwrap_err().to_string().contains("unusable"));
    }
}
