//! A camera's frame, in whatever pixel format it came, turned into its luma plane.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::{PixelFormat, Resolution};

/// The largest picture decoded: 8K. A JPEG header claiming more is corrupt, not a camera.
const LARGEST_SIDE: usize = 8192;

/// The luma of a frame `claimed` to be of that size and format, with the size it really has:
/// a JPEG says its own size, which is what the camera delivered whatever it was asked for.
pub(crate) fn luma(format: PixelFormat, claimed: Resolution, data: &[u8]) -> Result<(Resolution, Vec<u8>), String> {
    if format == PixelFormat::Mjpeg {
        return jpeg_luma(data);
    }
    let pixels = usize::try_from(u64::from(claimed.width) * u64::from(claimed.height))
        .map_err(|_| format!("a {claimed} frame is too large"))?;
    let bytes_per_pixel = match format {
        PixelFormat::Yuyv => 2,
        PixelFormat::Rgb | PixelFormat::Bgr => 3,
        // NV12 is a full luma plane followed by half as many bytes of chroma; only the plane is read.
        PixelFormat::Gray | PixelFormat::Nv12 | PixelFormat::Mjpeg => 1,
    };
    let needed = pixels.saturating_mul(bytes_per_pixel);
    if data.len() < needed {
        return Err(format!("a {format} frame of {} bytes is too short for {claimed}", data.len()));
    }
    let plane = match format {
        PixelFormat::Gray | PixelFormat::Nv12 | PixelFormat::Mjpeg => data[..pixels].to_vec(),
        // Y0 U Y1 V: luma on every even byte.
        PixelFormat::Yuyv => data[..needed].iter().step_by(2).copied().collect(),
        PixelFormat::Rgb => data[..needed].chunks_exact(3).map(|p| bt601(p[0], p[1], p[2])).collect(),
        PixelFormat::Bgr => data[..needed].chunks_exact(3).map(|p| bt601(p[2], p[1], p[0])).collect(),
    };
    Ok((claimed, plane))
}

/// BT.601 luma of an RGB pixel, in integers (weights ×256: 77, 150, 29).
fn bt601(r: u8, g: u8, b: u8) -> u8 {
    let weighted = 77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128;
    u8::try_from(weighted >> 8).unwrap_or(u8::MAX)
}

/// Decodes an MJPEG frame straight to luma. zune-jpeg supplies the Huffman tables that UVC
/// cameras leave out of their frames.
fn jpeg_luma(data: &[u8]) -> Result<(Resolution, Vec<u8>), String> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(LARGEST_SIDE)
        .set_max_height(LARGEST_SIDE);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    decoder.decode_headers().map_err(|e| format!("an MJPEG frame cannot be decoded: {e:?}"))?;
    let (width, height) = decoder.dimensions().ok_or("an MJPEG frame has no size")?;
    let size = decoder.output_buffer_size().ok_or("an MJPEG frame has no size")?;
    let mut plane = vec![0; size];
    decoder.decode_into(&mut plane).map_err(|e| format!("an MJPEG frame cannot be decoded: {e:?}"))?;
    // Both sides are at most LARGEST_SIDE, so they fit.
    let resolution = Resolution::new(width as u32, height as u32);
    plane.truncate(width * height);
    Ok((resolution, plane))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: Resolution = Resolution::new(4, 2);

    #[test]
    fn yuyv_keeps_every_even_byte() {
        let data: Vec<u8> = (0..16).collect();
        let (size, plane) = luma(PixelFormat::Yuyv, SIZE, &data).unwrap();
        assert_eq!(size, SIZE);
        assert_eq!(plane, [0, 2, 4, 6, 8, 10, 12, 14]);
    }

    #[test]
    fn nv12_and_gray_take_the_first_plane() {
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(luma(PixelFormat::Nv12, SIZE, &data).unwrap().1, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(luma(PixelFormat::Gray, SIZE, &data[..8]).unwrap().1, [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn rgb_and_bgr_weigh_green_most() {
        let size = Resolution::new(3, 1);
        let rgb = [255, 0, 0, 0, 255, 0, 255, 255, 255];
        assert_eq!(luma(PixelFormat::Rgb, size, &rgb).unwrap().1, [77, 149, 255]);
        let bgr = [0, 0, 255, 0, 255, 0, 255, 255, 255];
        assert_eq!(luma(PixelFormat::Bgr, size, &bgr).unwrap().1, [77, 149, 255]);
    }

    #[test]
    fn mjpeg_frames_are_decoded_at_the_size_they_really_have() {
        // A camera asked for 64x48 that sends 32x16 anyway: the JPEG tells the truth.
        let (width, height) = (32u16, 16u16);
        let grey: Vec<u8> = (0..usize::from(width) * usize::from(height)).map(|i| (i % 32 * 8) as u8).collect();
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95).encode(&grey, width, height, jpeg_encoder::ColorType::Luma).unwrap();
        let (size, plane) = luma(PixelFormat::Mjpeg, Resolution::new(64, 48), &jpeg).unwrap();
        assert_eq!(size, Resolution::new(32, 16));
        assert_eq!(plane.len(), 32 * 16);
        let worst = plane.iter().zip(&grey).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst <= 8, "decoded luma off by {worst}");
    }

    #[test]
    fn short_or_corrupt_frames_are_errors_not_panics() {
        let err = luma(PixelFormat::Yuyv, Resolution::new(640, 480), &[0; 100]).unwrap_err();
        assert!(err.contains("too short for 640x480"), "{err}");
        let huge = Resolution::new(u32::MAX, u32::MAX);
        assert!(luma(PixelFormat::Rgb, huge, &[0; 16]).is_err());
        assert!(luma(PixelFormat::Mjpeg, SIZE, b"not a jpeg").unwrap_err().contains("MJPEG"));
        assert!(luma(PixelFormat::Mjpeg, SIZE, &[0xFF, 0xD8, 0xFF]).is_err());
    }
}
