//! Calldock signaling protocol v1.
//!
//! JSON messages over one WebSocket per device, plus a small REST API (login, token refresh,
//! TURN credentials, history). This crate holds the types both sides share; it does no IO.
//! `docs/protocol.md` describes the flows; `docs/protocol.schema.json` is generated from these
//! types by [`json_schema`] (a test fails when the committed copy is stale).
//!
//! Framing rules:
//! - Every client frame is a request: `{"id": "...", "type": "...", ...}`. The server answers each
//!   with exactly one reply carrying `"re": <id>`: a typed success message or an `error`.
//! - Server events carry no `re`.
//! - Unknown fields are ignored on both sides; an unknown `type` gets an `unknown_type` error.
//! - A text frame larger than [`MAX_FRAME_BYTES`] gets a `frame_too_large` error.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod rest;
mod version;

pub use rest::*;
pub use version::{ProtocolVersion, VersionMismatch};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

/// Largest text frame a peer must accept; larger ones are refused with `frame_too_large`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// How long a call rings before it is missed (SPEC §2). Servers and clients both enforce it.
pub const RING_TIMEOUT_MS: u64 = 60_000;

/// The path of the WebSocket endpoint under the server's base URL.
pub const WS_PATH: &str = "/v1/ws";

/// Milliseconds since the Unix epoch. Both sides exchange wall-clock deadlines in this unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    pub fn saturating_add_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    pub fn saturating_sub(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// A user's account name, e.g. `alice`. The echo bot is [`ECHO_USER`].
    UserId
);
string_id!(
    /// One installation of a client. A user may have several devices online; all of them ring.
    DeviceId
);
string_id!(
    /// Chosen by the caller's client (random, 128 bits, hex). Glare is broken by comparing call
    /// ids, so both ends can decide the winner without asking anyone: see [`glare_winner`].
    CallId
);
string_id!(
    /// Chosen by the sender of a request; echoed as `re` in the reply.
    RequestId
);
string_id!(
    /// A conversation between a set of users. A second call start in a conversation that has an
    /// active call returns the active call (idempotency, SPEC §2). For a 1:1 call it defaults to
    /// [`ConversationId::direct`].
    ConversationId
);

/// The user name of the echo bot that every reference server hosts (SPEC §4).
pub const ECHO_USER: &str = "echo";

impl ConversationId {
    /// The conversation of a 1:1 call: the two user names, sorted, so both directions agree.
    pub fn direct(a: &UserId, b: &UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Self(format!("direct:{lo}:{hi}"))
    }
}

/// Decides glare (both users call each other at once): the call with the smaller id wins, and
/// the loser's outgoing call turns into accepting the winner's. Both ends compute the same answer.
pub fn glare_winner<'a>(a: &'a CallId, b: &'a CallId) -> &'a CallId {
    if a <= b { a } else { b }
}

/// What a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Audio,
    Video,
}

/// Why a callee refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeclineReason {
    /// The user pressed decline.
    Declined,
    /// The user is in another call and declined the stacked one.
    Busy,
}

/// What failed, for calls that end with `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    Ice,
    Dtls,
    Signaling,
    Media,
    Permission,
}

/// Why a call ended, as the server reports it to every participant's device. Clients turn
/// `hangup` into hangup-local or hangup-remote by comparing `by` with themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// A participant hung up a connected call (`by` names who).
    Hangup,
    /// The callee declined.
    Declined,
    /// The callee was in another call and declined this one as busy.
    Busy,
    /// Nobody answered within the ring timeout.
    Missed,
    /// The caller hung up while it was ringing.
    Canceled,
    /// Another device of the same user accepted (sent to the user's other devices).
    AcceptedElsewhere,
    /// Another device of the same user declined (sent to the user's other devices).
    DeclinedElsewhere,
    /// The loser of glare: its call was replaced by the winner's (see [`glare_winner`]).
    Replaced,
    /// A participant reported a failure (`failure` says what).
    Failed,
    /// The media connection was lost and did not come back in time.
    TimeoutReconnect,
}

/// A participant's standing in a call, as the waiting grid shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantState {
    /// Invited; none of the user's devices has acknowledged yet.
    Invited,
    /// At least one device is ringing.
    Ringing,
    /// Accepted: in the call.
    Joined,
    /// Declined the invitation.
    Declined,
    /// Left after joining, or never answered.
    Left,
}

