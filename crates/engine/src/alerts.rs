//! What a person hears apart from the call itself (SPEC §7): the ringtone while a call rings
//! in, a call-waiting beep instead when a second call rings during one, and short cues when a
//! call connects (join), ends after connecting (leave) and when the microphone is muted or
//! unmuted.
//!
//! [`Alerts`] decides, from call events alone, what to play and when to stop (pure: no device,
//! no clock); [`AlertSounds`] plays it on a thread of its own, so opening a device (which can
//! take a moment) never holds up the caller. The desktop shell and the CLI feed both the same
//! events.

use std::collections::HashSet;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calldock_audio::cues::{self, Cue};
use calldock_call::{CallEvent, CallState};
use calldock_devices::{DeviceChoice, Ringer, Ringtone};
use calldock_protocol::CallId;

/// Something to play, or to stop playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    StartRinging,
    StopRinging,
    Cue(Cue),
}

/// Which calls ring and which are connected, and so what is heard.
#[derive(Debug, Default)]
pub struct Alerts {
    /// Incoming calls ringing with the ringtone (not stacked behind a call in progress).
    ringing: HashSet<CallId>,
    /// Calls that reached `Connected`: their end is a "leave".
    connected: HashSet<CallId>,
    ringtone_on: bool,
}

impl Alerts {
    pub fn new() -> Self {
        Self::default()
    }

    /// What to play for one call event, in order.
    pub fn on_call_event(&mut self, event: &CallEvent) -> Vec<AlertAction> {
        let mut actions = Vec::new();
        match event {
            CallEvent::Incoming { call_id, stacked: false, .. } => {
                self.ringing.insert(call_id.clone());
            }
            CallEvent::Incoming { stacked: true, .. } => actions.push(AlertAction::Cue(Cue::CallWaiting)),
            CallEvent::StateChanged { call_id, state } => {
                if *state != CallState::IncomingRinging {
                    self.ringing.remove(call_id);
                }
                if *state == CallState::Connected && self.connected.insert(call_id.clone()) {
                    actions.push(AlertAction::Cue(Cue::Join));
                }
                if let CallState::Ended(_) = state {
                    self.end(call_id, &mut actions);
                }
            }
            CallEvent::Ended { call_id, .. } => self.end(call_id, &mut actions),
            CallEvent::Replaced { old, new } => {
                if self.ringing.remove(old) {
                    self.ringing.insert(new.clone());
                }
                if self.connected.remove(old) {
                    self.connected.insert(new.clone());
                }
            }
            CallEvent::RemoteRinging { .. } | CallEvent::StartMedia { .. } => {}
        }
        // Stop before any cue: the ringtone must not play over a join.
        let ring = !self.ringing.is_empty();
        if ring != self.ringtone_on {
            self.ringtone_on = ring;
            actions.insert(0, if ring { AlertAction::StartRinging } else { AlertAction::StopRinging });
        }
        actions
    }

    /// Whether the ringtone should be playing now.
    pub fn is_ringing(&self) -> bool {
        self.ringtone_on
    }

    /// The person silenced the ringer: the calls ringing now stay silent (they still ring on
    /// screen); a call that rings in after this rings again. The caller stops the ringtone.
    pub fn silence(&mut self) {
        self.ringing.clear();
        self.ringtone_on = false;
    }

    /// What to play when the microphone is muted or unmuted: a cue, during a connected call.
    pub fn on_muted(&mut self, muted: bool) -> Option<AlertAction> {
        (!self.connected.is_empty()).then_some(AlertAction::Cue(if muted { Cue::Mute } else { Cue::Unmute }))
    }

    fn end(&mut self, call_id: &CallId, actions: &mut Vec<AlertAction>) {
        self.ringing.remove(call_id);
        if self.connected.remove(call_id) {
            actions.push(AlertAction::Cue(Cue::Leave));
        }
    }
}

/// Where and how loud alerts play.
#[derive(Debug, Clone)]
pub struct AlertOutputs {
    /// The ringer device (SPEC §7: its own device and volume, so a call can ring on speakers
    /// while calls themselves go to a headset). `None`: calls ring silently.
    pub ringer: Option<DeviceChoice>,
    pub ringer_volume: f32,
    /// Where cues play: the call's speaker when it is a device; `None` plays no cues.
    pub cues: Option<DeviceChoice>,
    pub cue_volume: f32,
}

