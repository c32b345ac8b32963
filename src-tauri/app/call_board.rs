//! The shell's summary of this device's live calls, built from the engine's call events: who
//! each call is with and where it stands. The tray text and the ringer follow it. It decides
//! nothing about calls (the call core does); it only remembers what the events said.

use std::collections::BTreeMap;

use calldock_engine::call::{CallEvent, CallState};
use calldock_protocol::CallId;

/// Where a live call stands, as far as the tray and ringer care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Ringing here: the ringtone plays.
    Incoming,
    /// We are calling out.
    Outgoing,
    Connecting,
    Connected,
    Reconnecting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardCall {
    pub remote_name: String,
    pub stage: Stage,
}

/// Live calls by id; ended ones are dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallBoard {
    calls: BTreeMap<CallId, BoardCall>,
}

impl CallBoard {
    /// A call we placed: its events do not say whom it is to, the command did.
    /// Its first events may arrive before this: they keep their stage, and get the name.
    pub fn note_outgoing(&mut self, call_id: CallId, to: &str) {
        self.calls
            .entry(call_id)
            .and_modify(|call| call.remote_name = to.to_owned())
            .or_insert(BoardCall { remote_name: to.to_owned(), stage: Stage::Outgoing });
    }

    pub fn apply(&mut self, event: &CallEvent) {
        match event {
            CallEvent::Incoming { call_id, from_name, .. } => {
                self.calls
                    .insert(call_id.clone(), BoardCall { remote_name: from_name.clone(), stage: Stage::Incoming });
            }
            CallEvent::StateChanged { call_id, state } => {
                let stage = match state {
                    CallState::OutgoingRinging => Stage::Outgoing,
                    CallState::IncomingRinging => Stage::Incoming,
                    CallState::Connecting => Stage::Connecting,
                    CallState::Connected => Stage::Connected,
                    CallState::Reconnecting => Stage::Reconnecting,
                    CallState::Ended(_) => {
                        self.calls.remove(call_id);
                        return;
                    }
                };
                match self.calls.get_mut(call_id) {
                    Some(call) => call.stage = stage,
                    // A call this board never heard of (placed before a restart of the shell's
                    // view): it still counts, under its id until a name is known.
                    None => {
                        self.calls
                            .insert(call_id.clone(), BoardCall { remote_name: call_id.as_str().to_owned(), stage });
                    }
                }
            }
            CallEvent::Replaced { old, new } => {
                if let Some(call) = self.calls.remove(old) {
                    self.calls.entry(new.clone()).or_insert(call);
                }
            }
            CallEvent::Ended { call_id, .. } => {
                self.calls.remove(call_id);
            }
            CallEvent::RemoteRinging { .. } | CallEvent::StartMedia { .. } => {}
        }
    }

    /// Whether any call is under way or ringing.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty()
    }

    /// One line for the tray: the call that matters most (one in progress, else one ringing
    /// here, else one we place), how many more, and the microphone when muted.
    pub fn tray_text(&self, muted: bool) -> String {
        let rank = |stage: Stage| match stage {
            Stage::Connected | Stage::Reconnecting | Stage::Connecting => 0,
            Stage::Incoming => 1,
            Stage::Outgoing => 2,
        };
        let Some(main) = self.calls.values().min_by_key(|c| rank(c.stage)) else {
            return if muted { "Calldock: no calls · microphone muted".into() } else { "Calldock: no calls".into() };
        };
        let name = &main.remote_name;
        let mut text = match main.stage {
            Stage::Incoming => format!("Incoming call from {name}"),
            Stage::Outgoing => format!("Calling {name}…"),
            Stage::Connecting => format!("Connecting to {name}…"),
            Stage::Connected => format!("In a call with {name}"),
            Stage::Reconnecting => format!("Reconnecting to {name}…"),
        };
        let more = self.calls.len() - 1;
        if more > 0 {
            text += &format!(" (+{more} more)");
        }
        if muted {
            text += " · microphone muted";
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use calldock_engine::call::EndReason;
    use calldock_protocol::{Media, UnixMillis};

    use super::*;

    fn id(n: u8) -> CallId {
        CallId(format!("{n:032x}"))
    }

    fn incoming(n: u8, name: &str) -> CallEvent {
        CallEvent::Incoming {
            call_id: id(n),
            from: name.to_lowercase().as_str().into(),
            from_name: name.into(),
            media: Media::Audio,
            stacked: false,
            ring_deadline: UnixMillis(0),
        }
    }

    #[test]
    fn the_tray_names_the_call_that_matters_most() {
        let mut board = CallBoard::default();
        assert_eq!(board.tray_text(false), "Calldock: no calls");
        assert_eq!(board.tray_text(true), "Calldock: no calls · microphone muted");

        board.note_outgoing(id(1), "bob");
        assert_eq!(board.tray_text(false), "Calling bob…");
        board.apply(&CallEvent::StateChanged { call_id: id(1), state: CallState::Connected });
        assert_eq!(board.tray_text(true), "In a call with bob · microphone muted");

        board.apply(&incoming(2, "Carol"));
        assert_eq!(board.tray_text(false), "In a call with bob (+1 more)");
        board.apply(&CallEvent::Ended { call_id: id(1), reason: EndReason::HangupRemote, by_name: None });
        assert_eq!(board.tray_text(false), "Incoming call from Carol");
    }

    #[test]
    fn the_board_is_idle_once_every_call_has_ended() {
        let mut board = CallBoard::default();
        board.apply(&incoming(1, "Bob"));
        board.apply(&incoming(2, "Carol"));
        board.apply(&CallEvent::StateChanged { call_id: id(1), state: CallState::Connecting });
        board.apply(&CallEvent::Ended { call_id: id(2), reason: EndReason::Missed, by_name: None });
        assert!(!board.is_idle());
        board.apply(&CallEvent::StateChanged { call_id: id(1), state: CallState::Ended(EndReason::HangupLocal) });
        assert!(board.is_idle());
    }

    #[test]
    fn a_replaced_call_keeps_its_name_under_the_new_id() {
        let mut board = CallBoard::default();
        board.note_outgoing(id(1), "bob");
        board.apply(&CallEvent::Replaced { old: id(1), new: id(9) });
        board.apply(&CallEvent::StateChanged { call_id: id(9), state: CallState::Connecting });
        assert_eq!(board.tray_text(false), "Connecting to bob…");
        board.apply(&CallEvent::Ended {
            call_id: id(9),
            reason: EndReason::Failed(calldock_protocol::FailureKind::Ice),
            by_name: None,
        });
        assert!(board.is_idle());
    }
}