/// One participant of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Participant {
    pub user: UserId,
    pub display_name: String,
    pub state: ParticipantState,
    /// The device that joined, once joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// While invited or ringing: when this participant's ringing stops. Participants invited
    /// into a running call (group) ring on their own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_deadline: Option<UnixMillis>,
}

/// The server's view of a call's phase. Connecting/connected are media states the clients know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallPhase {
    /// Nobody has accepted yet.
    Ringing,
    /// At least one callee accepted.
    Active,
    /// Over; `end_reason` says why.
    Ended,
}

/// A call as the server knows it: sent on invite, in sync replies and in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallSnapshot {
    pub call_id: CallId,
    pub conversation: ConversationId,
    pub caller: UserId,
    pub caller_name: String,
    /// The caller's device that placed the call.
    pub caller_device: DeviceId,
    pub media: Media,
    pub phase: CallPhase,
    pub created_at: UnixMillis,
    /// When ringing stops with `missed` unless someone accepts.
    pub ring_deadline: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// Everyone but the caller.
    pub participants: Vec<Participant>,
}

impl CallSnapshot {
    pub fn participant(&self, user: &UserId) -> Option<&Participant> {
        self.participants.iter().find(|p| &p.user == user)
    }
}

/// An offer or an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
}

/// Online status of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Offline,
    Online,
    /// Online and in a call.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PresenceEntry {
    pub user: UserId,
    pub display_name: String,
    pub status: PresenceStatus,
}

/// A frame from client to server. Every one is a request and gets exactly one reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientFrame {
    pub id: RequestId,
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// The requests a client sends. The wire name is the `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ClientMessage {
    /// First frame on a connection. Reply: `welcome`, or `error{version_mismatch}` and close.
    #[serde(rename = "hello")]
    Hello { protocol: ProtocolVersion, agent: String },
    /// Authenticate (or re-authenticate with a refreshed token). Reply: `authenticated`.
    #[serde(rename = "auth")]
    Auth { token: String },
    /// Liveness and RTT probe. Reply: `pong`.
    #[serde(rename = "ping")]
    Ping {},
    /// Subscribe to presence of these users. Reply: `presence.state`; then `presence` events.
    #[serde(rename = "presence.watch")]
    PresenceWatch { users: Vec<UserId> },
    /// Start a call. Reply: `call.created` (with `existing: true` when the conversation already
    /// had an active call: that call is returned and no second call is made).
    #[serde(rename = "call.invite")]
    CallInvite {
        call_id: CallId,
        to: UserId,
        media: Media,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
    },
    /// A callee's device tells the caller it is ringing. Reply: `ok`.
    #[serde(rename = "call.ringing")]
    CallRinging { call_id: CallId },
    /// Accept a ringing call on this device. Reply: `ok`, or `error{invalid_state}` when another
    /// device won the race (that device's acceptance stands).
    #[serde(rename = "call.accept")]
    CallAccept { call_id: CallId, media: Media },
    /// Decline a ringing call (all of the user's devices stop ringing). Reply: `ok`.
    #[serde(rename = "call.decline")]
    CallDecline { call_id: CallId, reason: DeclineReason },
    /// The caller hangs up before anyone answered. Reply: `ok`.
    #[serde(rename = "call.cancel")]
    CallCancel { call_id: CallId },
    /// Leave an active call (ends a 1:1 call). Optional `failure` reports why. Reply: `ok`.
    #[serde(rename = "call.end")]
    CallEnd {
        call_id: CallId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureKind>,
        /// Set when the media connection was lost and did not come back.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reconnect_timeout: bool,
    },
    /// The client's own ring timer fired (the server enforces the same timeout). Reply: `ok`.
    #[serde(rename = "call.timeout")]
    CallTimeout { call_id: CallId },
    /// Invite another user into an active call (group). Reply: `ok`.
    #[serde(rename = "call.add_participant")]
    CallAddParticipant { call_id: CallId, user: UserId },
    /// Ask for every call this user is in that has not ended, plus calls that ended in the
    /// last minutes (so a device that was away learns how they ended). Reply: `calls`.
    #[serde(rename = "call.sync")]
    CallSync {},
    /// Relay an SDP offer or answer to the other party (`to` is required in group calls).
    #[serde(rename = "sdp")]
    Sdp {
        call_id: CallId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<UserId>,
        kind: SdpKind,
        sdp: String,
    },
    /// Relay a trickled ICE candidate. An empty `candidate` means end of candidates.
    #[serde(rename = "ice")]
    Ice {
        call_id: CallId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<UserId>,
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// Ask the other party to restart ICE (it sends a new offer with new credentials).
    #[serde(rename = "ice.restart")]
    IceRestart {
        call_id: CallId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<UserId>,
    },
}

