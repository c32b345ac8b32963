//! Sound devices through cpal: enumeration with stable ids, and capture and playout streams.
//! Cameras through nokhwa, and the test pattern and Y4M files that stand in for them
//! ([`camera`]). Which process holds a busy device ([`processes_holding`]).
//!
//! Invariants:
//! - Device callbacks (cpal's real-time threads) never allocate, lock or block: samples cross
//!   to the rest of the program through wait-free rings ([`rtrb`]), and counters are atomics.
//! - Streams live on a thread of their own ([`stream`]), so callers hold plain `Send` handles
//!   whatever the platform's stream type allows, and dropping a handle stops its stream.
//! - A device is named by its cpal id (`pulseaudio:vmic.monitor`, `wasapi:{…}`): descriptions
//!   are not unique, ids survive restarts.
//! - A device that fails while streaming is reported (a [`StreamHealth`] failure), never a panic;
//!   what to do about it (fall back to the default device) is the caller's decision.

pub mod camera;
mod holders;
mod pulse_cookie;
mod ringer;
mod stream;
mod watch;

use std::fmt;
use std::str::FromStr;

use cpal::traits::{DeviceTrait, HostTrait};
pub use holders::{DeviceHolder, describe_holders, processes_holding, processes_holding_sound};
pub use ringer::{Ringer, Ringtone, RingtoneError};
pub use stream::{Capture, Playout, StreamHealth};
pub use watch::{DeviceChanges, DeviceEvent, DeviceWatch, Preferences, Reading, changes};

/// Which way audio goes through a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Input,
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        })
    }
}

/// The device a user picked: the system default (followed when it changes, where the platform
/// reports that), or one device by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    Default,
    Id(String),
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Default => f.write_str("default"),
            DeviceChoice::Id(id) => f.write_str(id),
        }
    }
}

impl DeviceChoice {
    /// `default`, or a device id as `calldock devices` prints it (`host:device`, where host is
    /// one of this platform's audio hosts). Anything else is not a device.
    pub fn parse(text: &str) -> Option<DeviceChoice> {
        if text == "default" {
            return Some(DeviceChoice::Default);
        }
        cpal::DeviceId::from_str(text).ok().map(|_| DeviceChoice::Id(text.to_string()))
    }
}

/// One device as enumeration sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioDevice {
    /// Stable id (`host:device`); pass it to `--mic`/`--speaker`.
    pub id: String,
    /// What the system calls it; not unique.
    pub name: String,
    pub direction: Direction,
    /// The system's default for this direction.
    pub is_default: bool,
    /// The audio host (pulseaudio, alsa, wasapi, coreaudio, …).
    pub host: String,
    /// Lowest and highest sample rate offered, Hz.
    pub sample_rates: (u32, u32),
    /// Fewest and most channels offered.
    pub channels: (u16, u16),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no {direction} named {id}: it may be unplugged; `calldock devices` lists the ones present")]
    NotFound { direction: Direction, id: String },
    #[error("no default {direction}: connect one, or pick one by id (`calldock devices` lists them)")]
    NoDefault { direction: Direction },
    #[error("the {direction} {id} cannot be opened: {reason}")]
    Open { direction: Direction, id: String, reason: String },
    #[error("the {direction} {id} stopped working: {reason}")]
    Failed { direction: Direction, id: String, reason: String },
    #[error("sound devices cannot be listed: {0}")]
    Enumerate(String),
}

impl DeviceError {
    /// Stable code for logs, JSON output and events.
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::NotFound { .. } => "device_not_found",
            DeviceError::NoDefault { .. } => "no_default_device",
            DeviceError::Open { .. } => "device_open_failed",
            DeviceError::Failed { .. } => "device_failed",
            DeviceError::Enumerate(_) => "device_enumeration_failed",
        }
    }
}

/// Every device of this platform's default audio host, inputs first.
pub fn list() -> Result<Vec<AudioDevice>, DeviceError> {
    let host = default_host();
    let host_name = host.id().to_string();
    let default_in = host.default_input_device().and_then(|d| d.id().ok());
    let default_out = host.default_output_device().and_then(|d| d.id().ok());
    let devices = host.devices().map_err(|e| DeviceError::Enumerate(e.to_string()))?;
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for device in devices {
        let Ok(id) = device.id() else { continue };
        let name = device.description().map(|d| d.name().to_string()).unwrap_or_else(|_| id.to_string());
        if let Ok(configs) = device.supported_input_configs() {
            let configs: Vec<_> = configs.collect();
            if !configs.is_empty() {
                inputs.push(describe(
                    &id,
                    &name,
                    Direction::Input,
                    default_in.as_ref() == Some(&id),
                    &host_name,
                    &configs,
                ));
            }
        }
        if let Ok(configs) = device.supported_output_configs() {
            let configs: Vec<_> = configs.collect();
            if !configs.is_empty() {
                outputs.push(describe(
                    &id,
                    &name,
                    Direction::Output,
                    default_out.as_ref() == Some(&id),
                    &host_name,
                    &configs,
                ));
            }
        }
    }
    inputs.extend(outputs);
    Ok(inputs)
}

