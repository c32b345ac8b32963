//! The ringtone and the call cues for the headless commands: calldock-engine's alert policy
//! fed with this process's call events, played on the ringer and speaker devices.

use calldock_devices::{DeviceChoice, Ringtone};
use calldock_engine::EngineEvent;
use calldock_engine::alerts::{AlertOutputs, AlertSounds, Alerts};

/// The ringtone built into the program (assets/README.md says how it was made).
pub const RINGTONE: &[u8] = include_bytes!("../assets/ringtone.wav");

/// Cue volume relative to the cue's own level (cues are made soft already).
const CUE_VOLUME: f32 = 1.0;

/// Alerts for one process: nothing plays unless a ringer or a speaker device was given.
pub struct Sounds {
    alerts: Alerts,
    player: Option<AlertSounds>,
}

impl Sounds {
    /// `ringer`: where incoming calls ring (`None`: they ring silently). `speaker`: the call's
    /// output when it is a device (cues play there).
    pub fn new(ringer: Option<(DeviceChoice, f32)>, speaker: Option<DeviceChoice>) -> Result<Sounds, String> {
        let player = if ringer.is_none() && speaker.is_none() {
            None
        } else {
            let ringtone = Ringtone::from_wav_bytes("assets/ringtone.wav", RINGTONE).map_err(|e| e.to_string())?;
            let (ringer, ringer_volume) = ringer.map_or((None, 0.0), |(device, volume)| (Some(device), volume));
            let outputs = AlertOutputs { ringer, ringer_volume, cues: speaker, cue_volume: CUE_VOLUME };
            Some(AlertSounds::start(outputs, ringtone, |error| eprintln!("calldock: {error}")))
        };
        Ok(Sounds { alerts: Alerts::new(), player })
    }

    pub fn on_event(&mut self, event: &EngineEvent) {
        if let EngineEvent::Call(event) = event {
            for action in self.alerts.on_call_event(event) {
                if let Some(player) = &self.player {
                    player.apply(action);
                }
            }
        }
    }

    pub fn on_muted(&mut self, muted: bool) {
        if let (Some(action), Some(player)) = (self.alerts.on_muted(muted), &self.player) {
            player.apply(action);
        }
    }
}
