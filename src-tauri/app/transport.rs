//! What crosses the IPC boundary as JSON (docs/desktop-ipc.md): the error shape, the command
//! argument wrapper that turns malformed arguments into `invalid_argument`, and the JSON forms of
//! the engine's types that have none of their own (the call core has no serde, by design).
//!
//! Types that already serialize as the contract wants (`AudioDevice`, the doctor `Report`,
//! `Media`, `UnixMillis`) are passed through untouched.

use calldock_engine::call::{CallEvent, CallState, CallView, Direction as CallDirection, EndReason};
use calldock_engine::{EngineError, SignalingState};
use calldock_protocol::{HistoryEntry, Media, UnixMillis};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tauri::ipc::{CommandArg, CommandItem, InvokeBody, InvokeError};

/// A failed command, as the UI receives it: a stable `code` it can act on and the engine's
/// sentence for a person, shown only as details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpcError {
    pub code: &'static str,
    pub message: String,
}

impl IpcError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("invalid_argument", message)
    }

    pub fn not_signed_in() -> Self {
        Self::new("not_signed_in", "not signed in yet: finish the setup or sign in")
    }

    pub fn not_configured() -> Self {
        Self::new("not_configured", "no server and user are set up yet: finish the first-run setup")
    }
}

impl From<EngineError> for IpcError {
    fn from(e: EngineError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<&EngineError> for IpcError {
    fn from(e: &EngineError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<calldock_devices::DeviceError> for IpcError {
    fn from(e: calldock_devices::DeviceError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// One command argument, read by its JS name. Tauri's own argument parsing rejects a malformed
/// argument with a bare string; this rejects it with `invalid_argument`, as the contract says,
/// before the command runs.
pub struct Arg<T>(pub T);

impl<'de, T: DeserializeOwned, R: tauri::Runtime> CommandArg<'de, R> for Arg<T> {
    fn from_command(command: CommandItem<'de, R>) -> Result<Self, InvokeError> {
        read_arg(command.message.payload(), command.name, command.key).map(Arg).map_err(InvokeError::from)
    }
}

/// Argument `key` of command `name`; a missing key reads as `null`, so optional arguments may be
/// left out.
fn read_arg<T: DeserializeOwned>(payload: &InvokeBody, name: &str, key: &str) -> Result<T, IpcError> {
    let value = match payload {
        InvokeBody::Json(json) => json.get(key).cloned().unwrap_or(serde_json::Value::Null),
        InvokeBody::Raw(_) => return Err(IpcError::invalid_argument(format!("{name}: arguments must be JSON"))),
    };
    T::deserialize(value).map_err(|e| IpcError::invalid_argument(format!("{name}: argument `{key}` is malformed: {e}")))
}

/// `CallState` as the UI names it (SPEC §2, kebab-case).
pub fn state_name(state: CallState) -> &'static str {
    match state {
        CallState::OutgoingRinging => "outgoing-ringing",
        CallState::IncomingRinging => "incoming-ringing",
        CallState::Connecting => "connecting",
        CallState::Connected => "connected",
        CallState::Reconnecting => "reconnecting",
        CallState::Ended(_) => "ended",
    }
}

/// `EndReason` as the CLI prints it: `hangup-local`, `failed(ice)`, …
pub fn end_reason_name(reason: EndReason) -> &'static str {
    use calldock_protocol::FailureKind;
    match reason {
        EndReason::HangupLocal => "hangup-local",
        EndReason::HangupRemote => "hangup-remote",
        EndReason::Declined => "declined",
        EndReason::Busy => "busy",
        EndReason::Missed => "missed",
        EndReason::Canceled => "canceled",
        EndReason::AcceptedElsewhere => "accepted-elsewhere",
        EndReason::DeclinedElsewhere => "declined-elsewhere",
        EndReason::TimeoutReconnect => "timeout-reconnect",
        EndReason::Failed(FailureKind::Ice) => "failed(ice)",
        EndReason::Failed(FailureKind::Dtls) => "failed(dtls)",
        EndReason::Failed(FailureKind::Signaling) => "failed(signaling)",
        EndReason::Failed(FailureKind::Media) => "failed(media)",
        EndReason::Failed(FailureKind::Permission) => "failed(permission)",
    }
}

fn direction_name(direction: CallDirection) -> &'static str {
    match direction {
        CallDirection::Outgoing => "outgoing",
        CallDirection::Incoming => "incoming",
    }
}

/// `calldock_call::CallView`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallViewJson {
    pub id: String,
    pub direction: &'static str,
    pub remote: String,
    pub remote_name: String,
    pub remote_device: Option<String>,
    pub media: Media,
    pub state: &'static str,
    pub end_reason: Option<&'static str>,
    pub started_at: UnixMillis,
    pub ring_deadline: Option<UnixMillis>,
    pub connected_at: Option<UnixMillis>,
    pub ended_at: Option<UnixMillis>,
    pub remote_ringing: bool,
}

impl From<&CallView> for CallViewJson {
    fn from(view: &CallView) -> Self {
        Self {
            id: view.id.as_str().to_owned(),
            direction: direction_name(view.direction),
            remote: view.remote.as_str().to_owned(),
            remote_name: view.remote_name.clone(),
            remote_device: view.remote_device.as_ref().map(|d| d.as_str().to_owned()),
            media: view.media,
            state: state_name(view.state),
            end_reason: match view.state {
                CallState::Ended(reason) => Some(end_reason_name(reason)),
                _ => None,
            },
            started_at: view.started_at,
            ring_deadline: view.ring_deadline,
            connected_at: view.connected_at,
            ended_at: view.ended_at,
            remote_ringing: view.remote_ringing,
        }
    }
}

/// The `call` event's payload (`CallEventPayload`), tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEventJson {
    StateChanged {
        call_id: String,
        state: &'static str,
    },
    Incoming {
        call_id: String,
        from: String,
        from_name: String,
        media: Media,
        stacked: bool,
        ring_deadline: UnixMillis,
    },
    RemoteRinging {
        call_id: String,
    },
    Replaced {
        old: String,
        new: String,
    },
    Ended {
        call_id: String,
        reason: &'static str,
        by_name: Option<String>,
    },
}

impl CallEventJson {
    /// The UI's form of a call event; `None` for `StartMedia`, which is the engine's business.
    pub fn of(event: &CallEvent) -> Option<Self> {
        Some(match event {
            // The call core reports entering IncomingRinging and Ended through their own events.
            CallEvent::StateChanged { state: CallState::IncomingRinging | CallState::Ended(_), .. } => return None,
            CallEvent::StateChanged { call_id, state } => {
                Self::StateChanged { call_id: call_id.as_str().to_owned(), state: state_name(*state) }
            }
            CallEvent::Incoming { call_id, from, from_name, media, stacked, ring_deadline } => Self::Incoming {
                call_id: call_id.as_str().to_owned(),
                from: from.as_str().to_owned(),
                from_name: from_name.clone(),
                media: *media,
                stacked: *stacked,
                ring_deadline: *ring_deadline,
            },
            CallEvent::RemoteRinging { call_id } => Self::RemoteRinging { call_id: call_id.as_str().to_owned() },
            CallEvent::StartMedia { .. } => return None,
            CallEvent::Replaced { old, new } => {
                Self::Replaced { old: old.as_str().to_owned(), new: new.as_str().to_owned() }
            }
            CallEvent::Ended { call_id, reason, by_name } => Self::Ended {
                call_id: call_id.as_str().to_owned(),
                reason: end_reason_name(*reason),
                by_name: by_name.clone(),
            },
        })
    }
}

/// The signaling connection (`SignalingState`), with the shell's own states before an engine
/// exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SignalingJson {
    SignedOut,
    Connecting,
    Connected { user: String, device: String, expires_at: UnixMillis },
    Reconnecting { attempt: u32, retry_in_ms: u64, reason: String, error: Option<IpcError> },
    Failed { error: IpcError },
}

