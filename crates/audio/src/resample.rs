//! Any device rate to the pipeline's 48 kHz, in fixed 10 ms output frames (rubato's
//! asynchronous sinc resampler, which also absorbs small clock drift between devices).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler as _, SincInterpolationParameters, SincInterpolationType, WindowFunction};

use crate::{AudioError, FRAME_10MS, SAMPLE_RATE};

/// Turns mono samples at `input_rate` into 10 ms frames at 48 kHz. 48 kHz input passes through.
pub struct Resampler {
    inner: Option<Async<f32>>,
    input_rate: u32,
    /// Input not yet consumed.
    pending: Vec<f32>,
    input_buffer: Vec<f32>,
    output_buffer: Vec<f32>,
}

impl Resampler {
    pub fn new(input_rate: u32) -> Result<Self, AudioError> {
        if !(8_000..=384_000).contains(&input_rate) {
            return Err(AudioError::Resample {
                rate: input_rate,
                reason: "supported rates are 8 kHz to 384 kHz".into(),
            });
        }
        let inner = if input_rate == SAMPLE_RATE {
            None
        } else {
            let params = SincInterpolationParameters {
                sinc_len: 128,
                f_cutoff: None,
                oversampling_factor: 256,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            let ratio = f64::from(SAMPLE_RATE) / f64::from(input_rate);
            Some(
                Async::<f32>::new_sinc(ratio, 1.1, &params, FRAME_10MS, 1, FixedAsync::Output)
                    .map_err(|e| AudioError::Resample { rate: input_rate, reason: e.to_string() })?,
            )
        };
        let (input_max, output_max) =
            inner.as_ref().map_or((FRAME_10MS, FRAME_10MS), |r| (r.input_frames_max(), r.output_frames_max()));
        Ok(Self {
            inner,
            input_rate,
            pending: Vec::with_capacity(input_max * 4),
            input_buffer: vec![0.0; input_max],
            output_buffer: vec![0.0; output_max],
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Adds input and calls `frame` for every complete 10 ms output frame.
    pub fn push(&mut self, input: &[f32], mut frame: impl FnMut(&[f32; FRAME_10MS])) -> Result<(), AudioError> {
        self.pending.extend_from_slice(input);
        let Some(inner) = self.inner.as_mut() else {
            let mut used = 0;
            while self.pending.len() - used >= FRAME_10MS {
                let chunk: &[f32; FRAME_10MS] =
                    self.pending[used..used + FRAME_10MS].try_into().expect("slice is exactly one frame");
                frame(chunk);
                used += FRAME_10MS;
            }
            self.pending.drain(..used);
            return Ok(());
        };
        let mut used = 0;
        loop {
            let need = inner.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            self.input_buffer[..need].copy_from_slice(&self.pending[used..used + need]);
            used += need;
            let rate = self.input_rate;
            let err = |e: &dyn std::fmt::Display| AudioError::Resample { rate, reason: e.to_string() };
            let input = InterleavedSlice::new(&self.input_buffer[..], 1, need).map_err(|e| err(&e))?;
            let capacity = self.output_buffer.len();
            let mut output =
                InterleavedSlice::new_mut(&mut self.output_buffer[..], 1, capacity).map_err(|e| err(&e))?;
            let (_, produced) = inner.process_into_buffer(&input, &mut output, None).map_err(|e| err(&e))?;
            if produced >= FRAME_10MS {
                let chunk: &[f32; FRAME_10MS] =
                    self.output_buffer[..FRAME_10MS].try_into().expect("slice is exactly one frame");
                frame(chunk);
            }
        }
        self.pending.drain(..used);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * hz / rate as f32).sin())
            .collect()
    }

    fn zero_crossings(s: &[f32]) -> usize {
        s.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count()
    }

    #[test]
    fn cd_rate_becomes_48_khz_with_the_same_pitch_and_level() {
        let input = tone(44_100, 1000.0, 2.0);
        let mut r = Resampler::new(44_100).unwrap();
        let mut out = Vec::new();
        // Odd-sized pushes, as device callbacks deliver them.
        for chunk in input.chunks(441 + 7) {
            r.push(chunk, |f| out.extend_from_slice(f)).unwrap();
        }
        let expected = input.len() as f64 * 48_000.0 / 44_100.0;
        assert!((out.len() as f64 - expected).abs() < 2.0 * FRAME_10MS as f64, "{} vs {expected}", out.len());
        let steady = &out[4800..out.len() - 4800];
        let hz = zero_crossings(steady) as f64 / 2.0 / (steady.len() as f64 / 48_000.0);
        assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
        let level = calldock_media::level::rms_dbfs(steady);
        assert!((level - calldock_media::level::rms_dbfs(&input)).abs() < 0.2, "{level}");
    }

    #[test]
    fn pipeline_rate_passes_through_unchanged() {
        let input = tone(48_000, 440.0, 0.1);
        let mut r = Resampler::new(48_000).unwrap();
        let mut out = Vec::new();
        r.push(&input, |f| out.extend_from_slice(f)).unwrap();
        assert_eq!(out, input[..out.len()]);
        assert_eq!(out.len(), 4800);
    }

    #[test]
    fn absurd_rates_are_refused() {
        assert!(Resampler::new(0).is_err());
        assert!(Resampler::new(10_000_000).is_err());
    }
}
