//! Device hot-plug for the UI: `calldock_devices::DeviceWatch` polls the sound devices, and each
//! poll's changes become one `devices-changed` event with the lists as they are now.

use std::time::Duration;

use calldock_devices::{AudioDevice, DeviceEvent};
use serde::Serialize;

/// How often to look (docs/desktop-ipc.md).
pub const POLL: Duration = Duration::from_secs(2);

/// One poll's changes, as the event tells them: ids added, ids removed, and whether a default
/// moved. A sound server that went away or came back changes the lists too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub default_changed: bool,
}

impl Changes {
    pub fn of(events: &[DeviceEvent]) -> Self {
        let mut changes = Changes::default();
        for event in events {
            match event {
                DeviceEvent::Added { id, .. } => changes.added.push(id.clone()),
                DeviceEvent::Removed { id, .. } => changes.removed.push(id.clone()),
                DeviceEvent::DefaultChanged { .. } => changes.default_changed = true,
                DeviceEvent::Unavailable { .. } | DeviceEvent::Available => {}
            }
        }
        changes
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

#[cfg(test)]
mod tests {
    use calldock_devices::Direction;

    use super::*;

    #[test]
    fn one_polls_changes_make_one_payload() {
        let events = [
            DeviceEvent::Removed { direction: Direction::Input, id: "pulseaudio:mic".into() },
            DeviceEvent::Added { direction: Direction::Input, id: "pulseaudio:usb".into() },
            DeviceEvent::DefaultChanged {
                direction: Direction::Input,
                from: Some("pulseaudio:mic".into()),
                to: Some("pulseaudio:usb".into()),
            },
        ];
        assert_eq!(
            Changes::of(&events),
            Changes {
                added: vec!["pulseaudio:usb".into()],
                removed: vec!["pulseaudio:mic".into()],
                default_changed: true
            }
        );
        let back = [DeviceEvent::Available];
        assert_eq!(Changes::of(&back), Changes::default(), "the lists in the payload say what is there again");
    }
}
