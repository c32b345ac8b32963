//! The ringtone (SPEC §7): a WAV looped on the ringer device through rodio, with its own volume,
//! until stopped; and sounds played once on an output (the doctor's speaker probe, short cues).
//!
//! The output stream is opened, played and dropped on a thread of its own (like [`crate::stream`]),
//! so a [`Ringer`] is `Send` on every platform. rodio owns the device callback; the WAV is decoded
//! once, up front, so the loop never touches the file again. The crate's no-lock rule for device
//! callbacks is rodio's business here: its mixer takes short locks of its own (volume, stop)
//! every few milliseconds. The ringer is never on a call's audio path.

use std::io::Cursor;
use std::num::NonZero;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rodio::Source;

use crate::{DeviceChoice, DeviceError, Direction, find};

/// How long opening the ringer device may take before it counts as broken.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Ringer::stop`] waits for the stream to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// A ringtone that cannot be used (missing, unreadable, not a WAV, empty).
#[derive(Debug, thiserror::Error)]
#[error("the ringtone {path} cannot be played: {reason}")]
pub struct RingtoneError {
    pub path: String,
    pub reason: String,
}

impl RingtoneError {
    /// Stable code for logs, JSON output and events.
    pub fn code(&self) -> &'static str {
        "ringtone_unreadable"
    }
}

/// A decoded ringtone: cheap to clone (the samples are shared).
#[derive(Debug, Clone)]
pub struct Ringtone {
    samples: rodio::buffer::SamplesBuffer,
}

impl Ringtone {
    /// Reads and decodes a WAV file.
    pub fn load(path: &Path) -> Result<Ringtone, RingtoneError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| RingtoneError { path: name.clone(), reason: e.to_string() })?;
        Ringtone::decode(&name, bytes)
    }

    /// Decodes a WAV held in memory (a ringtone built into the program); `name` is for errors.
    pub fn from_wav_bytes(name: &str, bytes: &[u8]) -> Result<Ringtone, RingtoneError> {
        Ringtone::decode(name, bytes.to_vec())
    }

    fn decode(name: &str, bytes: Vec<u8>) -> Result<Ringtone, RingtoneError> {
        let error = |reason: String| RingtoneError { path: name.to_string(), reason };
        let decoder = rodio::Decoder::new_wav(Cursor::new(bytes)).map_err(|e| error(format!("not a WAV file: {e}")))?;
        let channels = decoder.channels();
        let rate = decoder.sample_rate();
        let samples: Vec<rodio::Sample> = decoder.collect();
        if samples.is_empty() {
            return Err(error("it holds no audio".into()));
        }
        Ok(Ringtone { samples: rodio::buffer::SamplesBuffer::new(channels, rate, samples) })
    }

    /// Mono samples at `rate` Hz made by the program (a probe signal, a cue); `name` is for
    /// errors. Empty or rate-less audio is an error, as for a file.
    pub fn from_samples(name: &str, rate: u32, samples: Vec<f32>) -> Result<Ringtone, RingtoneError> {
        let error = |reason: &str| RingtoneError { path: name.to_string(), reason: reason.to_string() };
        let rate = NonZero::new(rate).ok_or_else(|| error("its sample rate is zero"))?;
        if samples.is_empty() {
            return Err(error("it holds no audio"));
        }
        Ok(Ringtone { samples: rodio::buffer::SamplesBuffer::new(NonZero::<u16>::MIN, rate, samples) })
    }

    /// Length of one pass.
    pub fn duration(&self) -> Duration {
        self.samples.total_duration().unwrap_or_default()
    }

    pub fn sample_rate(&self) -> NonZero<u32> {
        self.samples.sample_rate()
    }
}

/// A ringtone ringing on an output device. Dropping it (or [`Ringer::stop`]) stops it at once.
pub struct Ringer {
    player: rodio::Player,
    device_id: String,
    stop: Option<mpsc::Sender<()>>,
    stopped: Option<mpsc::Receiver<()>>,
}

impl Ringer {
    /// Opens the device and starts looping `tone` at `volume` (0.0–1.0, clamped). Blocks until
    /// the device is open (at most a few seconds).
    pub fn start(choice: &DeviceChoice, tone: &Ringtone, volume: f32) -> Result<Ringer, DeviceError> {
        Ringer::open(choice, volume, |player| player.append(tone.samples.clone().repeat_infinite()))
    }

    /// Opens the device and plays `sound` once; [`Ringer::finished`] tells when it has been
    /// handed to the device. Blocks until the device is open.
    pub fn play_once(choice: &DeviceChoice, sound: &Ringtone, volume: f32) -> Result<Ringer, DeviceError> {
        Ringer::open(choice, volume, |player| player.append(sound.samples.clone()))
    }

