//! The send and receive halves of a call's audio, joined to devices and RTP by their callers.

use calldock_media::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use calldock_media::level::rms_dbfs;

use crate::codec::{MAX_PACKET, OpusDecoder, OpusEncoder, OpusSettings};
use crate::processing::{AudioProcessor, ProcessingSwitches};
use crate::resample::Resampler;
use crate::{AudioError, FRAME_10MS, FRAME_20MS};

/// Capture → 48 kHz → processing → Opus.
pub struct SendPipeline {
    resampler: Resampler,
    processor: AudioProcessor,
    encoder: OpusEncoder,
    frame: [f32; FRAME_20MS],
    filled: usize,
    packet: [u8; MAX_PACKET],
    muted: bool,
    level_dbfs: f64,
}

impl SendPipeline {
    pub fn new(input_rate: u32, switches: ProcessingSwitches, opus: OpusSettings) -> Result<Self, AudioError> {
        Ok(Self {
            resampler: Resampler::new(input_rate)?,
            processor: AudioProcessor::new(switches),
            encoder: OpusEncoder::new(opus)?,
            frame: [0.0; FRAME_20MS],
            filled: 0,
            packet: [0; MAX_PACKET],
            muted: false,
            level_dbfs: calldock_media::level::FLOOR_DBFS,
        })
    }

    /// Muted: the track keeps running and sends silence, which DTX shrinks to a byte or two.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// A new microphone may run at another rate: only the resampler changes, so the echo
    /// canceller and the encoder keep their state.
    pub fn set_input_rate(&mut self, input_rate: u32) -> Result<(), AudioError> {
        if self.resampler.input_rate() != input_rate {
            self.resampler = Resampler::new(input_rate)?;
        }
        Ok(())
    }

    /// The loss the encoder's in-band FEC plans for (calldock_media::fec::FecPlan decides it).
    pub fn set_fec_loss(&mut self, percent: i32) -> Result<(), AudioError> {
        self.encoder.set_expected_loss(percent)
    }

    pub fn set_switches(&mut self, switches: ProcessingSwitches) {
        self.processor.set_switches(switches);
    }

    /// The level of the last processed 10 ms of capture (before muting), for the level meter.
    pub fn level_dbfs(&self) -> f64 {
        self.level_dbfs
    }

    /// A 10 ms frame that was played out: the echo canceller's reference.
    pub fn render_reference(&mut self, frame: &[f32; FRAME_10MS]) -> Result<(), AudioError> {
        self.processor.render(frame)
    }

