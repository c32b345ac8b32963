//! Audio levels: RMS and peak in dBFS, clipping runs, silence. Used by the doctor's microphone
//! check and by the level meter. Samples are f32 in [-1, 1].

/// Below this RMS a microphone counts as silent / too quiet (test.webrtc.org's −60 dBFS).
pub const SILENCE_DBFS: f64 = -60.0;

/// More consecutive full-scale samples than this is clipping (test.webrtc.org).
pub const CLIPPING_RUN: usize = 6;

/// A level too low to express: digital silence.
pub const FLOOR_DBFS: f64 = -120.0;

pub fn dbfs(amplitude: f64) -> f64 {
    if amplitude <= 0.0 || !amplitude.is_finite() { FLOOR_DBFS } else { (20.0 * amplitude.log10()).max(FLOOR_DBFS) }
}

/// RMS level in dBFS (a full-scale sine is −3 dBFS).
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return FLOOR_DBFS;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    dbfs((sum / samples.len() as f64).sqrt())
}

pub fn peak_dbfs(samples: &[f32]) -> f64 {
    dbfs(samples.iter().fold(0.0f64, |m, &s| m.max(f64::from(s).abs())))
}

/// The longest run of consecutive samples at full scale (|s| ≥ 0.999: converters rarely give
/// exactly ±1.0 after integer-to-float conversion).
pub fn longest_full_scale_run(samples: &[f32]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for &s in samples {
        if s.abs() >= 0.999 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

pub fn is_clipping(samples: &[f32]) -> bool {
    longest_full_scale_run(samples) > CLIPPING_RUN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| amplitude * (i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 48_000.0).sin()).collect()
    }

    #[test]
    fn full_scale_sine_is_minus_3_dbfs() {
        assert!((rms_dbfs(&sine(1.0, 48_000)) + 3.01).abs() < 0.05);
        assert!((peak_dbfs(&sine(1.0, 48_000))).abs() < 0.01);
    }

    #[test]
    fn quiet_speech_level_is_measured() {
        // −62 dBFS RMS: amplitude 10^(−59/20) sine (sine RMS is amplitude/√2 → −3 dB).
        let a = 10f32.powf(-59.0 / 20.0);
        let level = rms_dbfs(&sine(a, 48_000));
        assert!((level + 62.0).abs() < 0.1, "{level}");
        assert!(level < SILENCE_DBFS);
    }

    #[test]
    fn silence_is_the_floor() {
        assert_eq!(rms_dbfs(&[0.0; 480]), FLOOR_DBFS);
        assert_eq!(rms_dbfs(&[]), FLOOR_DBFS);
        assert_eq!(rms_dbfs(&[f32::NAN; 4]), FLOOR_DBFS);
    }

    #[test]
    fn clipping_needs_more_than_six_full_scale_samples_in_a_row() {
        let mut s = vec![0.2f32; 100];
        s[10..16].fill(1.0); // six: not clipping
        assert!(!is_clipping(&s));
        s[40..47].fill(-1.0); // seven: clipping
        assert!(is_clipping(&s));
        assert_eq!(longest_full_scale_run(&s), 7);
    }
}
