//! A synthetic camera: a moving test pattern at any resolution and rate, to check the video path
//! on a machine without a camera, and to give tests frames whose every property is known.

use std::time::Duration;

use super::{CameraError, Frame, FrameSource, Resolution, frame_time};

/// Video range luma: black and white as cameras send them.
const BLACK: u8 = 16;
const WHITE: u8 = 235;
/// How far the stripes move per frame, in luma steps (and pixels).
const STRIPE_STEP: usize = 6;

/// Diagonal grey stripes that scroll a few pixels every frame, and a white square crossing the
/// picture: mid-grey on average, different in every pixel from one frame to the next.
#[derive(Debug, Clone)]
pub struct PatternSource {
    resolution: Resolution,
    fps: u32,
    next: u64,
}

impl PatternSource {
    /// A pattern of that size at `fps` frames per second (sizes and rates of 0 count as 1).
    pub fn new(resolution: Resolution, fps: u32) -> Self {
        let resolution = Resolution::new(resolution.width.max(1), resolution.height.max(1));
        Self { resolution, fps: fps.max(1), next: 0 }
    }

    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Frame number `index`, timestamped `index / fps` seconds.
    pub fn frame(&self, index: u64) -> Frame {
        let Resolution { width, height } = self.resolution;
        let (columns, rows) = (width as usize, height as usize);
        let span = usize::from(WHITE - BLACK) + 1;
        // Row y is this ramp from offset (y + shift) % span: rows are copied, not computed pixel
        // by pixel, so even an unoptimised build makes HD frames quickly.
        let ramp: Vec<u8> = (BLACK..=WHITE).cycle().take(columns + span).collect();
        // Reduced first, so no frame number overflows.
        let shift = (index % span as u64) as usize * STRIPE_STEP;
        let square = (columns.min(rows) / 4).max(1);
        let travel = columns.saturating_sub(square).max(1);
        let square_x = (index % travel as u64) as usize * STRIPE_STEP % travel;
        let square_y = (rows - square.min(rows)) / 2;
        let mut luma = Vec::with_capacity(columns * rows);
        for y in 0..rows {
            let offset = (y + shift) % span;
            let start = luma.len();
            luma.extend_from_slice(&ramp[offset..offset + columns]);
            if (square_y..square_y + square).contains(&y) {
                let end = (square_x + square).min(columns);
                luma[start + square_x..start + end].fill(WHITE);
            }
        }
        Frame { width, height, captured_at: self.time_of(index), luma, chroma: None }
    }

    fn time_of(&self, index: u64) -> Duration {
        frame_time(index, u64::from(self.fps), 1)
    }
}

impl FrameSource for PatternSource {
    /// Never ends and never waits.
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let frame = self.frame(self.next);
        self.next += 1;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(frame: &Frame) -> f64 {
        frame.luma.iter().map(|&v| f64::from(v)).sum::<f64>() / frame.luma.len() as f64
    }

    #[test]
    fn frames_have_the_asked_size_and_rate_and_every_one_differs() {
        let mut pattern = PatternSource::new(Resolution::new(320, 240), 30);
        let frames: Vec<Frame> = (0..31).map(|_| pattern.next_frame().unwrap().unwrap()).collect();
        assert!(frames.iter().all(|f| (f.width, f.height, f.luma.len()) == (320, 240, 320 * 240)));
        assert_eq!(frames[30].captured_at, Duration::from_secs(1));
        assert_eq!(frames[1].captured_at - frames[0].captured_at, Duration::from_nanos(33_333_333));
        for pair in frames.windows(2) {
            let changed = pair[0].luma.iter().zip(&pair[1].luma).filter(|(a, b)| a != b).count();
            assert!(changed > pair[0].luma.len() / 2, "only {changed} pixels moved");
        }
        for frame in &frames {
            let mean = mean(frame);
            assert!((100.0..160.0).contains(&mean), "mean luma {mean}");
        }
    }

    #[test]
    fn odd_and_degenerate_sizes_do_not_panic() {
        for (width, height) in [(1, 1), (0, 0), (3, 1000), (1000, 3), (7, 5)] {
            let pattern = PatternSource::new(Resolution::new(width, height), 0);
            let frame = pattern.frame(u64::MAX);
            assert_eq!(frame.luma.len(), frame.width as usize * frame.height as usize);
            assert_eq!(pattern.fps(), 1);
        }
    }
}
