//! Hot-plug by polling (SPEC §6): cpal has no change notifications, so the device lists are
//! read every interval and compared. [`changes`] decides what changed from two readings (pure);
//! [`DeviceWatch`] reads them on a thread of its own and sends the differences.
//!
//! [`Preferences`] is the user's ordered list of wanted devices per direction: the first one
//! present is used, so a preferred headset is returned to as soon as it is plugged back in.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::{DeviceChoice, DeviceError, Direction, Present, present};

/// What changed between two readings of the device lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeviceEvent {
    Added {
        direction: Direction,
        id: String,
    },
    Removed {
        direction: Direction,
        id: String,
    },
    /// The system default moved (`None`: there is no default any more).
    DefaultChanged {
        direction: Direction,
        from: Option<String>,
        to: Option<String>,
    },
    /// The devices cannot be listed any more (the sound server went away); said once, until
    /// listing works again.
    Unavailable {
        reason: String,
    },
    /// Listing works again after [`DeviceEvent::Unavailable`].
    Available,
}

/// The changes from `before` to `after` for one direction: removals, then additions (each in
/// the order listed), then a default change.
pub fn changes(direction: Direction, before: &Present, after: &Present) -> Vec<DeviceEvent> {
    let removed = before.ids.iter().filter(|id| !after.ids.contains(id));
    let added = after.ids.iter().filter(|id| !before.ids.contains(id));
    let mut events: Vec<DeviceEvent> = removed
        .map(|id| DeviceEvent::Removed { direction, id: id.clone() })
        .chain(added.map(|id| DeviceEvent::Added { direction, id: id.clone() }))
        .collect();
    if before.default != after.default {
        events.push(DeviceEvent::DefaultChanged { direction, from: before.default.clone(), to: after.default.clone() });
    }
    events
}

/// Both directions' device lists at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub input: Present,
    pub output: Present,
}

impl Reading {
    pub fn now() -> Result<Reading, DeviceError> {
        Ok(Reading { input: present(Direction::Input)?, output: present(Direction::Output)? })
    }

    /// Everything that changed from `self` to `next`, inputs first.
    pub fn changes_to(&self, next: &Reading) -> Vec<DeviceEvent> {
        let mut events = changes(Direction::Input, &self.input, &next.input);
        events.extend(changes(Direction::Output, &self.output, &next.output));
        events
    }
}

/// What one reading changed, with that reading (`None` when the devices could not be listed),
/// so a receiver that shows the defaults need not list them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChanges {
    pub events: Vec<DeviceEvent>,
    pub reading: Option<Reading>,
}

/// Polls the device lists on a thread and sends what changed. Dropping it stops the thread.
pub struct DeviceWatch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceWatch {
    /// Takes a first reading now (returned, so a caller can show the devices at once), then
    /// compares a new one every `interval` and sends the differences to `events`, one message
    /// per reading that changed anything (a headset plugged in adds an input and an output, and
    /// may become the default of both: one change to the user). The watch ends when dropped or
    /// when `events` is closed.
    pub fn start(
        interval: Duration,
        events: mpsc::Sender<DeviceChanges>,
    ) -> Result<(DeviceWatch, Reading), DeviceError> {
        let first = Reading::now()?;
        let (stop, stop_rx) = mpsc::channel::<()>();
        let mut last = first.clone();
        let thread = std::thread::Builder::new()
            .name("calldock device watch".into())
            .spawn(move || {
                let mut unavailable = false;
                // Wakes every interval; a message or a closed channel means stop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval) {
                    let found = match Reading::now() {
                        Ok(reading) => {
                            let mut found = Vec::new();
                            if std::mem::take(&mut unavailable) {
                                found.push(DeviceEvent::Available);
                            }
                            found.extend(last.changes_to(&reading));
                            last = reading.clone();
                            DeviceChanges { events: found, reading: Some(reading) }
                        }
                        Err(e) if !unavailable => {
                            unavailable = true;
                            let events = vec![DeviceEvent::Unavailable { reason: e.to_string() }];
                            DeviceChanges { events, reading: None }
                        }
                        Err(_) => DeviceChanges { events: Vec::new(), reading: None },
                    };
                    if !found.events.is_empty() && events.send(found).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| DeviceError::Enumerate(format!("no thread to watch the devices: {e}")))?;
        Ok((DeviceWatch { stop: Some(stop), thread: Some(thread) }, first))
    }
}

impl Drop for DeviceWatch {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The user's wanted devices for one direction, most wanted first (ids from `calldock
/// devices`). The choice is the first one present; with none present, the system default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Preferences {
    pub order: Vec<String>,
}

impl Preferences {
    /// Puts `id` first (the user just picked it), keeping the others behind it in their order.
    pub fn prefer(&mut self, id: &str) {
        self.order.retain(|known| known != id);
        self.order.insert(0, id.to_string());
    }

