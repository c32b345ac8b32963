//! The device watch hands over one reading's changes as one message, which the desktop app
//! turns into one `devices-changed` event: a headset plugged in is one change to the user, not
//! an input, then an output, then two defaults.
//!
//! Its own test binary: the watch reads devices in this process, so `PULSE_SERVER` must name
//! the test's private PulseAudio server for the whole process, and no other test may share it.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use calldock_devices::{DeviceEvent, DeviceWatch, Direction};
use support::pulse::VirtualPulse;

#[test]
fn one_readings_changes_arrive_as_one_message() {
    let mut pulse = VirtualPulse::start(&["vspk"]);
    // SAFETY: the only test in this binary, before anything in it reads the environment.
    unsafe { std::env::set_var("PULSE_SERVER", &pulse.server) };
    let (events, changes) = mpsc::channel();
    let (_watch, first) = DeviceWatch::start(Duration::from_millis(200), events).expect("the watch starts");
    let listed = format!("{first:?}");
    assert!(listed.contains("pulseaudio:vspk"), "the first reading has the sink already there: {listed}");

    pulse.add_sink("hotplug");
    let plugged = changes.recv_timeout(Duration::from_secs(5)).expect("the new sink is seen").events;
    let added = |direction, id: &str| DeviceEvent::Added { direction, id: id.into() };
    assert_eq!(
        plugged,
        [added(Direction::Input, "pulseaudio:hotplug.monitor"), added(Direction::Output, "pulseaudio:hotplug")],
        "the sink and its monitor in one message"
    );

    // PulseAudio moves the default source along with the default sink (both were monitors):
    // two defaults, one message.
    pulse.pactl(&["set-default-sink", "hotplug"]);
    let moved = changes.recv_timeout(Duration::from_secs(5)).expect("the new default is seen").events;
    let directions: Vec<Direction> = moved
        .iter()
        .map(|e| match e {
            DeviceEvent::DefaultChanged { direction, .. } => *direction,
            other => panic!("only defaults changed: {other:?}"),
        })
        .collect();
    assert_eq!(directions, [Direction::Input, Direction::Output], "{moved:?}");
    assert!(changes.try_recv().is_err(), "nothing more came after one reading's message");
}
