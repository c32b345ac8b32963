//! A camera's frame, in whatever pixel format it came, turned into its luma plane and, where it
//! has colour, its 4:2:0 chroma planes (what a video call encodes).
//!
//! Everything comes out in BT.601 limited range (luma 16 black to 235 white, chroma 16–240),
//! which is what YUYV and NV12 cameras send and how the other side's decoder, and the call
//! dock's own drawing (ui/src/logic/video.ts), read I420. RGB and MJPEG frames are full range
//! and are mapped: passed through as they were, their blacks and whites would be clipped and
//! their colours oversaturated on the other side.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::{Chroma, PixelFormat, Resolution};

/// The largest picture decoded: 8K. A JPEG header claiming more is corrupt, not a camera.
const LARGEST_SIDE: usize = 8192;

/// The luma and chroma of a frame `claimed` to be of that size and format, with the size it
/// really has: a JPEG says its own size, which is what the camera delivered whatever it was
/// asked for.
pub(crate) fn planes(
    format: PixelFormat,
    claimed: Resolution,
    data: &[u8],
) -> Result<(Resolution, Vec<u8>, Option<Chroma>), String> {
    if format == PixelFormat::Mjpeg {
        return jpeg_planes(data);
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
    let (w, h) = (claimed.width as usize, claimed.height as usize);
    let chroma = match format {
        PixelFormat::Gray | PixelFormat::Mjpeg => None,
        // Interleaved U V at 4:2:0 after the luma plane; a frame cut short keeps its luma.
        PixelFormat::Nv12 => {
            let (cw, ch) = Chroma::size_for(claimed.width, claimed.height);
            data.get(pixels..pixels + 2 * cw * ch).map(|uv| Chroma {
                u: uv.iter().step_by(2).copied().collect(),
                v: uv.iter().skip(1).step_by(2).copied().collect(),
            })
        }
        // 4:2:2: one U and one V per pixel pair; two rows make a 4:2:0 row.
        PixelFormat::Yuyv => Some(subsample(w, h, |x, y| {
            let at = (y * w + (x & !1)) * 2;
            (data.get(at + 1).copied().unwrap_or(128), data.get(at + 3).copied().unwrap_or(128))
        })),
        PixelFormat::Rgb => Some(subsample(w, h, |x, y| {
            let p = &data[(y * w + x) * 3..];
            bt601_chroma(p[0], p[1], p[2])
        })),
        PixelFormat::Bgr => Some(subsample(w, h, |x, y| {
            let p = &data[(y * w + x) * 3..];
            bt601_chroma(p[2], p[1], p[0])
        })),
    };
    Ok((claimed, plane, chroma))
}

/// 4:2:0 chroma from a source that has a (U, V) for every pixel: each 2×2 block averaged (a
/// block at an odd edge has fewer pixels).
pub(crate) fn subsample(w: usize, h: usize, at: impl Fn(usize, usize) -> (u8, u8)) -> Chroma {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (mut u, mut v) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut su, mut sv, mut n) = (0u32, 0u32, 0u32);
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let (pu, pv) = at(x, y);
                    su += u32::from(pu);
                    sv += u32::from(pv);
                    n += 1;
                }
            }
            u.push(((su + n / 2) / n) as u8);
            v.push(((sv + n / 2) / n) as u8);
        }
    }
    Chroma { u, v }
}

/// BT.601 chroma of an RGB pixel, limited range (16–240, 128 no colour), in integers (×256).
fn bt601_chroma(r: u8, g: u8, b: u8) -> (u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let u = 128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8);
    let v = 128 + ((112 * r - 94 * g - 18 * b + 128) >> 8);
    (u.clamp(16, 240) as u8, v.clamp(16, 240) as u8)
}

/// BT.601 luma of an RGB pixel, limited range (16–235), in integers (weights ×256: 66, 129, 25).
fn bt601(r: u8, g: u8, b: u8) -> u8 {
    let weighted = 66 * u32::from(r) + 129 * u32::from(g) + 25 * u32::from(b) + 128;
    // At most 16 + 219.
    (16 + (weighted >> 8)) as u8
}

