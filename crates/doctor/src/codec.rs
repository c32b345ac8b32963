//! The codec check: how much faster than real time this CPU encodes and decodes Opus with a
//! call's settings. A call also resamples, cancels echo and runs WebRTC, so the codec alone
//! needs headroom: under 10× real time warns, under 1× (audio cannot keep up at all) fails.
//!
//! [`run`] times the codec on speech-like audio for at most [`BUDGET`]; [`verdict`] judges the
//! timings it is given.

use std::time::{Duration, Instant};

use calldock_audio::codec::{MAX_PACKET, OpusDecoder, OpusEncoder, OpusSettings};
use calldock_audio::pipeline::test_signal::speech_like;
use calldock_audio::{FRAME_20MS, SAMPLE_RATE};
use serde::Serialize;

use crate::{Check, CheckResult, Figures, Verdict};

/// Below this real-time factor the codec leaves too little CPU for the rest of a call.
pub const WARN_BELOW: f64 = 10.0;
/// Below this the codec cannot keep up with a call's audio at all.
pub const FAIL_BELOW: f64 = 1.0;
/// Speech timed, at most: long enough to average out the first frames' cache misses.
const AUDIO_SECONDS: f32 = 3.0;
/// Timing stops after this long even on a slow CPU, so the doctor stays quick; a CPU that got
/// through less audio in this time is slow, and its real-time factor says so.
pub const BUDGET: Duration = Duration::from_millis(250);

/// What the codec check measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodecFigures {
    /// Audio duration divided by the time encoding and decoding it took.
    pub real_time_factor: f64,
    /// Audio encoded and decoded.
    pub audio_ms: u64,
    pub encode_ms: f64,
    pub decode_ms: f64,
    pub bitrate_bps: i32,
    pub complexity: i32,
}

impl CodecFigures {
    /// Figures from timings: `audio` of speech took `encode` to encode and `decode` to decode.
    pub fn new(audio: Duration, encode: Duration, decode: Duration, settings: OpusSettings) -> Self {
        // A clock too coarse to see the work must not divide by zero.
        let busy = (encode + decode).max(Duration::from_micros(1));
        Self {
            real_time_factor: audio.as_secs_f64() / busy.as_secs_f64(),
            audio_ms: u64::try_from(audio.as_millis()).unwrap_or(u64::MAX),
            encode_ms: encode.as_secs_f64() * 1000.0,
            decode_ms: decode.as_secs_f64() * 1000.0,
            bitrate_bps: settings.bitrate_bps,
            complexity: settings.complexity,
        }
    }
}

/// The verdict on measured codec speed.
pub fn verdict(figures: CodecFigures) -> CheckResult {
    let f = &figures;
    let summary = format!(
        "Opus {} kb/s (complexity {}) encodes and decodes {:.1} s of speech in {:.0} ms: {:.0}× real time",
        f.bitrate_bps / 1000,
        f.complexity,
        f.audio_ms as f64 / 1000.0,
        f.encode_ms + f.decode_ms,
        f.real_time_factor
    );
    let real_time_factor = f.real_time_factor;
    let figures = Some(Figures::Codec(figures));
    if real_time_factor < FAIL_BELOW {
        CheckResult::problem(
            Check::Codec,
            Verdict::Fail,
            "codec_too_slow",
            format!("{summary}, below {FAIL_BELOW:.0}×"),
            "This CPU cannot code call audio in real time: close programs that keep it busy, or use a faster machine"
                .into(),
            figures,
        )
    } else if real_time_factor < WARN_BELOW {
        CheckResult::problem(
            Check::Codec,
            Verdict::Warn,
            "codec_slow",
            format!("{summary}, below {WARN_BELOW:.0}×"),
            "Calls may stutter when this CPU is busy: close programs that keep it busy, or turn off power saving"
                .into(),
            figures,
        )
    } else {
        CheckResult::pass(Check::Codec, summary, figures)
    }
}