impl From<&SignalingState> for SignalingJson {
    fn from(state: &SignalingState) -> Self {
        match state {
            SignalingState::Connected { user, device, expires_at } => Self::Connected {
                user: user.as_str().to_owned(),
                device: device.as_str().to_owned(),
                expires_at: *expires_at,
            },
            SignalingState::Reconnecting { attempt, retry_in, reason } => Self::Reconnecting {
                attempt: *attempt,
                retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                reason: reason.clone(),
                error: None,
            },
            SignalingState::Failed(e) => Self::Failed { error: e.into() },
        }
    }
}

/// One entry of the server's call history, flattened (`RecentCall`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentCallJson {
    pub call_id: String,
    pub direction: calldock_protocol::Direction,
    pub remote: String,
    pub remote_name: String,
    pub media: Media,
    pub missed: bool,
    pub started_at: UnixMillis,
    pub answered_at: Option<UnixMillis>,
    pub ended_at: Option<UnixMillis>,
    pub end_reason: Option<calldock_protocol::EndReason>,
}

impl From<&HistoryEntry> for RecentCallJson {
    fn from(entry: &HistoryEntry) -> Self {
        let call = &entry.call;
        // The other party: the caller of an incoming call, the first callee of an outgoing one.
        let (remote, remote_name) = match entry.direction {
            calldock_protocol::Direction::Incoming => (call.caller.as_str().to_owned(), call.caller_name.clone()),
            calldock_protocol::Direction::Outgoing => call
                .participants
                .first()
                .map(|p| (p.user.as_str().to_owned(), p.display_name.clone()))
                .unwrap_or_default(),
        };
        Self {
            call_id: call.call_id.as_str().to_owned(),
            direction: entry.direction,
            remote,
            remote_name,
            media: call.media,
            missed: entry.missed,
            started_at: call.created_at,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            end_reason: call.end_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use calldock_engine::call::CallEvent;
    use calldock_protocol::{CallId, FailureKind};
    use serde_json::json;

    use super::*;

    #[test]
    fn malformed_arguments_are_invalid_argument() {
        let payload = InvokeBody::Json(json!({"callId": "ab12", "media": "holographic", "limit": -3}));
        assert_eq!(read_arg::<String>(&payload, "hang_up", "callId"), Ok("ab12".to_string()));
        let media = read_arg::<Media>(&payload, "accept_call", "media").unwrap_err();
        assert_eq!(media.code, "invalid_argument");
        assert!(media.message.contains("accept_call") && media.message.contains("media"), "{}", media.message);
        assert_eq!(read_arg::<usize>(&payload, "recent_calls", "limit").unwrap_err().code, "invalid_argument");
        assert_eq!(read_arg::<String>(&payload, "start_call", "to").unwrap_err().code, "invalid_argument");
        assert_eq!(read_arg::<Option<Vec<String>>>(&payload, "run_doctor", "checks"), Ok(None));
        let raw = InvokeBody::Raw(vec![1, 2, 3]);
        assert_eq!(read_arg::<bool>(&raw, "set_muted", "muted").unwrap_err().code, "invalid_argument");
        // What the UI receives when a command rejects.
        assert_eq!(InvokeError::from(media).0["code"], "invalid_argument");
    }

    #[test]
    fn errors_are_code_and_message() {
        let e: IpcError = EngineError::Stopped.into();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"code": "engine_stopped", "message": "the call engine has stopped"})
        );
        let bad: IpcError = EngineError::BadServerUrl { url: "nope".into() }.into();
        assert_eq!(bad.code, "bad_server_url");
    }

    #[test]
    fn call_events_are_tagged_with_kebab_case_states_and_reasons() {
        let id = CallId("ab".repeat(16));
        let ended =
            CallEvent::Ended { call_id: id.clone(), reason: EndReason::Failed(FailureKind::Ice), by_name: None };
        assert_eq!(
            serde_json::to_value(CallEventJson::of(&ended).unwrap()).unwrap(),
            json!({"type": "ended", "call_id": id.as_str(), "reason": "failed(ice)", "by_name": null})
        );
        let state = CallEvent::StateChanged { call_id: id.clone(), state: CallState::Reconnecting };
        assert_eq!(
            serde_json::to_value(CallEventJson::of(&state).unwrap()).unwrap(),
            json!({"type": "state_changed", "call_id": id.as_str(), "state": "reconnecting"})
        );
        let incoming = CallEvent::Incoming {
            call_id: id.clone(),
            from: "bob".into(),
            from_name: "Bob".into(),
            media: Media::Audio,
            stacked: true,
            ring_deadline: UnixMillis(60_000),
        };
        assert_eq!(
            serde_json::to_value(CallEventJson::of(&incoming).unwrap()).unwrap(),
            json!({"type": "incoming", "call_id": id.as_str(), "from": "bob", "from_name": "Bob", "media": "audio",
                   "stacked": true, "ring_deadline": 60_000})
        );
    }

    #[test]
    fn start_media_and_states_with_their_own_events_are_not_forwarded() {
        let id = CallId("cd".repeat(16));
        let start = CallEvent::StartMedia {
            call_id: id.clone(),
            remote: "bob".into(),
            remote_device: "b1".into(),
            offerer: true,
            media: Media::Audio,
        };
        assert_eq!(CallEventJson::of(&start), None);
        let ended_state = CallEvent::StateChanged { call_id: id, state: CallState::Ended(EndReason::Busy) };
        assert_eq!(CallEventJson::of(&ended_state), None);
    }

    #[test]
    fn every_end_reason_has_the_cli_name() {
        assert_eq!(end_reason_name(EndReason::HangupLocal), "hangup-local");
        assert_eq!(end_reason_name(EndReason::AcceptedElsewhere), "accepted-elsewhere");
        assert_eq!(end_reason_name(EndReason::TimeoutReconnect), "timeout-reconnect");
        assert_eq!(end_reason_name(EndReason::Failed(FailureKind::Permission)), "failed(permission)");
    }

    #[test]
    fn signaling_states_carry_their_fields() {
        let reconnecting = SignalingState::Reconnecting {
            attempt: 3,
            retry_in: std::time::Duration::from_millis(1500),
            reason: "closed".into(),
        };
        assert_eq!(
            serde_json::to_value(SignalingJson::from(&reconnecting)).unwrap(),
            json!({"state": "reconnecting", "attempt": 3, "retry_in_ms": 1500, "reason": "closed", "error": null})
        );
        assert_eq!(serde_json::to_value(SignalingJson::SignedOut).unwrap(), json!({"state": "signed_out"}));
    }
}
