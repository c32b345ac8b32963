//! Pictures made smaller: the self view and the pre-join preview show the camera at a fraction
//! of its size, and a thumbnail costs the window a fraction of the copying and colour
//! conversion. Each plane is scaled on its own (bilinear, SIMD through fast_image_resize).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::{Picture, VideoError};

/// The size a picture takes to fit within `max_width` × `max_height`, its shape kept, both
/// sides even (I420 needs it) and at least 2. Pictures already small enough keep their size.
pub fn fit_within(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    if width <= max_width && height <= max_height {
        return (width, height);
    }
    // The smaller of the two ratios, in integers: w·mh vs h·mw.
    let (w, h) = if u64::from(width) * u64::from(max_height) >= u64::from(height) * u64::from(max_width) {
        (max_width, (u64::from(height) * u64::from(max_width) / u64::from(width)) as u32)
    } else {
        ((u64::from(width) * u64::from(max_height) / u64::from(height)) as u32, max_height)
    };
    ((w & !1).max(2), (h & !1).max(2))
}

/// Scales pictures, keeping its buffers between calls (30 pictures a second).
pub struct Scaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for Scaler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scaler {
    pub fn new() -> Scaler {
        Scaler {
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }

    /// The picture at `width` × `height` (even sides, at most [`crate::MAX_SIDE`]).
    pub fn scale(&mut self, picture: &Picture, width: u32, height: u32) -> Result<Picture, VideoError> {
        crate::check_size(width, height)?;
        if (width, height) == (picture.width(), picture.height()) {
            return Ok(picture.clone());
        }
        let mut data = vec![0u8; Picture::len_for(width, height)];
        let luma_len = width as usize * height as usize;
        let (luma, chroma) = data.split_at_mut(luma_len);
        let (u, v) = chroma.split_at_mut(luma_len / 4);
        let (pu, pv) = picture.chroma();
        let (pw, ph) = (picture.width(), picture.height());
        self.plane(picture.luma(), pw, ph, luma, width, height)?;
        self.plane(pu, pw / 2, ph / 2, u, width / 2, height / 2)?;
        self.plane(pv, pw / 2, ph / 2, v, width / 2, height / 2)?;
        Picture::from_i420(width, height, data)
    }

    /// The picture made to fit within `max_width` × `max_height` ([`fit_within`]).
    pub fn fit(&mut self, picture: &Picture, max_width: u32, max_height: u32) -> Result<Picture, VideoError> {
        let (width, height) = fit_within(picture.width(), picture.height(), max_width, max_height);
        self.scale(picture, width, height)
    }

    fn plane(&mut self, from: &[u8], fw: u32, fh: u32, to: &mut [u8], tw: u32, th: u32) -> Result<(), VideoError> {
        let scaling = |e: &dyn std::fmt::Display| VideoError::Scaling(e.to_string());
        let source = ImageRef::new(fw, fh, from, PixelType::U8).map_err(|e| scaling(&e))?;
        let mut target = Image::from_slice_u8(tw, th, to, PixelType::U8).map_err(|e| scaling(&e))?;
        self.resizer.resize(&source, &mut target, &self.options).map_err(|e| scaling(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pattern;

    #[test]
    fn sizes_fit_within_the_box_keeping_their_shape_and_even_sides() {
        assert_eq!(fit_within(640, 480, 320, 240), (320, 240));
        assert_eq!(fit_within(1280, 720, 320, 240), (320, 180));
        assert_eq!(fit_within(480, 640, 320, 240), (180, 240));
        assert_eq!(fit_within(320, 240, 320, 240), (320, 240), "small enough already");
        assert_eq!(fit_within(100, 60, 320, 240), (100, 60), "never made larger");
        assert_eq!(fit_within(1000, 2, 320, 240), (320, 2), "never below 2");
        assert_eq!(fit_within(642, 482, 321, 241), (320, 240), "odd sides made even");
    }

    #[test]
    fn a_scaled_picture_keeps_its_content_and_colour() {
        let mut scaler = Scaler::new();
        // Left half bright and red, right half dark and blue.
        let (w, h) = (640u32, 480u32);
        let mut data = Vec::with_capacity(Picture::len_for(w, h));
        for _ in 0..h {
            data.extend((0..w).map(|x| if x < w / 2 { 200 } else { 40 }));
        }
        // U then V: red has low U and high V, blue the reverse.
        for plane in [(90u8, 240u8), (240, 90)] {
            for _ in 0..h / 2 {
                data.extend((0..w / 2).map(|x| if x < w / 4 { plane.0 } else { plane.1 }));
            }
        }
        let picture = Picture::from_i420(w, h, data).unwrap();
        let small = scaler.fit(&picture, 320, 240).unwrap();
        assert_eq!((small.width(), small.height()), (320, 240));
        let at = |p: &Picture, x: usize, y: usize| {
            let (u, v) = p.chroma();
            let cw = p.width() as usize / 2;
            (p.luma()[y * p.width() as usize + x], u[y / 2 * cw + x / 2], v[y / 2 * cw + x / 2])
        };
        assert_eq!(at(&small, 40, 100), (200, 90, 240), "left: bright, red");
        assert_eq!(at(&small, 280, 100), (40, 240, 90), "right: dark, blue");

        // Detailed content: at half size each pixel is close to the average of the four it
        // stands for, and the numbered pattern still reads back at full size.
        let numbered = test_pattern::pattern(640, 480, 77);
        let half = scaler.scale(&numbered, 320, 240).unwrap();
        let full = numbered.luma();
        let off: f64 = (0..240usize)
            .flat_map(|y| (0..320usize).map(move |x| (x, y)))
            .map(|(x, y)| {
                let at = |dx: usize, dy: usize| f64::from(full[(2 * y + dy) * 640 + 2 * x + dx]);
                let average = (at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)) / 4.0;
                (f64::from(half.luma()[y * 320 + x]) - average).abs()
            })
            .sum::<f64>()
            / (320.0 * 240.0);
        assert!(off < 12.0, "mean distance from the 2×2 averages: {off:.1}");
        let back = scaler.scale(&half, 640, 480).unwrap();
        assert_eq!(test_pattern::counter(&back), 77);
    }

    #[test]
    fn impossible_sizes_are_errors() {
        let mut scaler = Scaler::new();
        let picture = Picture::grey(64, 48).unwrap();
        assert!(matches!(scaler.scale(&picture, 31, 24), Err(VideoError::BadSize { .. })));
        assert!(matches!(scaler.scale(&picture, 0, 24), Err(VideoError::BadSize { .. })));
        assert_eq!(scaler.scale(&picture, 64, 48).unwrap(), picture, "same size: the same picture");
    }
}