/// Times Opus with a call's settings on speech-like audio (at most [`BUDGET`]).
pub fn run() -> CheckResult {
    let settings = OpusSettings::default();
    match time_codec(settings) {
        Ok((audio, encode, decode)) => verdict(CodecFigures::new(audio, encode, decode, settings)),
        Err(e) => CheckResult::problem(
            Check::Codec,
            Verdict::Fail,
            "codec_error",
            format!("Opus failed: {e}"),
            "Calldock's Opus codec failed on this machine: reinstall calldock, and report it if it fails again".into(),
            None,
        ),
    }
}

/// Returns the audio coded, the time spent encoding, and the time spent decoding.
fn time_codec(settings: OpusSettings) -> Result<(Duration, Duration, Duration), calldock_audio::AudioError> {
    let speech = speech_like(AUDIO_SECONDS);
    let mut encoder = OpusEncoder::new(settings)?;
    let mut decoder = OpusDecoder::new()?;
    let mut packet = [0u8; MAX_PACKET];
    let mut decoded = [0f32; FRAME_20MS];
    let (mut encode, mut decode) = (Duration::ZERO, Duration::ZERO);
    let mut frames = 0u32;
    let started = Instant::now();
    for chunk in speech.chunks_exact(FRAME_20MS) {
        let frame: &[f32; FRAME_20MS] = chunk.try_into().expect("chunks_exact gives whole frames");
        let t = Instant::now();
        let length = encoder.encode(frame, &mut packet)?;
        encode += t.elapsed();
        let t = Instant::now();
        decoder.decode(&packet[..length], &mut decoded)?;
        decode += t.elapsed();
        frames += 1;
        if started.elapsed() >= BUDGET {
            break;
        }
    }
    let audio = Duration::from_secs_f64(f64::from(frames) * FRAME_20MS as f64 / f64::from(SAMPLE_RATE));
    Ok((audio, encode, decode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(audio_ms: u64, busy_ms: u64) -> CheckResult {
        let busy = Duration::from_millis(busy_ms);
        verdict(CodecFigures::new(Duration::from_millis(audio_ms), busy * 3 / 4, busy / 4, OpusSettings::default()))
    }

    #[test]
    fn real_time_factors_decide_the_verdict() {
        let fast = judged(3000, 50);
        assert_eq!((fast.verdict, fast.code), (Verdict::Pass, None));
        assert!(fast.summary.contains("60× real time"), "{}", fast.summary);

        let slow = judged(3000, 400); // 7.5×
        assert_eq!((slow.verdict, slow.code), (Verdict::Warn, Some("codec_slow")));
        assert!(slow.remedy.unwrap().contains("close programs"));

        let hopeless = judged(200, 250); // 0.8×
        assert_eq!((hopeless.verdict, hopeless.code), (Verdict::Fail, Some("codec_too_slow")));
        assert!(hopeless.summary.contains("below 1×"), "{}", hopeless.summary);

        assert_eq!(judged(1000, 100).verdict, Verdict::Pass, "exactly 10× passes");
        assert_eq!(judged(1000, 1000).verdict, Verdict::Warn, "exactly 1× warns");
    }

    #[test]
    fn a_zero_duration_does_not_divide_by_zero() {
        let f = CodecFigures::new(Duration::from_millis(20), Duration::ZERO, Duration::ZERO, OpusSettings::default());
        assert!(f.real_time_factor.is_finite() && f.real_time_factor > 1000.0, "{f:?}");
    }

    #[test]
    fn this_machine_codes_opus_quickly_within_the_budget() {
        let started = Instant::now();
        let result = run();
        let took = started.elapsed();
        let Some(Figures::Codec(f)) = &result.figures else { panic!("{result:?}") };
        assert!(f.audio_ms >= 200, "{f:?}");
        // Budget plus the test signal's generation and the last frame.
        assert!(took < BUDGET + Duration::from_millis(250), "{took:?}");
        assert!(f.real_time_factor >= FAIL_BELOW, "{result:?}");
        assert_eq!(f.bitrate_bps, OpusSettings::default().bitrate_bps);
    }
}
