//! WAV files as devices: a file as the microphone, a file as the speaker (SPEC §5).

use std::path::Path;

use crate::{AudioError, SAMPLE_RATE};

/// Longest file accepted as a microphone: a whole file is read into memory.
pub const MAX_SECONDS: u32 = 30 * 60;

fn wav_error(path: &Path, reason: impl std::fmt::Display) -> AudioError {
    AudioError::Wav { path: path.display().to_string(), reason: reason.to_string() }
}

/// Reads a WAV file as mono f32 samples (channels averaged), with its sample rate.
pub fn read_mono(path: &Path) -> Result<(Vec<f32>, u32), AudioError> {
    let reader = hound::WavReader::open(path).map_err(|e| match e {
        hound::Error::IoError(io)
            if matches!(io.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) =>
        {
            wav_error(path, format!("cannot open: {io}"))
        }
        other => {
            wav_error(path, format!("not a WAV file this client can read ({other}); use 16-bit PCM or 32-bit float"))
        }
    })?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(wav_error(path, "the header says zero channels or a zero sample rate"));
    }
    if reader.duration() / spec.sample_rate > MAX_SECONDS {
        return Err(wav_error(path, format!("longer than {} minutes", MAX_SECONDS / 60)));
    }
    let channels = usize::from(spec.channels);
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| wav_error(path, format!("damaged audio data: {e}")))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| wav_error(path, format!("damaged audio data: {e}")))?
        }
    };
    let mono = interleaved.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32).collect();
    Ok((mono, spec.sample_rate))
}

/// A WAV file being written as the speaker: 48 kHz mono 16-bit.
pub struct WavSpeaker {
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    path: std::path::PathBuf,
}

impl WavSpeaker {
    pub fn create(path: &Path) -> Result<Self, AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::create(path, spec).map_err(|e| wav_error(path, format!("cannot create: {e}")))?;
        Ok(Self { writer, path: path.to_owned() })
    }

    pub fn write(&mut self, samples: &[f32]) -> Result<(), AudioError> {
        for &s in samples {
            let v = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
            self.writer.write_sample(v).map_err(|e| wav_error(&self.path, e))?;
        }
        Ok(())
    }

    /// Completes the header; a file not finalized still plays in most tools but claims length 0.
    pub fn finish(self) -> Result<(), AudioError> {
        let path = self.path;
        self.writer.finalize().map_err(|e| wav_error(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_audio_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let samples: Vec<f32> = (0..4800).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
        let mut speaker = WavSpeaker::create(&path).unwrap();
        speaker.write(&samples).unwrap();
        speaker.finish().unwrap();
        let (back, rate) = read_mono(&path).unwrap();
        assert_eq!(rate, SAMPLE_RATE);
        assert_eq!(back.len(), samples.len());
        assert!(back.iter().zip(&samples).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..100 {
            w.write_sample(16_384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let (mono, rate) = read_mono(&path).unwrap();
        assert_eq!((mono.len(), rate), (100, 44_100));
        assert!((mono[0] - 0.25).abs() < 1e-3);
    }

    #[test]
    fn missing_and_broken_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.wav");
        let err = read_mono(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.wav") && err.contains("cannot open"), "{err}");
        let broken = dir.path().join("broken.wav");
        std::fs::write(&broken, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
        let err = read_mono(&broken).unwrap_err().to_string();
        assert!(err.contains("broken.wav") && err.contains("not a WAV file"), "{err}");
    }
}
