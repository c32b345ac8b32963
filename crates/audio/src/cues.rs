//! Short sounds for call events (SPEC §7): someone joined, someone left, the microphone was
//! muted or unmuted, and a second call waiting. Made here rather than shipped as files: each is
//! a few notes of a soft sine with raised-cosine edges, 48 kHz mono, about −18 dBFS RMS, so they
//! never startle and never clip. Joining rises and leaving falls, as in most calling apps, so
//! they can be told apart without looking.

use crate::SAMPLE_RATE;

/// What a cue announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cue {
    Join,
    Leave,
    Mute,
    Unmute,
    /// A second call rings while this device is in a call (instead of the ringtone).
    CallWaiting,
}

/// Notes as (frequency Hz, milliseconds); zero Hz is a pause.
fn notes(cue: Cue) -> &'static [(f64, u32)] {
    match cue {
        Cue::Join => &[(659.3, 90), (880.0, 140)],
        Cue::Leave => &[(880.0, 90), (659.3, 140)],
        Cue::Mute => &[(440.0, 70)],
        Cue::Unmute => &[(587.3, 70)],
        Cue::CallWaiting => &[(440.0, 200), (0.0, 120), (440.0, 200)],
    }
}

/// Peak amplitude of every note: −15 dBFS peak, about −18 dBFS RMS.
const PEAK: f64 = 0.18;
/// Rise and fall of each note, so nothing clicks.
const EDGE_MS: f64 = 8.0;

/// The cue's samples at [`SAMPLE_RATE`].
pub fn samples(cue: Cue) -> Vec<f32> {
    let rate = f64::from(SAMPLE_RATE);
    let mut out = Vec::new();
    for &(frequency, ms) in notes(cue) {
        let len = (f64::from(ms) * rate / 1000.0) as usize;
        let edge = (EDGE_MS * rate / 1000.0) as usize;
        out.extend((0..len).map(|i| {
            if frequency == 0.0 {
                return 0.0;
            }
            let from_edge = i.min(len - i) as f64;
            let envelope = if from_edge < edge as f64 {
                0.5 - 0.5 * (std::f64::consts::PI * from_edge / edge as f64).cos()
            } else {
                1.0
            };
            ((2.0 * std::f64::consts::PI * frequency * i as f64 / rate).sin() * envelope * PEAK) as f32
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean frequency of a stretch by zero crossings.
    fn pitch(samples: &[f32]) -> f64 {
        let crossings = samples.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(SAMPLE_RATE))
    }

    #[test]
    fn cues_are_short_soft_and_unclipped() {
        for cue in [Cue::Join, Cue::Leave, Cue::Mute, Cue::Unmute, Cue::CallWaiting] {
            let s = samples(cue);
            let seconds = s.len() as f64 / f64::from(SAMPLE_RATE);
            assert!(seconds > 0.05 && seconds < 0.6, "{cue:?}: {seconds} s");
            let peak = s.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(peak <= PEAK as f32 + 1e-6 && peak > 0.1, "{cue:?}: peak {peak}");
            assert!(s[0].abs() < 1e-3 && s[s.len() - 1].abs() < 0.01, "{cue:?} starts and ends at rest");
        }
    }

    #[test]
    fn joining_rises_and_leaving_falls() {
        let halves = |cue| {
            let s = samples(cue);
            let (first, second) = s.split_at(s.len() * 2 / 5);
            (pitch(first), pitch(second))
        };
        let (a, b) = halves(Cue::Join);
        assert!(b > a * 1.2, "join rises: {a} then {b}");
        let (a, b) = halves(Cue::Leave);
        assert!(a > b * 1.2, "leave falls: {a} then {b}");
        assert!(pitch(&samples(Cue::Unmute)) > pitch(&samples(Cue::Mute)), "unmute is the higher one");
    }
}
