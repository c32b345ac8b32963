//! The REST half of the protocol: bodies of `/v1/*` requests and responses.
//!
//! | method and path        | auth   | body → response                      |
//! |------------------------|--------|--------------------------------------|
//! | `GET /v1/info`         | none   | → [`ServerInfo`]                     |
//! | `POST /v1/login`       | none   | [`LoginRequest`] → [`Session`]       |
//! | `POST /v1/token/refresh` | bearer | → [`Session`]                      |
//! | `GET /v1/turn`         | bearer | → [`TurnCredentials`]                |
//! | `GET /v1/history?limit=N` | bearer | → [`History`]                     |
//!
//! Failures answer with a 4xx/5xx status and a [`RestError`] body.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{CallSnapshot, DeviceId, ErrorCode, ProtocolVersion, UnixMillis, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServerInfo {
    pub protocol: ProtocolVersion,
    pub server: String,
}

/// A development login: the reference server issues a token for any user name. A real
/// deployment puts its own identity provider here; the token format stays opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoginRequest {
    pub user: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The client's stable device id; the server makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// Ask for a shorter-lived token (at least 1 s); servers never lengthen their maximum.
    /// Conformance checks use it to see an expired token without waiting an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A bearer token and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub token: String,
    pub user: UserId,
    pub display_name: String,
    pub device: DeviceId,
    pub expires_at: UnixMillis,
}

/// Short-lived TURN credentials in the TURN REST scheme: `username` is `expiry:user`,
/// `credential` is base64(HMAC-SHA1(shared secret, username)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TurnCredentials {
    pub username: String,
    pub credential: String,
    pub ttl_seconds: u64,
    /// `stun:` and `turn:` URIs. With no TURN configured, only the STUN URIs (if any), and
    /// `username`/`credential` are empty.
    pub uris: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Outgoing,
    Incoming,
}

/// One call in a user's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    pub direction: Direction,
    /// An incoming call nobody on this user's devices answered.
    pub missed: bool,
    pub call: CallSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct History {
    pub calls: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RestError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

/// Groups the REST bodies so one schema covers them all.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub(crate) struct RestSchemas {
    info: ServerInfo,
    login_request: LoginRequest,
    session: Session,
    turn: TurnCredentials,
    history: History,
    error: RestError,
}
