//! What the window plays apart from calls (SPEC §7): the ringtone while a call rings in, the
//! call-waiting beep, the join/leave/mute cues — the same policy and player as the headless
//! commands (`crate::sounds`, on `calldock_engine::alerts`) — and the settings screen's ringer
//! test.
//!
//! The player opens devices on a thread of its own and takes its actions in order, so a stop
//! can never overtake the start it answers and leave a ringtone playing with no call.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use calldock_devices::{DeviceChoice, DeviceError, Ringer};
use calldock_engine::call::CallEvent;

use crate::sounds::{Outputs, Sounds};

/// The longest a ringer test plays.
pub const TEST_LENGTH: Duration = Duration::from_secs(3);

/// The window's alerts.
pub struct Ringing {
    sounds: Option<Mutex<Sounds>>,
}

fn report(problem: String) {
    tracing::warn!("{problem}");
}

impl Ringing {
    pub fn new(outputs: &Outputs) -> Self {
        let sounds = Sounds::new(outputs, report)
            .map_err(|e| tracing::error!(error = %e, "the built-in ringtone is unusable; calls ring silently"))
            .ok()
            .map(Mutex::new);
        Self { sounds }
    }

    fn sounds(&self) -> Option<MutexGuard<'_, Sounds>> {
        self.sounds.as_ref().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The ringer or the speaker setting changed: play there from now on. The old player winds
    /// down (its last cue may take a second) on a thread of its own.
    pub fn set_outputs(&self, outputs: &Outputs) {
        let old = self.sounds().and_then(|mut s| s.set_outputs(outputs));
        if let Some(old) = old {
            let _ = std::thread::Builder::new().name("calldock alerts (old)".into()).spawn(move || drop(old));
        }
    }

    pub fn on_call_event(&self, event: &CallEvent) {
        if let Some(mut sounds) = self.sounds() {
            sounds.on_call_event(event);
        }
    }

    pub fn on_muted(&self, muted: bool) {
        if let Some(mut sounds) = self.sounds() {
            sounds.on_muted(muted);
        }
    }

    /// Stops the ringtone of the calls ringing now (they keep ringing on screen).
    pub fn stop(&self) {
        if let Some(mut sounds) = self.sounds() {
            sounds.silence();
        }
    }

    /// The calls are gone without their events (signed out, the engine stopped).
    pub fn forget_calls(&self) {
        if let Some(mut sounds) = self.sounds() {
            sounds.forget_calls();
        }
    }

    /// Plays the ringtone once on `device` (at most [`TEST_LENGTH`]), apart from the call
    /// ringer, and reports why it cannot. Blocks for as long as it plays.
    pub fn test(&self, device: &DeviceChoice, volume: f32) -> Result<(), DeviceError> {
        let Some(tone) = self.sounds().map(|s| s.ringtone().clone()) else { return Ok(()) };
        let ringer = Ringer::start(device, &tone, volume)?;
        std::thread::sleep(tone.duration().min(TEST_LENGTH));
        ringer.stop();
        Ok(())
    }
}
