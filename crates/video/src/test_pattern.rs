//! A synthetic video source whose frames say which they are: for tests across a real call, and
//! for the echo test's self-check. Not a camera stand-in for users (the camera layer's moving
//! test pattern is that).

use crate::Picture;

/// A moving picture with detail in luma and colour in chroma: bars that slide one pixel a
/// frame, and the frame's index (mod 256) drawn as eight 16×16 blocks along the top, so each
/// decoded frame says which one it was. Sides are rounded down to even ones and kept within
/// 128×16..=[`crate::MAX_SIDE`].
pub fn pattern(width: u32, height: u32, index: u32) -> Picture {
    let (width, height) = (width.clamp(128, crate::MAX_SIDE) & !1, height.clamp(16, crate::MAX_SIDE) & !1);
    let (w, h) = (width as usize, height as usize);
    let mut data = vec![0u8; Picture::len_for(width, height)];
    for y in 0..h {
        for x in 0..w {
            data[y * w + x] = (((x + index as usize) / 8 % 2) * 160 + (y * 64 / h)) as u8;
        }
    }
    for bit in 0..8 {
        let on = index >> bit & 1 == 1;
        for y in 0..16 {
            for x in bit * 16..bit * 16 + 16 {
                data[y * w + x] = if on { 235 } else { 16 };
            }
        }
    }
    let luma = w * h;
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            data[luma + y * w / 2 + x] = (x * 255 / (w / 2)) as u8;
            data[luma + luma / 4 + y * w / 2 + x] = (y * 255 / (h / 2)) as u8;
        }
    }
    Picture::from_i420(width, height, data).expect("even sides within MAX_SIDE")
}

/// The frame index (mod 256) `pattern` drew, read back from a decoded picture.
pub fn counter(picture: &Picture) -> u32 {
    let w = picture.width() as usize;
    if w < 128 || picture.height() < 16 {
        return 0;
    }
    (0..8).map(|bit| u32::from(picture.luma()[8 * w + bit * 16 + 8] > 128) << bit).sum()
}
