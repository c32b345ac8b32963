//! Sound device hot-plug for the UI: the `devices-changed` event.
//!
//! TODO(merge): `calldock_devices::DeviceWatch` (hot-plug) is being written in main. Once
//! merged, start it in `Shell::watch_devices` (`DeviceWatch::start(POLL, sender)`) and turn its
//! `DeviceEvent`s into this payload, instead of polling `calldock_devices::present` here.

use std::collections::BTreeSet;
use std::time::Duration;

use calldock_devices::{AudioDevice, Direction, Present};
use serde::Serialize;

/// How often to look (docs/desktop-ipc.md).
pub const POLL: Duration = Duration::from_secs(2);

/// What one look saw: the ids present and the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ids: BTreeSet<String>,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
}

impl Snapshot {
    pub fn of(inputs: Present, outputs: Present) -> Self {
        Self {
            ids: inputs.ids.into_iter().chain(outputs.ids).collect(),
            default_input: inputs.default,
            default_output: outputs.default,
        }
    }

    /// Looks now (blocks briefly: it asks the sound server).
    pub fn take() -> Result<Self, calldock_devices::DeviceError> {
        Ok(Self::of(calldock_devices::present(Direction::Input)?, calldock_devices::present(Direction::Output)?))
    }
}

/// A camera (SPEC §6), as the UI's pickers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CameraDevice {
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

impl From<&calldock_devices::camera::CameraDevice> for CameraDevice {
    fn from(camera: &calldock_devices::camera::CameraDevice) -> Self {
        Self { id: camera.id.clone(), name: camera.name.clone(), is_default: camera.is_default }
    }
}

/// The cameras present (blocks briefly: each is opened to ask its formats). None when they
/// cannot be listed: the UI then shows its test pattern, and the doctor's camera check says why.
pub fn cameras() -> Vec<CameraDevice> {
    match calldock_devices::camera::list_cameras() {
        Ok(cameras) => cameras.iter().map(CameraDevice::from).collect(),
        Err(e) => {
            tracing::warn!(error = %e, code = e.code(), "cameras cannot be listed");
            Vec::new()
        }
    }
}

/// The `devices-changed` payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicesChanged {
    pub devices: Vec<AudioDevice>,
    pub cameras: Vec<CameraDevice>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
    pub default_changed: bool,
}

/// What changed between two looks, or `None` when nothing did.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Option<(Vec<String>, Vec<String>, bool)> {
    let added: Vec<String> = after.ids.difference(&before.ids).cloned().collect();
    let removed: Vec<String> = before.ids.difference(&after.ids).cloned().collect();
    let default_changed = before.default_input != after.default_input || before.default_output != after.default_output;
    (!added.is_empty() || !removed.is_empty() || default_changed).then_some((added, removed, default_changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(ids: &[&str], input: Option<&str>, output: Option<&str>) -> Snapshot {
        Snapshot {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            default_input: input.map(str::to_owned),
            default_output: output.map(str::to_owned),
        }
    }

    #[test]
    fn nothing_changed_is_no_event() {
        let a = snapshot(&["pulseaudio:mic", "pulseaudio:spk"], Some("pulseaudio:mic"), Some("pulseaudio:spk"));
        assert_eq!(diff(&a, &a.clone()), None);
    }

    #[test]
    fn plugs_unplugs_and_default_changes_are_reported() {
        let before = snapshot(&["pulseaudio:mic", "pulseaudio:spk"], Some("pulseaudio:mic"), Some("pulseaudio:spk"));
        let after = snapshot(&["pulseaudio:spk", "pulseaudio:usb"], Some("pulseaudio:usb"), Some("pulseaudio:spk"));
        assert_eq!(diff(&before, &after), Some((vec!["pulseaudio:usb".into()], vec!["pulseaudio:mic".into()], true)));
        let only_default = snapshot(&["pulseaudio:spk", "pulseaudio:usb"], Some("pulseaudio:usb"), None);
        assert_eq!(diff(&after, &only_default), Some((vec![], vec![], true)));
    }

    #[test]
    fn a_snapshot_merges_both_directions() {
        let s = Snapshot::of(
            Present { ids: vec!["a:in".into()], default: Some("a:in".into()) },
            Present { ids: vec!["a:out".into()], default: None },
        );
        assert_eq!(s, snapshot(&["a:in", "a:out"], Some("a:in"), None));
    }
}