    /// Captured samples at the input rate; `packet` is called with each encoded 20 ms packet.
    pub fn push_capture(
        &mut self,
        samples: &[f32],
        echo_delay_ms: i32,
        mut packet: impl FnMut(&[u8]),
    ) -> Result<(), AudioError> {
        let Self { resampler, processor, encoder, frame, filled, packet: buffer, muted, level_dbfs } = self;
        let mut failure = None;
        resampler.push(samples, |ten| {
            if failure.is_some() {
                return;
            }
            let mut ten = *ten;
            if let Err(e) = processor.capture(&mut ten, echo_delay_ms) {
                failure = Some(e);
                return;
            }
            *level_dbfs = rms_dbfs(&ten);
            if *muted {
                ten = [0.0; FRAME_10MS];
            }
            frame[*filled..*filled + FRAME_10MS].copy_from_slice(&ten);
            *filled += FRAME_10MS;
            if *filled == FRAME_20MS {
                *filled = 0;
                match encoder.encode(frame, buffer) {
                    Ok(n) => packet(&buffer[..n]),
                    Err(e) => failure = Some(e),
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }
}

/// Receive statistics: the jitter buffer's counters plus the decoder's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceiveStats {
    pub jitter: JitterStats,
    /// Samples produced by concealment (PLC or FEC), as WebRTC's `concealedSamples`.
    pub concealed_samples: u64,
    /// Frames recovered from the next packet's FEC.
    pub fec_recovered: u64,
    /// Packets the decoder refused (corrupt); concealed instead.
    pub undecodable: u64,
    pub level_dbfs: f64,
}

/// RTP payloads → jitter buffer → Opus decode with PLC/FEC → 20 ms frames at 48 kHz.
pub struct ReceivePipeline {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    frame: [f32; FRAME_20MS],
    stats: ReceiveStats,
}

impl ReceivePipeline {
    pub fn new(jitter: JitterConfig) -> Result<Self, AudioError> {
        Ok(Self {
            jitter: JitterBuffer::new(jitter),
            decoder: OpusDecoder::new()?,
            frame: [0.0; FRAME_20MS],
            stats: ReceiveStats::default(),
        })
    }

    pub fn push_rtp(&mut self, now_ms: u64, sequence: u16, timestamp: u32, payload: &[u8]) {
        self.jitter.push(now_ms, sequence, timestamp, payload.to_vec());
    }

    /// The next 20 ms to play (silence while buffering).
    pub fn next_frame(&mut self) -> &[f32; FRAME_20MS] {
        match self.jitter.pop() {
            Playout::Packet(payload) => {
                if self.decoder.decode(&payload, &mut self.frame).is_err() {
                    self.stats.undecodable += 1;
                    self.conceal(None);
                }
            }
            Playout::Conceal { fec } => self.conceal(fec.as_deref()),
            Playout::Silence => self.frame = [0.0; FRAME_20MS],
        }
        self.stats.level_dbfs = rms_dbfs(&self.frame);
        &self.frame
    }

    fn conceal(&mut self, fec: Option<&[u8]>) {
        match self.decoder.conceal(fec, &mut self.frame) {
            Ok(n) => {
                self.stats.concealed_samples += n as u64;
                if fec.is_some() {
                    self.stats.fec_recovered += 1;
                }
            }
            Err(_) => self.frame = [0.0; FRAME_20MS],
        }
    }

    pub fn stats(&self) -> ReceiveStats {
        ReceiveStats { jitter: self.jitter.stats(), ..self.stats }
    }
}

/// Deterministic test audio, for this crate's tests and the crates that drive the pipeline.
pub mod test_signal {
    use crate::SAMPLE_RATE;

    /// Speech-like audio at 48 kHz: voiced bursts of syllable length with pitch movement and a
    /// rich harmonic series, unvoiced noise between them, and pauses, so envelopes have
    /// structure to correlate and adaptive filters have broadband excitation.
    pub fn speech_like(seconds: f32) -> Vec<f32> {
        let n = (seconds * SAMPLE_RATE as f32) as usize;
        let mut phase = 0.0f32;
        let mut noise_state = 0x2545_f491u32;
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                let syllable = ((t * 4.3).sin() + 0.6 * (t * 1.7).sin()).max(0.0);
                let fricative = ((t * 4.3 + 1.9).sin() - 0.7).max(0.0);
                let pitch = 140.0 + 30.0 * (t * 2.1).sin();
                phase =
                    (phase + 2.0 * std::f32::consts::PI * pitch / SAMPLE_RATE as f32) % (2.0 * std::f32::consts::PI);
                let voiced: f32 = (1..=12).map(|h| (h as f32 * phase).sin() / h as f32).sum();
                noise_state ^= noise_state << 13;
                noise_state ^= noise_state >> 17;
                noise_state ^= noise_state << 5;
                let noise = (noise_state as f32 / u32::MAX as f32) * 2.0 - 1.0;
                0.25 * syllable * voiced + 0.3 * fricative * noise
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::SAMPLE_RATE;

    /// Runs `input` through send (told of `expected_loss_percent`) → (network with `drop`) →
    /// receive and returns what plays.
    fn call(input: &[f32], expected_loss_percent: i32, drop: impl Fn(u16) -> bool) -> (Vec<f32>, ReceiveStats) {
        let mut send = SendPipeline::new(SAMPLE_RATE, ProcessingSwitches::OFF, OpusSettings::default()).unwrap();
        send.set_fec_loss(expected_loss_percent).unwrap();
        let mut receive = ReceivePipeline::new(JitterConfig { min_delay_ms: 40, ..JitterConfig::default() }).unwrap();
        let mut packets = Vec::new();
        send.push_capture(input, 0, |p| packets.push(p.to_vec())).unwrap();
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let seq = i as u16;
            let now = i as u64 * 20;
            if !drop(seq) {
                receive.push_rtp(now, seq, (i * FRAME_20MS) as u32, p);
            }
            out.extend_from_slice(receive.next_frame());
        }
        for _ in 0..10 {
            out.extend_from_slice(receive.next_frame());
        }
        (out, receive.stats())
    }

    #[test]
    fn speech_arrives_through_the_whole_chain() {
        let input = test_signal::speech_like(4.0);
        let (out, stats) = call(&input, 0, |_| false);
        let (delay, ncc) = calldock_media::analysis::delay_ms(&input, &out, SAMPLE_RATE, 300).unwrap();
        assert!(ncc >= 0.9, "ncc {ncc}");
        assert!(delay <= 80.0, "pipeline delay {delay} ms");
        assert_eq!(stats.jitter.lost, 0);
    }

    #[test]
    fn five_percent_loss_is_concealed_and_speech_still_arrives() {
        let input = test_signal::speech_like(6.0);
        // Deterministic 5 %: every 20th packet, offset so it hits speech and pauses alike. The
        // sender knows of it, as it does from the other side's reports in a call (FecPlan).
        let (out, stats) = call(&input, 5, |seq| seq % 20 == 7);
        let (_, ncc) = calldock_media::analysis::delay_ms(&input, &out, SAMPLE_RATE, 300).unwrap();
        assert!(ncc >= 0.8, "ncc {ncc}");
        assert!(stats.jitter.lost >= 14, "{stats:?}");
        assert!(stats.fec_recovered >= 14, "the next packet's FEC rebuilt the lost frames: {stats:?}");
        assert!(stats.concealed_samples >= 14 * FRAME_20MS as u64);
    }

    #[test]
    fn mute_sends_silence_without_stopping_the_stream() {
        let input = test_signal::speech_like(1.0);
        let mut send = SendPipeline::new(SAMPLE_RATE, ProcessingSwitches::OFF, OpusSettings::default()).unwrap();
        send.set_muted(true);
        let mut sizes = Vec::new();
        let (voiced, rest) = input.split_at(SAMPLE_RATE as usize * 3 / 10);
        send.push_capture(voiced, 0, |p| sizes.push(p.len())).unwrap();
        assert!(send.level_dbfs() > -40.0, "the meter still shows the microphone while muted");
        send.push_capture(rest, 0, |p| sizes.push(p.len())).unwrap();
        assert_eq!(sizes.len(), 50, "one packet per 20 ms even when muted");
        assert_dtx(&sizes[10..]);
    }

    /// Silence under DTX: one-byte packets, with a comfort-noise update every 400 ms (about 25
    /// bytes; a 20 ms frame of speech at 24 kb/s is 60).
    pub(crate) fn assert_dtx(sizes: &[usize]) {
        let tiny = sizes.iter().filter(|&&n| n <= 2).count();
        assert!(tiny * 10 >= sizes.len() * 8, "mostly 1–2 byte packets: {sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 32), "no full frames: {sizes:?}");
    }

    #[test]
    fn corrupt_payloads_are_concealed() {
        let mut receive = ReceivePipeline::new(JitterConfig::default()).unwrap();
        // TOC 0xff: code 3 with 63 frames of 20 ms, more than Opus allows in a packet.
        for i in 0..10u16 {
            receive.push_rtp(u64::from(i) * 20, i, u32::from(i) * 960, &[0xff; 3]);
            assert_eq!(receive.next_frame().len(), FRAME_20MS);
        }
        let stats = receive.stats();
        assert_eq!((stats.jitter.played, stats.undecodable), (10, 10));
        assert_eq!(stats.concealed_samples, 10 * FRAME_20MS as u64);
    }
}