/// The audio host enumeration and streams use here (`pulseaudio`, `alsa`, `wasapi`,
/// `coreaudio`, …). On Linux it is `pulseaudio` exactly when a PulseAudio (or PipeWire-Pulse)
/// server's socket is there, else ALSA: the support bundle reports it.
pub fn default_host_name() -> String {
    default_host().id().to_string()
}

fn describe(
    id: &cpal::DeviceId,
    name: &str,
    direction: Direction,
    is_default: bool,
    host: &str,
    configs: &[cpal::SupportedStreamConfigRange],
) -> AudioDevice {
    let low = configs.iter().map(|c| c.min_sample_rate()).min().unwrap_or(0);
    let high = configs.iter().map(|c| c.max_sample_rate()).max().unwrap_or(0);
    let fewest = configs.iter().map(|c| c.channels()).min().unwrap_or(0);
    let most = configs.iter().map(|c| c.channels()).max().unwrap_or(0);
    AudioDevice {
        id: id.to_string(),
        name: name.to_string(),
        direction,
        is_default,
        host: host.to_string(),
        sample_rates: (low, high),
        channels: (fewest, most),
    }
}

/// cpal's default host, once the PulseAudio client has a cookie to send (`pulse_cookie`).
fn default_host() -> cpal::Host {
    pulse_cookie::ensure();
    cpal::default_host()
}

/// The ids of the devices present now for one direction, and which is the default: a light
/// enumeration (no configurations) for noticing unplugs, replugs and default changes.
pub fn present(direction: Direction) -> Result<Present, DeviceError> {
    let host = default_host();
    let default = match direction {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }
    .and_then(|d| d.id().ok())
    .map(|id| id.to_string());
    let devices = match direction {
        Direction::Input => host.input_devices(),
        Direction::Output => host.output_devices(),
    }
    .map_err(|e| DeviceError::Enumerate(e.to_string()))?;
    let ids = devices.filter_map(|d| d.id().ok()).map(|id| id.to_string()).collect();
    Ok(Present { ids, default })
}

/// What [`present`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub ids: Vec<String>,
    pub default: Option<String>,
}

/// Finds the device for a choice, with the id it goes by.
pub(crate) fn find(direction: Direction, choice: &DeviceChoice) -> Result<(cpal::Device, String), DeviceError> {
    match choice {
        DeviceChoice::Default => {
            let host = default_host();
            let device = match direction {
                Direction::Input => host.default_input_device(),
                Direction::Output => host.default_output_device(),
            }
            .ok_or(DeviceError::NoDefault { direction })?;
            let id = device.id().map(|id| id.to_string()).unwrap_or_else(|_| "default".into());
            Ok((device, id))
        }
        DeviceChoice::Id(text) => {
            let not_found = || DeviceError::NotFound { direction, id: text.clone() };
            let id = cpal::DeviceId::from_str(text).map_err(|_| not_found())?;
            pulse_cookie::ensure();
            let host = cpal::host_from_id(id.host()).map_err(|e| DeviceError::Open {
                direction,
                id: text.clone(),
                reason: format!("the {} sound system is not reachable: {e}", id.host()),
            })?;
            let mut devices = host.devices().map_err(|e| DeviceError::Enumerate(e.to_string()))?;
            let device = devices.find(|d| d.id().ok().as_ref() == Some(&id)).ok_or_else(not_found)?;
            // `device_by_id` may hand back a device that exists but only the other way round.
            let usable = match direction {
                Direction::Input => device.supported_input_configs().map(|mut c| c.next().is_some()),
                Direction::Output => device.supported_output_configs().map(|mut c| c.next().is_some()),
            };
            if !usable.unwrap_or(false) {
                return Err(not_found());
            }
            Ok((device, text.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_from_what_users_type() {
        assert_eq!(DeviceChoice::parse("default"), Some(DeviceChoice::Default));
        assert_eq!(DeviceChoice::parse("alsa:hw:0,0"), Some(DeviceChoice::Id("alsa:hw:0,0".into())));
        assert_eq!(DeviceChoice::parse("speech.wav"), None);
        assert_eq!(DeviceChoice::parse("nohost:thing"), None);
        assert_eq!(DeviceChoice::parse(""), None);
    }

    #[test]
    fn errors_have_stable_codes_and_say_what_to_do() {
        let e = DeviceError::NotFound { direction: Direction::Input, id: "alsa:x".into() };
        assert_eq!(e.code(), "device_not_found");
        assert!(e.to_string().contains("calldock devices"), "{e}");
    }
}