/// Plays alerts on a thread of its own. Dropping it stops the ringtone and lets the last cue
/// finish (at most [`CUE_DRAIN`]).
pub struct AlertSounds {
    actions: Option<mpsc::Sender<AlertAction>>,
    thread: Option<JoinHandle<()>>,
}

/// The longest the end of a program waits for a cue still playing.
pub const CUE_DRAIN: Duration = Duration::from_millis(800);

impl AlertSounds {
    /// Starts the player. `on_error` is told, once per failing device, when something cannot
    /// be played (a missing ringer device): alerts are a courtesy, a call goes on without them.
    pub fn start(outputs: AlertOutputs, ringtone: Ringtone, on_error: impl Fn(String) + Send + 'static) -> AlertSounds {
        let (actions, received) = mpsc::channel::<AlertAction>();
        let thread = std::thread::Builder::new()
            .name("calldock alerts".into())
            .spawn(move || play(outputs, ringtone, received, on_error))
            .ok();
        AlertSounds { actions: Some(actions), thread }
    }

    pub fn apply(&self, action: AlertAction) {
        if let Some(actions) = &self.actions {
            let _ = actions.send(action);
        }
    }
}

impl Drop for AlertSounds {
    fn drop(&mut self) {
        self.actions.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn play(outputs: AlertOutputs, ringtone: Ringtone, actions: mpsc::Receiver<AlertAction>, on_error: impl Fn(String)) {
    let mut ringing: Option<Ringer> = None;
    let mut cues_playing: Vec<Ringer> = Vec::new();
    let mut failed_devices: HashSet<String> = HashSet::new();
    let mut report = |device: &DeviceChoice, error: String| {
        if failed_devices.insert(device.to_string()) {
            on_error(error);
        }
    };
    loop {
        // Finished cues release their device stream.
        cues_playing.retain(|cue| !cue.finished());
        let action = match actions.recv_timeout(Duration::from_millis(100)) {
            Ok(action) => action,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match action {
            AlertAction::StartRinging if ringing.is_none() => {
                let Some(device) = &outputs.ringer else { continue };
                match Ringer::start(device, &ringtone, outputs.ringer_volume) {
                    Ok(ringer) => ringing = Some(ringer),
                    Err(e) => report(device, format!("cannot ring: {e} [{}]", e.code())),
                }
            }
            AlertAction::StartRinging => {}
            AlertAction::StopRinging => {
                if let Some(ringer) = ringing.take() {
                    ringer.stop();
                }
            }
            AlertAction::Cue(cue) => {
                let Some(device) = &outputs.cues else { continue };
                let sound = Ringtone::from_samples("cue", calldock_audio::SAMPLE_RATE, cues::samples(cue));
                match sound.map_err(|e| e.to_string()).and_then(|sound| {
                    Ringer::play_once(device, &sound, outputs.cue_volume).map_err(|e| format!("{e} [{}]", e.code()))
                }) {
                    Ok(player) => cues_playing.push(player),
                    Err(e) => report(device, format!("cannot play the {cue:?} sound: {e}")),
                }
            }
        }
    }
    if let Some(ringer) = ringing.take() {
        ringer.stop();
    }
    let deadline = Instant::now() + CUE_DRAIN;
    while cues_playing.iter().any(|cue| !cue.finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The device's own buffer still holds the cue's last few milliseconds.
    if !cues_playing.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use calldock_call::EndReason;
    use calldock_protocol::{Media, UserId};

    use super::*;

    fn id(text: &str) -> CallId {
        CallId::new(text)
    }

    fn incoming(call: &str, stacked: bool) -> CallEvent {
        CallEvent::Incoming {
            call_id: id(call),
            from: UserId::new("alice"),
            from_name: "Alice".into(),
            media: Media::Audio,
            stacked,
            ring_deadline: calldock_protocol::UnixMillis(0),
        }
    }

    fn state(call: &str, state: CallState) -> CallEvent {
        CallEvent::StateChanged { call_id: id(call), state }
    }

    fn ended(call: &str, reason: EndReason) -> CallEvent {
        CallEvent::Ended { call_id: id(call), reason, by_name: None }
    }

    #[test]
    fn a_call_rings_until_answered_then_joins_and_leaves() {
        let mut alerts = Alerts::new();
        assert_eq!(alerts.on_call_event(&incoming("a", false)), [AlertAction::StartRinging]);
        assert_eq!(alerts.on_call_event(&state("a", CallState::IncomingRinging)), []);
        assert_eq!(alerts.on_muted(true), None, "no mute cue outside a call");
        assert_eq!(alerts.on_call_event(&state("a", CallState::Connecting)), [AlertAction::StopRinging]);
        assert_eq!(alerts.on_call_event(&state("a", CallState::Connected)), [AlertAction::Cue(Cue::Join)]);
        assert_eq!(alerts.on_call_event(&state("a", CallState::Reconnecting)), []);
        assert_eq!(alerts.on_call_event(&state("a", CallState::Connected)), [], "a reconnect is not a second join");
        assert_eq!(alerts.on_muted(true), Some(AlertAction::Cue(Cue::Mute)));
        assert_eq!(alerts.on_muted(false), Some(AlertAction::Cue(Cue::Unmute)));
        assert_eq!(alerts.on_call_event(&ended("a", EndReason::HangupRemote)), [AlertAction::Cue(Cue::Leave)]);
        assert_eq!(alerts.on_call_event(&state("a", CallState::Ended(EndReason::HangupRemote))), []);
    }

    #[test]
    fn ringing_stops_however_the_call_stops_ringing() {
        for end in [EndReason::Declined, EndReason::Canceled, EndReason::Missed, EndReason::AcceptedElsewhere] {
            let mut alerts = Alerts::new();
            alerts.on_call_event(&incoming("a", false));
            assert_eq!(alerts.on_call_event(&ended("a", end)), [AlertAction::StopRinging], "{end:?}");
        }
    }

    #[test]
    fn two_calls_ring_as_one_until_both_stop() {
        let mut alerts = Alerts::new();
        assert_eq!(alerts.on_call_event(&incoming("a", false)), [AlertAction::StartRinging]);
        assert_eq!(alerts.on_call_event(&incoming("b", false)), []);
        assert_eq!(alerts.on_call_event(&ended("a", EndReason::Canceled)), []);
        assert_eq!(alerts.on_call_event(&CallEvent::Replaced { old: id("b"), new: id("c") }), []);
        assert_eq!(alerts.on_call_event(&ended("c", EndReason::Missed)), [AlertAction::StopRinging]);
    }

    #[test]
    fn a_silenced_ringer_stays_silent_for_the_calls_ringing_then_rings_for_the_next() {
        let mut alerts = Alerts::new();
        alerts.on_call_event(&incoming("a", false));
        assert!(alerts.is_ringing());
        alerts.silence();
        assert!(!alerts.is_ringing());
        assert_eq!(alerts.on_call_event(&state("a", CallState::IncomingRinging)), [], "still silent");
        assert_eq!(alerts.on_call_event(&ended("a", EndReason::Missed)), [], "nothing to stop");
        assert_eq!(alerts.on_call_event(&incoming("b", false)), [AlertAction::StartRinging]);
    }

    #[test]
    fn a_call_waiting_beeps_instead_of_ringing() {
        let mut alerts = Alerts::new();
        alerts.on_call_event(&incoming("a", false));
        alerts.on_call_event(&state("a", CallState::Connecting));
        alerts.on_call_event(&state("a", CallState::Connected));
        assert_eq!(alerts.on_call_event(&incoming("b", true)), [AlertAction::Cue(Cue::CallWaiting)]);
        // An unanswered call leaves without a "leave" cue.
        assert_eq!(alerts.on_call_event(&ended("b", EndReason::Busy)), []);
        assert_eq!(alerts.on_call_event(&ended("a", EndReason::HangupLocal)), [AlertAction::Cue(Cue::Leave)]);
    }
}