impl ClientMessage {
    /// The wire name, for logs and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Auth { .. } => "auth",
            Self::Ping {} => "ping",
            Self::PresenceWatch { .. } => "presence.watch",
            Self::CallInvite { .. } => "call.invite",
            Self::CallRinging { .. } => "call.ringing",
            Self::CallAccept { .. } => "call.accept",
            Self::CallDecline { .. } => "call.decline",
            Self::CallCancel { .. } => "call.cancel",
            Self::CallEnd { .. } => "call.end",
            Self::CallTimeout { .. } => "call.timeout",
            Self::CallAddParticipant { .. } => "call.add_participant",
            Self::CallSync {} => "call.sync",
            Self::Sdp { .. } => "sdp",
            Self::Ice { .. } => "ice",
            Self::IceRestart { .. } => "ice.restart",
        }
    }

    /// Every `type` a client may send; anything else gets `unknown_type`.
    pub const KINDS: &'static [&'static str] = &[
        "hello",
        "auth",
        "ping",
        "presence.watch",
        "call.invite",
        "call.ringing",
        "call.accept",
        "call.decline",
        "call.cancel",
        "call.end",
        "call.timeout",
        "call.add_participant",
        "call.sync",
        "sdp",
        "ice",
        "ice.restart",
    ];
}

/// A frame from server to client: a reply (with `re`) or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// Reply to `hello`.
    #[serde(rename = "welcome")]
    Welcome { re: RequestId, protocol: ProtocolVersion, server: String, max_frame_bytes: usize },
    /// Reply to `auth`.
    #[serde(rename = "authenticated")]
    Authenticated {
        re: RequestId,
        user: UserId,
        display_name: String,
        device: DeviceId,
        /// When the token expires; refresh it before then and send `auth` again.
        expires_at: UnixMillis,
    },
    /// Reply to requests that return nothing.
    #[serde(rename = "ok")]
    Ok { re: RequestId },
    /// Reply to `ping`.
    #[serde(rename = "pong")]
    Pong { re: RequestId, server_time: UnixMillis },
    /// Reply to `presence.watch`.
    #[serde(rename = "presence.state")]
    PresenceState { re: RequestId, users: Vec<PresenceEntry> },
    /// Reply to `call.invite`.
    #[serde(rename = "call.created")]
    CallCreated {
        re: RequestId,
        call: CallSnapshot,
        /// The conversation already had this active call; no new call was made.
        existing: bool,
    },
    /// Reply to `call.sync`.
    #[serde(rename = "calls")]
    Calls { re: RequestId, calls: Vec<CallSnapshot> },
    /// The reply to a request that failed, or (with no `re`) a connection-level problem.
    #[serde(rename = "error")]
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
        code: ErrorCode,
        message: String,
        retryable: bool,
    },
    /// Event: a user's status changed.
    #[serde(rename = "presence")]
    Presence { user: UserId, status: PresenceStatus },
    /// Event: an incoming call; ring until `ring_deadline`.
    #[serde(rename = "call.invite")]
    CallInvite { call: CallSnapshot },
    /// Event to the caller: a callee device is ringing.
    #[serde(rename = "call.ringing")]
    CallRinging { call_id: CallId, user: UserId },
    /// Event to the caller and to the accepting device: who answered, on which device.
    #[serde(rename = "call.accepted")]
    CallAccepted { call_id: CallId, user: UserId, device: DeviceId, media: Media },
    /// Event: the call is over for this device.
    #[serde(rename = "call.ended")]
    CallEnded {
        call_id: CallId,
        reason: EndReason,
        /// Who caused it (the hanger-up, the decliner), when someone did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureKind>,
    },
    /// Event to group participants: someone was invited (waiting grid shows "ringing…").
    #[serde(rename = "participant.invited")]
    ParticipantInvited { call_id: CallId, user: UserId, display_name: String },
    /// Event to group participants: someone joined (the tile goes live).
    #[serde(rename = "participant.joined")]
    ParticipantJoined { call_id: CallId, user: UserId, display_name: String, device: DeviceId },
    /// Event to group participants: someone left or declined (the tile is removed).
    #[serde(rename = "participant.left")]
    ParticipantLeft { call_id: CallId, user: UserId, display_name: String, state: ParticipantState },
    /// Event: relayed offer or answer.
    #[serde(rename = "sdp")]
    Sdp { call_id: CallId, from: UserId, from_device: DeviceId, kind: SdpKind, sdp: String },
    /// Event: relayed ICE candidate.
    #[serde(rename = "ice")]
    Ice {
        call_id: CallId,
        from: UserId,
        from_device: DeviceId,
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// Event: the other party asks for an ICE restart.
    #[serde(rename = "ice.restart")]
    IceRestart { call_id: CallId, from: UserId, from_device: DeviceId },
}

