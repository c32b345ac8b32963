//! The pre-join screen's microphone level meter: a capture stream read every 100 ms on a thread
//! of its own, each slice's RMS and peak reported as a `mic-level` event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calldock_devices::{Capture, DeviceChoice, DeviceError};
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
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let device = capture.device_id().to_owned();
        std::thread::Builder::new()
            .name("calldock mic meter".into())
            .spawn(move || {
                let mut samples = Vec::with_capacity(capture.rate() as usize);
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    samples.clear();
                    capture.read(&mut samples);
                    if let Some(reason) = capture.health().failure() {
                        tracing::warn!(%device, %reason, "mic meter: the microphone failed");
                        break;
                    }
                    report(MicLevel::of(&device, &samples));
                }
            })
            .map_err(|e| DeviceError::Open {
                direction: calldock_devices::Direction::Input,
                id: choice.to_string(),
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
}
