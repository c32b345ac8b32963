//! The audio pipeline between devices and RTP (SPEC §5), without the devices and the network:
//!
//! ```text
//! send:    samples at any rate ─▶ Resampler (48 kHz) ─▶ AudioProcessor (AEC, NS, AGC; 10 ms)
//!          ─▶ OpusEncoder (20 ms, FEC, DTX) ─▶ payloads for RTP
//! receive: RTP payloads ─▶ JitterBuffer ─▶ OpusDecoder (PLC, FEC) ─▶ 48 kHz frames ─▶ playout,
//!          and the same frames as the echo canceller's render reference
//! ```
//!
//! Everything here works on buffers the caller owns and allocates nothing per frame after
//! construction, so it can run on a real-time thread. WAV files stand in for devices.

pub mod codec;
pub mod cues;
pub mod pipeline;
pub mod processing;
pub mod resample;
pub mod wav;

/// The pipeline's sample rate: Opus and the audio processing run at 48 kHz.
pub const SAMPLE_RATE: u32 = 48_000;
/// One 10 ms frame at 48 kHz mono: the audio processing's unit.
pub const FRAME_10MS: usize = 480;
/// One 20 ms frame at 48 kHz mono: an Opus packet.
pub const FRAME_20MS: usize = 960;

/// Errors of the audio pipeline. None of them comes from a panic on bad input.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The Opus library refused a setting or a packet.
    #[error("opus: {0}")]
    Opus(String),
    /// The resampler could not be built for this rate.
    #[error("cannot resample from {rate} Hz: {reason}")]
    Resample { rate: u32, reason: String },
    /// A WAV file could not be read or written.
    #[error("{path}: {reason}")]
    Wav { path: String, reason: String },
    /// The audio processing refused a frame.
    #[error("audio processing: {0}")]
    Processing(String),
}