    fn open(
        choice: &DeviceChoice,
        volume: f32,
        queue_sound: impl FnOnce(&rodio::Player),
    ) -> Result<Ringer, DeviceError> {
        let (device, device_id) = find(Direction::Output, choice)?;
        let open_error =
            |reason: String| DeviceError::Open { direction: Direction::Output, id: device_id.clone(), reason };
        let (player, queue) = rodio::Player::new();
        player.set_volume(clamp_volume(volume));
        queue_sound(&player);
        let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let (stopped_tx, stopped) = mpsc::channel::<()>();
        let thread_id = device_id.clone();
        std::thread::Builder::new()
            .name(format!("calldock ringer {device_id}"))
            .spawn(move || {
                let sink =
                    rodio::DeviceSinkBuilder::from_device(device).map_err(|e| error_chain(&e)).and_then(|builder| {
                        builder
                            .with_error_callback(|e: cpal::Error| tracing::warn!(error = %e, "ringer stream"))
                            .open_sink_or_fallback()
                            .map_err(|e| error_chain(&e))
                    });
                let mut sink = match sink {
                    Ok(sink) => sink,
                    Err(reason) => {
                        let _ = started_tx.send(Err(reason));
                        return;
                    }
                };
                sink.log_on_drop(false);
                sink.mixer().add(queue);
                tracing::debug!(device = %thread_id, config = ?sink.config(), "ringer open");
                let _ = started_tx.send(Ok(()));
                // Until stopped or the handle is dropped.
                let _ = stop_rx.recv();
                drop(sink);
                let _ = stopped_tx.send(());
            })
            .map_err(|e| open_error(format!("no thread for the stream: {e}")))?;
        match started_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(open_error(reason)),
            Err(_) => return Err(open_error(format!("the device did not open within {} s", OPEN_TIMEOUT.as_secs()))),
        }
        tracing::info!(device = %device_id, volume, "ringing");
        Ok(Ringer { player, device_id, stop: Some(stop), stopped: Some(stopped) })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// True once a sound played with [`Ringer::play_once`] has been handed to the device in full
    /// (the device may still be playing its last buffer). A loop never finishes.
    pub fn finished(&self) -> bool {
        self.player.empty()
    }

    /// Sets the ringer's own volume (0.0–1.0, clamped) while it rings.
    pub fn set_volume(&self, volume: f32) {
        self.player.set_volume(clamp_volume(volume));
    }

    pub fn volume(&self) -> f32 {
        self.player.volume()
    }

    /// Stops ringing: the sound stops and the device stream is closed before this returns
    /// (unless the audio backend takes over a second to close it).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.player.stop();
        // Closing the channel wakes the thread, which drops the stream.
        self.stop.take();
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.recv_timeout(STOP_TIMEOUT);
        }
    }
}

impl Drop for Ringer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn clamp_volume(volume: f32) -> f32 {
    if volume.is_nan() { 0.0 } else { volume.clamp(0.0, 1.0) }
}

/// An error with its causes (rodio's messages are generic; cpal's cause says what happened).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: &[i16]) -> Vec<u8> {
        let data_len = (samples.len() * 2) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&1u16.to_le_bytes()); // mono
        out.extend_from_slice(&48_000u32.to_le_bytes());
        out.extend_from_slice(&96_000u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_missing_ringtone_is_an_error_with_a_code() {
        let e = Ringtone::load(Path::new("/nonexistent/ringtone.wav")).expect_err("no such file");
        assert_eq!(e.code(), "ringtone_unreadable");
        assert!(e.to_string().contains("/nonexistent/ringtone.wav"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_wav_is_an_error() {
        let e = Ringtone::from_wav_bytes("junk", b"this is not audio at all").expect_err("not a WAV");
        assert_eq!(e.code(), "ringtone_unreadable");
        let e = Ringtone::from_wav_bytes("empty", &wav(&[])).expect_err("no samples");
        assert!(e.to_string().contains("no audio"), "{e}");
    }

    #[test]
    fn the_shipped_ringtone_decodes() {
        // Read when run (cargo sets it), not when built: with one target dir shared by two clones,
        // cargo may reuse this binary for the other clone, and the built-in path is the first one's.
        let path = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
            .join("../../assets/ringtone.wav");
        let tone = Ringtone::load(&path).expect("assets/ringtone.wav decodes");
        assert_eq!(tone.sample_rate().get(), 48_000);
        assert_eq!(tone.duration(), Duration::from_secs(2));
        let short = Ringtone::from_wav_bytes("short", &wav(&[0, 1000, -1000, 0])).expect("a tiny WAV decodes");
        assert_eq!(short.duration(), Duration::from_nanos(83_333));
    }

    #[test]
    fn an_unknown_device_is_an_error_with_a_code() {
        let tone = Ringtone::from_wav_bytes("short", &wav(&[0, 1000, -1000, 0])).expect("a tiny WAV decodes");
        for id in ["nohost:thing", "alsa:calldock-no-such-device"] {
            let Err(e) = Ringer::start(&DeviceChoice::Id(id.into()), &tone, 0.5) else {
                panic!("{id} should not ring")
            };
            // alsa may be unreachable on a machine with no sound at all.
            assert!(matches!(e.code(), "device_not_found" | "device_open_failed" | "device_enumeration_failed"), "{e}");
            if e.code() == "device_not_found" {
                assert!(e.to_string().contains(id) && e.to_string().contains("calldock devices"), "{e}");
            }
        }
    }

    #[test]
    fn volumes_are_clamped() {
        assert_eq!(clamp_volume(1.5), 1.0);
        assert_eq!(clamp_volume(-0.1), 0.0);
        assert_eq!(clamp_volume(f32::NAN), 0.0);
        assert_eq!(clamp_volume(0.3), 0.3);
    }
}