/// JPEG's full-range luma (0–255) to limited range (16–235), rounded.
static JPEG_LUMA: [u8; 256] = to_limited_range(219, 16);
/// JPEG's full-range chroma (0–255, 128 no colour) to limited range (16–240), rounded.
static JPEG_CHROMA: [u8; 256] = to_limited_range(224, 16);

/// `low + value × span / 255` for every byte value, rounded to nearest.
const fn to_limited_range(span: u32, low: u32) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut value = 0;
    while value < 256 {
        table[value] = (low + (value as u32 * span + 127) / 255) as u8;
        value += 1;
    }
    table
}

/// Decodes an MJPEG frame to YCbCr (JPEG's own colour space, full range) and maps it to limited
/// range: luma, and chroma subsampled to 4:2:0. zune-jpeg supplies the Huffman tables that UVC
/// cameras leave out of their frames. A grey JPEG has no chroma.
fn jpeg_planes(data: &[u8]) -> Result<(Resolution, Vec<u8>, Option<Chroma>), String> {
    let undecodable = |e| format!("an MJPEG frame cannot be decoded: {e:?}");
    let mut probe = JpegDecoder::new_with_options(ZCursor::new(data), limits());
    probe.decode_headers().map_err(undecodable)?;
    let grey = probe.input_colorspace().is_some_and(|c| c == ColorSpace::Luma);
    let out = if grey { ColorSpace::Luma } else { ColorSpace::YCbCr };
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), limits().jpeg_set_out_colorspace(out));
    decoder.decode_headers().map_err(undecodable)?;
    let (width, height) = decoder.dimensions().ok_or("an MJPEG frame has no size")?;
    let size = decoder.output_buffer_size().ok_or("an MJPEG frame has no size")?;
    let mut pixels = vec![0; size];
    decoder.decode_into(&mut pixels).map_err(undecodable)?;
    // Both sides are at most LARGEST_SIDE, so they fit.
    let resolution = Resolution::new(width as u32, height as u32);
    if grey {
        pixels.truncate(width * height);
        pixels.iter_mut().for_each(|y| *y = JPEG_LUMA[usize::from(*y)]);
        return Ok((resolution, pixels, None));
    }
    if pixels.len() < width * height * 3 {
        return Err("an MJPEG frame decoded short".into());
    }
    let luma = pixels.chunks_exact(3).take(width * height).map(|p| JPEG_LUMA[usize::from(p[0])]).collect();
    let chroma = subsample(width, height, |x, y| {
        let p = &pixels[(y * width + x) * 3..];
        (JPEG_CHROMA[usize::from(p[1])], JPEG_CHROMA[usize::from(p[2])])
    });
    Ok((resolution, luma, Some(chroma)))
}

