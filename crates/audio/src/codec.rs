//! Opus at 48 kHz mono, 20 ms frames, with in-band FEC and DTX (SPEC §5).

use crate::{AudioError, FRAME_20MS};

/// Encoder settings. [`Default`] is Calldock's voice setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    pub bitrate_bps: i32,
    /// In-band forward error correction: each packet carries a coarse copy of the previous one.
    pub fec: bool,
    /// The loss the encoder plans FEC for; FEC is only emitted when this is above zero. A call
    /// starts at zero and follows what the other side reports (calldock_media::fec::FecPlan).
    pub expected_loss_percent: i32,
    /// Discontinuous transmission: near-silent frames shrink to a byte or two.
    pub dtx: bool,
    /// 0–10; 9 keeps quality near the top at ~70× realtime here.
    pub complexity: i32,
}

impl Default for OpusSettings {
    fn default() -> Self {
        Self { bitrate_bps: 24_000, fec: true, expected_loss_percent: 0, dtx: true, complexity: 9 }
    }
}

fn opus_error(e: opusic_c::ErrorCode) -> AudioError {
    AudioError::Opus(e.message().to_owned())
}

/// Largest Opus packet Calldock produces or accepts (RFC 6716 allows 1275 bytes per frame).
pub const MAX_PACKET: usize = 1275;

pub struct OpusEncoder {
    inner: opusic_c::Encoder,
}

impl OpusEncoder {
    pub fn new(settings: OpusSettings) -> Result<Self, AudioError> {
        let mut inner = opusic_c::Encoder::new(
            opusic_c::Channels::Mono,
            opusic_c::SampleRate::Hz48000,
            opusic_c::Application::Voip,
        )
        .map_err(opus_error)?;
        inner.set_bitrate(opusic_c::Bitrate::Value(settings.bitrate_bps.max(0) as u32)).map_err(opus_error)?;
        // Mode 1 is what OPUS_SET_INBAND_FEC(1) has always meant (WebRTC sets it too).
        inner
            .set_inband_fec(if settings.fec { opusic_c::InbandFec::Mode1 } else { opusic_c::InbandFec::Off })
            .map_err(opus_error)?;
        inner.set_packet_loss(settings.expected_loss_percent.clamp(0, 100) as u8).map_err(opus_error)?;
        inner.set_dtx(settings.dtx).map_err(opus_error)?;
        inner.set_complexity(settings.complexity.clamp(0, 10) as u8).map_err(opus_error)?;
        Ok(Self { inner })
    }

    /// Encodes one 20 ms frame into `out` (at least [`MAX_PACKET`] bytes); returns its length.
    pub fn encode(&mut self, frame: &[f32; FRAME_20MS], out: &mut [u8]) -> Result<usize, AudioError> {
        self.inner.encode_float_to_slice(frame, out).map_err(opus_error)
    }

    /// Tells the encoder the loss it sees, so FEC follows the network.
    pub fn set_expected_loss(&mut self, percent: i32) -> Result<(), AudioError> {
        self.inner.set_packet_loss(percent.clamp(0, 100) as u8).map_err(opus_error)
    }
}

pub struct OpusDecoder {
    inner: opusic_c::Decoder,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, AudioError> {
        Ok(Self {
            inner: opusic_c::Decoder::new(opusic_c::Channels::Mono, opusic_c::SampleRate::Hz48000)
                .map_err(opus_error)?,
        })
    }