impl ServerMessage {
    /// The request this message answers, if it is a reply.
    pub fn reply_to(&self) -> Option<&RequestId> {
        match self {
            Self::Welcome { re, .. }
            | Self::Authenticated { re, .. }
            | Self::Ok { re }
            | Self::Pong { re, .. }
            | Self::PresenceState { re, .. }
            | Self::CallCreated { re, .. }
            | Self::Calls { re, .. } => Some(re),
            Self::Error { re, .. } => re.as_ref(),
            _ => None,
        }
    }

    /// An error reply with the code's default retryability.
    pub fn error(re: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error { re, code, message: message.into(), retryable: code.retryable() }
    }
}

/// Error codes. Clients match on these, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Client and server speak different major protocol versions.
    #[error("version_mismatch")]
    VersionMismatch,
    /// The frame is not JSON, or not a JSON object.
    #[error("bad_json")]
    BadJson,
    /// The frame is JSON but misses `id` or `type`, or a field has the wrong shape.
    #[error("bad_request")]
    BadRequest,
    /// The `type` is not one this server knows.
    #[error("unknown_type")]
    UnknownType,
    /// The frame exceeds the size limit.
    #[error("frame_too_large")]
    FrameTooLarge,
    /// Too many requests; slow down.
    #[error("rate_limited")]
    RateLimited,
    /// `hello` and `auth` must come first.
    #[error("not_authenticated")]
    NotAuthenticated,
    /// The token is not one this server issued.
    #[error("token_invalid")]
    TokenInvalid,
    /// The token has expired: log in again or refresh.
    #[error("token_expired")]
    TokenExpired,
    /// No such user.
    #[error("user_not_found")]
    UserNotFound,
    /// No such call.
    #[error("call_not_found")]
    CallNotFound,
    /// The sender is not a participant of that call.
    #[error("not_participant")]
    NotParticipant,
    /// The call is not in a state that allows this request (e.g. already answered elsewhere).
    #[error("invalid_state")]
    InvalidState,
    /// The server failed; try again.
    #[error("internal")]
    Internal,
}

impl ErrorCode {
    /// Whether repeating the same request later may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Internal)
    }
}

/// Why a text frame from a client could not be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    /// The request id, when the frame had a readable one, so the error can be a reply.
    pub re: Option<RequestId>,
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    pub fn into_reply(self) -> ServerMessage {
        ServerMessage::error(self.re, self.code, self.message)
    }
}

/// Parses a client's text frame, telling malformed JSON, a missing id, an unknown type and a
/// badly shaped known type apart, so each gets the right error code.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError {
            re: None,
            code: ErrorCode::FrameTooLarge,
            message: format!("frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes", text.len()),
        });
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FrameError {
        re: None,
        code: ErrorCode::BadJson,
        message: format!("frame is not valid JSON: {e}"),
    })?;
    let Some(object) = value.as_object() else {
        return Err(FrameError { re: None, code: ErrorCode::BadJson, message: "frame must be a JSON object".into() });
    };
    let re = match object.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() && id.len() <= 128 => Some(RequestId(id.clone())),
        _ => None,
    };
    let Some(re) = re else {
        return Err(FrameError {
            re: None,
            code: ErrorCode::BadRequest,
            message: "frame needs a string \"id\" of 1 to 128 characters".into(),
        });
    };
    let kind = match object.get("type") {
        Some(serde_json::Value::String(kind)) => kind.as_str(),
        _ => {
            return Err(FrameError {
                re: Some(re),
                code: ErrorCode::BadRequest,
                message: "frame needs a string \"type\"".into(),
            });
        }
    };
    if !ClientMessage::KINDS.contains(&kind) {
        let shown: String = kind.chars().take(64).collect();
        return Err(FrameError {
            re: Some(re),
            code: ErrorCode::UnknownType,
            message: format!("unknown message type \"{shown}\""),
        });
    }
    let kind = kind.to_owned();
    serde_json::from_value::<ClientFrame>(value).map_err(|e| FrameError {
        re: Some(re),
        code: ErrorCode::BadRequest,
        message: format!("malformed \"{kind}\": {e}"),
    })
}

