//! The ringtone for incoming calls (SPEC §7) and the settings screen's ringer test.
//!
//! Opening and closing an output device blocks for up to seconds, so one thread of its own
//! owns the ringer and takes start/stop requests in order: a stop can never overtake the start
//! it answers and leave a ringtone playing with no call.
//!
//! TODO(merge): `calldock_engine::alerts` (ringtone, call-waiting beep, join/leave/mute cues) is
//! being written in main. Once merged, replace this module: feed `Alerts::on_call_event` from
//! `Shell::on_call_event` and `Alerts::on_muted` from `Shell::set_muted`, and play the actions
//! with `AlertSounds::apply` (ringer device and volume from the settings); `silence_ringer` sends
//! it a `StopRinging`. `test_ringer` may keep using `Ringer` directly.

use std::sync::mpsc;
use std::time::Duration;

use calldock_devices::{DeviceChoice, DeviceError, Ringer, Ringtone};

/// The longest a ringer test plays.
pub const TEST_LENGTH: Duration = Duration::from_secs(3);

enum Request {
    Ring { device: DeviceChoice, volume: f32 },
    Stop,
}

/// The ringer of incoming calls: at most one ringtone at a time.
pub struct Ringing {
    tone: Option<Ringtone>,
    requests: mpsc::Sender<Request>,
}

impl Ringing {
    pub fn new() -> Self {
        let tone = Ringtone::from_wav_bytes("assets/ringtone.wav", crate::sounds::RINGTONE)
            .map_err(|e| tracing::error!(error = %e, "the built-in ringtone is unusable; calls ring silently"))
            .ok();
        let (requests, inbox) = mpsc::channel();
        let worker_tone = tone.clone();
        let spawned = std::thread::Builder::new().name("calldock ringer".into()).spawn(move || {
            let mut ringer: Option<Ringer> = None;
            // Ends when the Ringing is dropped; dropping the ringer stops the sound.
            for request in inbox {
                match request {
                    Request::Ring { device, volume } => {
                        if let (None, Some(tone)) = (&ringer, &worker_tone) {
                            match Ringer::start(&device, tone, volume) {
                                Ok(r) => ringer = Some(r),
                                Err(e) => tracing::warn!(error = %e, code = e.code(), "cannot ring"),
                            }
                        }
                    }
                    Request::Stop => {
                        if let Some(r) = ringer.take() {
                            r.stop();
                        }
                    }
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no thread for the ringer; calls ring silently");
        }
        Self { tone, requests }
    }

    /// Starts ringing unless it already rings.
    pub fn ring(&self, device: DeviceChoice, volume: f32) {
        let _ = self.requests.send(Request::Ring { device, volume });
    }

    /// Stops ringing (idempotent); the calls keep ringing in the UI.
    pub fn stop(&self) {
        let _ = self.requests.send(Request::Stop);
    }

    /// Plays the ringtone once on `device` (at most [`TEST_LENGTH`]), apart from the call
    /// ringer, and reports why it cannot. Blocks for as long as it plays.
    pub fn test(&self, device: &DeviceChoice, volume: f32) -> Result<(), DeviceError> {
        let Some(tone) = &self.tone else { return Ok(()) };
        let ringer = Ringer::start(device, tone, volume)?;
        std::thread::sleep(tone.duration().min(TEST_LENGTH));
        ringer.stop();
        Ok(())
    }
}