    /// Decodes one packet into `out`. A malformed packet from the network is an error, and the
    /// caller conceals the frame instead.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32; FRAME_20MS]) -> Result<usize, AudioError> {
        if packet.is_empty() || packet.len() > MAX_PACKET {
            return Err(AudioError::Opus(format!("packet of {} bytes is not an Opus packet", packet.len())));
        }
        self.inner.decode_float_to_slice(packet, out, false).map_err(opus_error)
    }

    /// Produces a frame for a packet that never came: from the next packet's FEC when it is
    /// here, else by packet-loss concealment (an empty input is a lost packet to libopus).
    pub fn conceal(&mut self, next_packet: Option<&[u8]>, out: &mut [f32; FRAME_20MS]) -> Result<usize, AudioError> {
        match next_packet {
            Some(next) if !next.is_empty() && next.len() <= MAX_PACKET => {
                self.inner.decode_float_to_slice(next, out, true).map_err(opus_error)
            }
            _ => self.inner.decode_float_to_slice(&[], out, false).map_err(opus_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SAMPLE_RATE;
    use crate::pipeline::test_signal;

    #[test]
    fn speech_survives_a_round_trip() {
        let input = test_signal::speech_like(2.0);
        let mut enc = OpusEncoder::new(OpusSettings::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let mut output = Vec::new();
        for chunk in input.chunks_exact(FRAME_20MS) {
            let n = enc.encode(chunk.try_into().unwrap(), &mut packet).unwrap();
            let mut frame = [0f32; FRAME_20MS];
            dec.decode(&packet[..n], &mut frame).unwrap();
            output.extend_from_slice(&frame);
        }
        let (delay, ncc) = calldock_media::analysis::delay_ms(&input, &output, SAMPLE_RATE, 100).unwrap();
        assert!(ncc > 0.95, "ncc {ncc}");
        assert!(delay < 15.0, "codec delay {delay} ms");
    }

    /// Encodes `input` told of `expected_loss_percent`, loses every tenth packet, and returns how
    /// closely the frames rebuilt from the next packet match what the lost packets carried
    /// (signal-to-error ratio in dB over the lost frames that held speech).
    fn rebuilt_frames_match(input: &[f32], expected_loss_percent: i32) -> f64 {
        let settings = OpusSettings { expected_loss_percent, ..OpusSettings::default() };
        let mut enc = OpusEncoder::new(settings).unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let packets: Vec<Vec<u8>> = input
            .chunks_exact(FRAME_20MS)
            .map(|chunk| {
                let n = enc.encode(chunk.try_into().unwrap(), &mut packet).unwrap();
                packet[..n].to_vec()
            })
            .collect();
        let (mut clean, mut lossy) = (OpusDecoder::new().unwrap(), OpusDecoder::new().unwrap());
        let (mut sent, mut rebuilt) = ([0f32; FRAME_20MS], [0f32; FRAME_20MS]);
        let (mut signal, mut error, mut frames) = (0f64, 0f64, 0usize);
        for (i, p) in packets.iter().enumerate() {
            clean.decode(p, &mut sent).unwrap();
            match packets.get(i + 1) {
                Some(next) if i % 10 == 5 => {
                    lossy.conceal(Some(next), &mut rebuilt).unwrap();
                    if calldock_media::level::rms_dbfs(&sent) > -30.0 {
                        frames += 1;
                        signal += sent.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
                        error += sent.iter().zip(&rebuilt).map(|(&x, &y)| f64::from(x - y).powi(2)).sum::<f64>();
                    }
                }
                _ => lossy.decode(p, &mut rebuilt).map(|_| ()).unwrap(),
            }
        }
        assert!(frames >= 10, "enough lost frames held speech: {frames}");
        10.0 * (signal / error.max(f64::MIN_POSITIVE)).log10()
    }

    #[test]
    fn fec_is_sent_only_when_the_encoder_is_told_of_loss() {
        let input = test_signal::speech_like(8.0);
        let told = rebuilt_frames_match(&input, 10);
        let untold = rebuilt_frames_match(&input, 0);
        println!("lost frames rebuilt: {told:.1} dB signal to error told of 10 % loss, {untold:.1} dB told of none");
        // Told of loss, each packet carries a coarse copy of the previous frame; told of none,
        // the decoder can only extrapolate (packet loss concealment).
        assert!(told >= 9.0, "FEC rebuilds lost frames: {told:.1} dB");
        assert!(untold <= told - 3.0, "without loss no FEC is sent, only concealment: {untold:.1} vs {told:.1} dB");
    }

    #[test]
    fn silence_is_sent_as_tiny_dtx_packets() {
        let mut enc = OpusEncoder::new(OpusSettings::default()).unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let silence = [0f32; FRAME_20MS];
        let sizes: Vec<usize> = (0..50).map(|_| enc.encode(&silence, &mut packet).unwrap()).collect();
        crate::pipeline::tests::assert_dtx(&sizes[20..]);
    }

    #[test]
    fn garbage_packets_are_errors_not_panics() {
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = [0f32; FRAME_20MS];
        assert!(dec.decode(&[], &mut frame).is_err());
        assert!(dec.decode(&[0u8; 4000], &mut frame).is_err());
        // Random bytes either decode to something or fail; they never panic.
        let mut x = 0x1234_5678u32;
        for _ in 0..200 {
            let len = (x % 300) as usize + 1;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = dec.decode(&bytes, &mut frame);
        }
        assert_eq!(dec.conceal(None, &mut frame).unwrap(), FRAME_20MS);
    }
}