/// The JSON Schema of both directions of the protocol, generated from these types.
pub fn json_schema() -> serde_json::Value {
    let client = schemars::schema_for!(ClientFrame);
    let server = schemars::schema_for!(ServerMessage);
    let rest = schemars::schema_for!(rest::RestSchemas);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("Calldock signaling protocol {PROTOCOL_VERSION}"),
        "description": "Generated from the calldock-protocol crate; do not edit by hand.",
        "properties": {
            "client_frame": client,
            "server_frame": server,
            "rest": rest,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frame_round_trips_with_flat_type_and_id() {
        let frame = ClientFrame {
            id: "r1".into(),
            message: ClientMessage::CallInvite {
                call_id: "c1".into(),
                to: "bob".into(),
                media: Media::Audio,
                conversation: None,
            },
        };
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(text, r#"{"id":"r1","type":"call.invite","call_id":"c1","to":"bob","media":"audio"}"#);
        assert_eq!(parse_client_frame(&text).unwrap(), frame);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let frame = parse_client_frame(r#"{"id":"r","type":"ping","future":[1,2]}"#).unwrap();
        assert_eq!(frame.message, ClientMessage::Ping {});
    }

    #[test]
    fn bad_frames_get_distinct_codes() {
        let code = |t: &str| parse_client_frame(t).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code("[1]"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"ping"}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"id":"1","type":"call.teleport"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"id":"1","type":"call.invite","to":5}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(&format!(r#"{{"id":"1","type":"ping","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES))),
            ErrorCode::FrameTooLarge
        );
        let err = parse_client_frame(r#"{"id":"7","type":"nope"}"#).unwrap_err();
        assert_eq!(err.re, Some(RequestId::new("7")), "an error for a frame with an id is a reply");
    }

    #[test]
    fn kinds_lists_every_variant() {
        let samples = [
            r#"{"id":"1","type":"hello","protocol":"1.0","agent":"t"}"#,
            r#"{"id":"1","type":"auth","token":"t"}"#,
            r#"{"id":"1","type":"ping"}"#,
            r#"{"id":"1","type":"presence.watch","users":[]}"#,
            r#"{"id":"1","type":"call.invite","call_id":"c","to":"b","media":"audio"}"#,
            r#"{"id":"1","type":"call.ringing","call_id":"c"}"#,
            r#"{"id":"1","type":"call.accept","call_id":"c","media":"video"}"#,
            r#"{"id":"1","type":"call.decline","call_id":"c","reason":"busy"}"#,
            r#"{"id":"1","type":"call.cancel","call_id":"c"}"#,
            r#"{"id":"1","type":"call.end","call_id":"c"}"#,
            r#"{"id":"1","type":"call.timeout","call_id":"c"}"#,
            r#"{"id":"1","type":"call.add_participant","call_id":"c","user":"d"}"#,
            r#"{"id":"1","type":"call.sync"}"#,
            r#"{"id":"1","type":"sdp","call_id":"c","kind":"offer","sdp":"v=0"}"#,
            r#"{"id":"1","type":"ice","call_id":"c","candidate":""}"#,
            r#"{"id":"1","type":"ice.restart","call_id":"c"}"#,
        ];
        assert_eq!(samples.len(), ClientMessage::KINDS.len());
        for s in samples {
            let frame = parse_client_frame(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert!(ClientMessage::KINDS.contains(&frame.message.kind()));
        }
    }

    #[test]
    fn glare_winner_is_symmetric() {
        let a = CallId::new("0a");
        let b = CallId::new("0b");
        assert_eq!(glare_winner(&a, &b), &a);
        assert_eq!(glare_winner(&b, &a), &a);
    }

    #[test]
    fn direct_conversation_is_the_same_both_ways() {
        assert_eq!(
            ConversationId::direct(&"bob".into(), &"alice".into()),
            ConversationId::direct(&"alice".into(), &"bob".into())
        );
    }

    #[test]
    fn schema_names_every_message() {
        let schema = json_schema().to_string();
        for kind in ClientMessage::KINDS {
            assert!(schema.contains(&format!("\"{kind}\"")), "{kind} missing from schema");
        }
        assert!(schema.contains("\"call.accepted\""));
    }
}
