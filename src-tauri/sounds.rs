//! The ringtone and the call cues, for the headless commands and the window alike:
//! calldock-engine's alert policy fed with this process's call events, played on the ringer
//! and speaker devices.

use calldock_devices::{DeviceChoice, Ringtone};
use calldock_engine::EngineEvent;
use calldock_engine::alerts::{AlertAction, AlertOutputs, AlertSounds, Alerts};
use calldock_engine::call::CallEvent;

/// The ringtone built into the program (assets/README.md says how it was made).
pub const RINGTONE: &[u8] = include_bytes!("../assets/ringtone.wav");

/// Cue volume relative to the cue's own level (cues are made soft already).
const CUE_VOLUME: f32 = 1.0;

/// Where alerts play: the ringer (device and volume) and the call's speaker device (cues).
/// `None` for either plays nothing there.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub ringer: Option<(DeviceChoice, f32)>,
    pub speaker: Option<DeviceChoice>,
}

/// Alerts for one process: nothing plays unless a ringer or a speaker device was given.
pub struct Sounds {
    alerts: Alerts,
    ringtone: Ringtone,
    player: Option<AlertSounds>,
    report: fn(String),
}

impl Sounds {
    /// `report` is told (once per failing device) what could not be played.
    pub fn new(outputs: &Outputs, report: fn(String)) -> Result<Sounds, String> {
        let ringtone = Ringtone::from_wav_bytes("assets/ringtone.wav", RINGTONE).map_err(|e| e.to_string())?;
        let mut sounds = Sounds { alerts: Alerts::new(), ringtone, player: None, report };
        sounds.player = sounds.player_for(outputs);
        Ok(sounds)
    }

    fn player_for(&self, outputs: &Outputs) -> Option<AlertSounds> {
        if outputs.ringer.is_none() && outputs.speaker.is_none() {
            return None;
        }
        let (ringer, ringer_volume) =
            outputs.ringer.clone().map_or((None, 0.0), |(device, volume)| (Some(device), volume));
        let outputs = AlertOutputs { ringer, ringer_volume, cues: outputs.speaker.clone(), cue_volume: CUE_VOLUME };
        Some(AlertSounds::start(outputs, self.ringtone.clone(), self.report))
    }

    /// The built-in ringtone, for playing apart from calls (the settings screen's test).
    pub fn ringtone(&self) -> &Ringtone {
        &self.ringtone
    }

    /// Plays on other devices from now on; which calls ring and which are connected is kept.
    /// Returns the old player: dropping it stops its ringtone and waits for its last cue (up
    /// to a second), so drop it where waiting does not matter.
    #[must_use = "drop the old player where it may block"]
    pub fn set_outputs(&mut self, outputs: &Outputs) -> Option<AlertSounds> {
        let next = self.player_for(outputs);
        let ringing = self.alerts.is_ringing();
        let old = std::mem::replace(&mut self.player, next);
        if ringing {
            self.apply(AlertAction::StartRinging);
        }
        old
    }

    pub fn on_event(&mut self, event: &EngineEvent) {
        if let EngineEvent::Call(event) = event {
            self.on_call_event(event);
        }
    }

    pub fn on_call_event(&mut self, event: &CallEvent) {
        for action in self.alerts.on_call_event(event) {
            self.apply(action);
        }
    }

    pub fn on_muted(&mut self, muted: bool) {
        if let Some(action) = self.alerts.on_muted(muted) {
            self.apply(action);
        }
    }

    /// Silences the ringtone of the calls ringing now (they keep ringing on screen); the next
    /// call to ring in rings again.
    pub fn silence(&mut self) {
        self.alerts.silence();
        self.apply(AlertAction::StopRinging);
    }

    /// The calls are gone without their events (signed out, the engine stopped): nothing rings
    /// and no call is connected any more.
    pub fn forget_calls(&mut self) {
        self.alerts = Alerts::new();
        self.apply(AlertAction::StopRinging);
    }

    fn apply(&self, action: AlertAction) {
        if let Some(player) = &self.player {
            player.apply(action);
        }
    }
}
