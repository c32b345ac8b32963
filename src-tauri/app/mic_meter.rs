//! The pre-join screen's microphone level meter: a capture stream read every 100 ms on a thread
//! of its own, each slice's RMS and peak reported as a `mic-level` event. Where a virtual
//! microphone stands in for the device (`CALLDOCK_VIRTUAL_MIC`), the meter shows what calls
//! will send: the WAV file, looped in real time, or silence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calldock_devices::{Capture, DeviceChoice, DeviceError, Direction};
use calldock_engine::media::Microphone;
use serde::Serialize;

/// How often the meter reports: often enough to look live, rarely enough to cost nothing.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The quietest level reported; below this the meter shows nothing anyway.
const FLOOR_DBFS: f64 = -100.0;

/// The `mic-level` payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MicLevel {
    pub device: String,
    pub level_dbfs: f64,
    pub peak_dbfs: f64,
    pub clipping: bool,
}

impl MicLevel {
    /// The level of one slice of samples.
    pub fn of(device: &str, samples: &[f32]) -> Self {
        let clamp = |db: f64| if db.is_finite() { db.clamp(FLOOR_DBFS, 0.0) } else { FLOOR_DBFS };
        Self {
            device: device.to_owned(),
            level_dbfs: clamp(calldock_media::level::rms_dbfs(samples)),
            peak_dbfs: clamp(calldock_media::level::peak_dbfs(samples)),
            clipping: calldock_media::level::is_clipping(samples),
        }
    }
}

/// A running meter. Dropping it stops the thread, which closes the device.
pub struct MicMeter {
    stop: Arc<AtomicBool>,
}

impl MicMeter {
    /// Opens the microphone (blocks for up to a few seconds) and starts reporting.
    pub fn start(choice: &DeviceChoice, report: impl Fn(MicLevel) + Send + 'static) -> Result<MicMeter, DeviceError> {
        let mut capture = Capture::open(choice)?;
        let device = capture.device_id().to_owned();
        Self::run(choice.to_string(), report, move |samples| {
            capture.read(samples);
            match capture.health().failure() {
                Some(reason) => {
                    tracing::warn!(%device, %reason, "mic meter: the microphone failed");
                    None
                }
                None => Some(device.clone()),
            }
        })
    }

    /// The meter of a virtual microphone: a WAV file's level slice by slice, looped (a call
    /// plays it once, but the meter runs as long as the pre-join screen is open), or silence.
    /// A device "virtual" microphone is opened as a device.
    pub fn start_virtual(
        microphone: &Microphone,
        report: impl Fn(MicLevel) + Send + 'static,
    ) -> Result<MicMeter, DeviceError> {
        let (name, samples, rate) = match microphone {
            Microphone::Device(choice) => return Self::start(choice, report),
            Microphone::Silence => ("virtual:silence".to_owned(), Vec::new(), 48_000),
            Microphone::Wav(path) => {
                let (samples, rate) = calldock_audio::wav::read_mono(path).map_err(|e| DeviceError::Open {
                    direction: Direction::Input,
                    id: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                (format!("virtual:{}", path.display()), samples, rate)
            }
        };
        let slice = (rate as usize / 10).max(1);
        let mut at = 0usize;
        Self::run(name.clone(), report, move |out| {
            if !samples.is_empty() {
                for _ in 0..slice {
                    out.push(samples[at]);
                    at = (at + 1) % samples.len();
                }
            }
            Some(name.clone())
        })
    }

    /// Reports every [`INTERVAL`] what `read` put in the buffer, until stopped or `read` says
    /// the source failed (`None`).
    fn run(
        id: String,
        report: impl Fn(MicLevel) + Send + 'static,
        mut read: impl FnMut(&mut Vec<f32>) -> Option<String> + Send + 'static,
    ) -> Result<MicMeter, DeviceError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("calldock mic meter".into())
            .spawn(move || {
                let mut samples = Vec::with_capacity(48_000);
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    samples.clear();
                    let Some(device) = read(&mut samples) else { break };
                    report(MicLevel::of(&device, &samples));
                }
            })
            .map_err(|e| DeviceError::Open {
                direction: Direction::Input,
                id,
                reason: format!("no thread for the meter: {e}"),
            })?;
        Ok(MicMeter { stop })
    }
}

impl Drop for MicMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_clamped_to_the_meter_range() {
        let silent = MicLevel::of("mic", &[]);
        assert_eq!((silent.level_dbfs, silent.peak_dbfs, silent.clipping), (FLOOR_DBFS, FLOOR_DBFS, false));
        let half = MicLevel::of("mic", &[0.5; 480]);
        assert!((half.level_dbfs - -6.02).abs() < 0.1, "{}", half.level_dbfs);
        assert!((half.peak_dbfs - -6.02).abs() < 0.1);
        let clipped = MicLevel::of("mic", &[1.0; 480]);
        assert!(clipped.clipping);
        assert_eq!(clipped.peak_dbfs, 0.0);
    }

    #[test]
    fn a_virtual_wav_microphone_is_metered_at_its_level_and_silence_at_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let mut file = calldock_audio::wav::WavSpeaker::create(&path).unwrap();
        file.write(&vec![0.25; 4_800]).unwrap(); // 0.1 s at 48 kHz, -12 dBFS
        file.finish().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let meter = MicMeter::start_virtual(&Microphone::Wav(path.clone()), move |l| {
            let _ = tx.send(l);
        })
        .unwrap();
        // The file is shorter than the run: the meter loops it, so every report has its level.
        for _ in 0..3 {
            let level = rx.recv_timeout(Duration::from_secs(5)).expect("a report every 100 ms");
            assert!((level.level_dbfs - -12.04).abs() < 0.1, "{level:?}");
            assert_eq!(level.device, format!("virtual:{}", path.display()));
        }
        drop(meter);

        let (tx, rx) = std::sync::mpsc::channel();
        let _meter = MicMeter::start_virtual(&Microphone::Silence, move |l| {
            let _ = tx.send(l);
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().level_dbfs, FLOOR_DBFS);

        let missing = MicMeter::start_virtual(&Microphone::Wav(dir.path().join("gone.wav")), |_| {});
        let error = missing.err().expect("a missing file is an error, not a panic");
        assert_eq!(error.code(), "device_open_failed", "{error}");
    }
}