fn limits() -> DecoderOptions {
    DecoderOptions::default().set_max_width(LARGEST_SIDE).set_max_height(LARGEST_SIDE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: Resolution = Resolution::new(4, 2);

    #[test]
    fn yuyv_keeps_every_even_byte() {
        let data: Vec<u8> = (0..16).collect();
        let (size, plane, _) = planes(PixelFormat::Yuyv, SIZE, &data).unwrap();
        assert_eq!(size, SIZE);
        assert_eq!(plane, [0, 2, 4, 6, 8, 10, 12, 14]);
    }

    #[test]
    fn nv12_and_gray_take_the_first_plane() {
        let data: Vec<u8> = (0..12).collect();
        assert_eq!(planes(PixelFormat::Nv12, SIZE, &data).unwrap().1, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(planes(PixelFormat::Gray, SIZE, &data[..8]).unwrap().1, [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn rgb_and_bgr_weigh_green_most() {
        let size = Resolution::new(4, 1);
        let rgb = [255, 0, 0, 0, 255, 0, 255, 255, 255, 0, 0, 0];
        assert_eq!(planes(PixelFormat::Rgb, size, &rgb).unwrap().1, [82, 144, 235, 16]);
        let bgr = [0, 0, 255, 0, 255, 0, 255, 255, 255, 0, 0, 0];
        assert_eq!(planes(PixelFormat::Bgr, size, &bgr).unwrap().1, [82, 144, 235, 16]);
    }

    /// What the other side shows: limited-range BT.601 back to RGB, as ui/src/logic/video.ts
    /// draws it (and as VP8 decoders are read).
    fn shown(y: u8, u: u8, v: u8) -> [u8; 3] {
        let luma = 298 * (i32::from(y) - 16);
        let (d, e) = (i32::from(u) - 128, i32::from(v) - 128);
        [(luma + 409 * e + 128) >> 8, (luma - 100 * d - 208 * e + 128) >> 8, (luma + 516 * d + 128) >> 8]
            .map(|c| c.clamp(0, 255) as u8)
    }

    #[test]
    fn rgb_and_mjpeg_colours_look_the_same_on_the_other_side() {
        // Black, white, a dark grey, a skin tone, a saturated red and blue: each a 2x2 block.
        let colours: [[u8; 3]; 6] =
            [[0, 0, 0], [255, 255, 255], [40, 40, 40], [224, 172, 140], [200, 30, 30], [20, 40, 220]];
        for colour in colours {
            let rgb: Vec<u8> = (0..4).flat_map(|_| colour).collect();
            let (_, luma, chroma) = planes(PixelFormat::Rgb, Resolution::new(2, 2), &rgb).unwrap();
            let chroma = chroma.unwrap();
            let back = shown(luma[0], chroma.u[0], chroma.v[0]);
            let off = back.iter().zip(colour).map(|(a, b)| a.abs_diff(b)).max().unwrap();
            assert!(off <= 3, "RGB {colour:?} is shown as {back:?}");

            // The same colour through a camera's JPEG (quality 95, so a little is lost).
            let pixels: Vec<u8> = (0..256).flat_map(|_| colour).collect();
            let mut jpeg = Vec::new();
            jpeg_encoder::Encoder::new(&mut jpeg, 95).encode(&pixels, 16, 16, jpeg_encoder::ColorType::Rgb).unwrap();
            let (_, luma, chroma) = planes(PixelFormat::Mjpeg, Resolution::new(16, 16), &jpeg).unwrap();
            let chroma = chroma.unwrap();
            let back = shown(luma[0], chroma.u[0], chroma.v[0]);
            let off = back.iter().zip(colour).map(|(a, b)| a.abs_diff(b)).max().unwrap();
            assert!(off <= 6, "MJPEG {colour:?} is shown as {back:?}");
        }
        // A grey JPEG's black and white are video black and white too.
        let grey: Vec<u8> = (0..256).map(|i| if i < 128 { 0 } else { 255 }).collect();
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95).encode(&grey, 16, 16, jpeg_encoder::ColorType::Luma).unwrap();
        let (_, luma, _) = planes(PixelFormat::Mjpeg, Resolution::new(16, 16), &jpeg).unwrap();
        assert!(luma[0].abs_diff(16) <= 2 && luma[255].abs_diff(235) <= 2, "{} {}", luma[0], luma[255]);
    }

    #[test]
    fn mjpeg_frames_are_decoded_at_the_size_they_really_have() {
        // A camera asked for 64x48 that sends 32x16 anyway: the JPEG tells the truth.
        let (width, height) = (32u16, 16u16);
        let grey: Vec<u8> = (0..usize::from(width) * usize::from(height)).map(|i| (i % 32 * 8) as u8).collect();
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95).encode(&grey, width, height, jpeg_encoder::ColorType::Luma).unwrap();
        let (size, plane, chroma) = planes(PixelFormat::Mjpeg, Resolution::new(64, 48), &jpeg).unwrap();
        assert_eq!(size, Resolution::new(32, 16));
        assert_eq!(plane.len(), 32 * 16);
        // In limited range: 16 + value × 219/255.
        let worst = plane.iter().zip(&grey).map(|(a, b)| a.abs_diff(JPEG_LUMA[usize::from(*b)])).max().unwrap();
        assert!(worst <= 8, "decoded luma off by {worst}");
        assert_eq!(chroma, None, "a grey JPEG has no colour");
    }

    #[test]
    fn colour_comes_through_at_four_two_zero() {
        // 4x2 RGB: the left 2x2 block red, the right one blue.
        let red = [255u8, 0, 0];
        let blue = [0u8, 0, 255];
        let row: Vec<u8> = [red, red, blue, blue].concat();
        let rgb = [row.clone(), row].concat();
        let (_, _, chroma) = planes(PixelFormat::Rgb, SIZE, &rgb).unwrap();
        let chroma = chroma.expect("RGB has colour");
        // Red: V high, U low; blue: U high.
        assert!(chroma.v[0] > 200 && chroma.u[0] < 110, "{chroma:?}");
        assert!(chroma.u[1] > 200 && chroma.v[1] < 140, "{chroma:?}");
        // BGR is the same picture with its bytes the other way round.
        let bgr: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        assert_eq!(planes(PixelFormat::Bgr, SIZE, &bgr).unwrap().2, Some(chroma));

        // YUYV (Y0 U Y1 V): the two rows' U and V averaged.
        let yuyv = [10, 100, 20, 200, 30, 50, 40, 60, 10, 110, 20, 210, 30, 70, 40, 80];
        let (_, _, chroma) = planes(PixelFormat::Yuyv, SIZE, &yuyv).unwrap();
        assert_eq!(chroma, Some(Chroma { u: vec![105, 60], v: vec![205, 70] }));

        // NV12: U V interleaved after the luma; a frame without them keeps its luma.
        let mut nv12: Vec<u8> = (0..8).collect();
        nv12.extend([1, 2, 3, 4]);
        assert_eq!(planes(PixelFormat::Nv12, SIZE, &nv12).unwrap().2, Some(Chroma { u: vec![1, 3], v: vec![2, 4] }));
        assert_eq!(planes(PixelFormat::Nv12, SIZE, &nv12[..8]).unwrap().2, None);

        // An odd-sized YUYV frame (a broken camera) has no pixel outside its buffer read.
        let (_, _, chroma) = planes(PixelFormat::Yuyv, Resolution::new(3, 1), &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(chroma.map(|c| c.u.len()), Some(2));

        // A colour JPEG: luma and chroma both.
        let (width, height) = (16u16, 16u16);
        let pixels: Vec<u8> = (0..256).flat_map(|_| [200u8, 30, 30]).collect();
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95).encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb).unwrap();
        let (size, luma, chroma) = planes(PixelFormat::Mjpeg, Resolution::new(16, 16), &jpeg).unwrap();
        assert_eq!((size, luma.len()), (Resolution::new(16, 16), 256));
        let chroma = chroma.expect("a colour JPEG has colour");
        assert_eq!(chroma.u.len(), 64);
        assert!(chroma.v.iter().all(|&v| v > 180), "red: {:?}", &chroma.v[..4]);
    }

    #[test]
    fn short_or_corrupt_frames_are_errors_not_panics() {
        let err = planes(PixelFormat::Yuyv, Resolution::new(640, 480), &[0; 100]).unwrap_err();
        assert!(err.contains("too short for 640x480"), "{err}");
        let huge = Resolution::new(u32::MAX, u32::MAX);
        assert!(planes(PixelFormat::Rgb, huge, &[0; 16]).is_err());
        assert!(planes(PixelFormat::Mjpeg, SIZE, b"not a jpeg").unwrap_err().contains("MJPEG"));
        assert!(planes(PixelFormat::Mjpeg, SIZE, &[0xFF, 0xD8, 0xFF]).is_err());
    }
}