    pub fn choose(&self, present: &Present) -> DeviceChoice {
        self.order
            .iter()
            .find(|id| present.ids.contains(id))
            .map_or(DeviceChoice::Default, |id| DeviceChoice::Id(id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(ids: &[&str], default: Option<&str>) -> Present {
        Present { ids: ids.iter().map(|s| s.to_string()).collect(), default: default.map(String::from) }
    }

    #[test]
    fn plugging_unplugging_and_a_new_default_are_told_apart() {
        let before = present(&["a", "b"], Some("a"));
        assert_eq!(changes(Direction::Output, &before, &before), []);
        let after = present(&["b", "c"], Some("c"));
        assert_eq!(
            changes(Direction::Output, &before, &after),
            [
                DeviceEvent::Removed { direction: Direction::Output, id: "a".into() },
                DeviceEvent::Added { direction: Direction::Output, id: "c".into() },
                DeviceEvent::DefaultChanged {
                    direction: Direction::Output,
                    from: Some("a".into()),
                    to: Some("c".into())
                },
            ]
        );
        let none = present(&[], None);
        assert_eq!(
            changes(Direction::Input, &after, &none).last(),
            Some(&DeviceEvent::DefaultChanged { direction: Direction::Input, from: Some("c".into()), to: None })
        );
    }

    #[test]
    fn a_reading_reports_inputs_then_outputs() {
        let before = Reading { input: present(&["mic"], Some("mic")), output: present(&["spk"], Some("spk")) };
        let after = Reading { input: present(&[], None), output: present(&["spk", "usb"], Some("spk")) };
        let events = before.changes_to(&after);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[0], DeviceEvent::Removed { direction: Direction::Input, id } if id == "mic"));
        assert!(matches!(&events[2], DeviceEvent::Added { direction: Direction::Output, id } if id == "usb"));
    }

    #[test]
    fn events_serialize_with_their_kind() {
        let json = serde_json::to_value(DeviceEvent::Added { direction: Direction::Input, id: "x".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"event": "added", "direction": "input", "id": "x"}));
        let json = serde_json::to_value(DeviceEvent::DefaultChanged {
            direction: Direction::Output,
            from: None,
            to: Some("y".into()),
        })
        .unwrap();
        assert_eq!(json["event"], "default_changed");
        assert_eq!(json["from"], serde_json::Value::Null);
    }

    #[test]
    fn the_first_preferred_device_present_is_chosen_and_returned_to() {
        let mut preferences = Preferences::default();
        assert_eq!(preferences.choose(&present(&["a"], Some("a"))), DeviceChoice::Default);
        preferences.prefer("usb-headset");
        preferences.prefer("bt-headset");
        preferences.prefer("usb-headset");
        assert_eq!(preferences.order, ["usb-headset", "bt-headset"]);
        let with_both = present(&["laptop", "bt-headset", "usb-headset"], Some("laptop"));
        assert_eq!(preferences.choose(&with_both), DeviceChoice::Id("usb-headset".into()));
        let unplugged = present(&["laptop", "bt-headset"], Some("laptop"));
        assert_eq!(preferences.choose(&unplugged), DeviceChoice::Id("bt-headset".into()));
        assert_eq!(preferences.choose(&present(&["laptop"], Some("laptop"))), DeviceChoice::Default);
        assert_eq!(preferences.choose(&with_both), DeviceChoice::Id("usb-headset".into()), "back when replugged");
    }
}
