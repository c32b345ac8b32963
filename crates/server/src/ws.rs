//! One task per WebSocket connection: hello, auth, rate limiting, token expiry, and the
//! two-way pump between the socket and the actor.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use calldock_protocol::{
    ClientMessage, DeviceId, ErrorCode, MAX_FRAME_BYTES, PROTOCOL_VERSION, ProtocolVersion, ServerMessage, UnixMillis,
    UserId, parse_client_frame,
};
use calldock_switchboard::Input;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::actor::{ActorMsg, OUTBOX_CAPACITY, Outbound};
use crate::token::TokenError;
use crate::{AUTH_DEADLINE, SERVER_AGENT, Shared};

/// Frames up to this size are read and answered with `frame_too_large`; larger ones close the
/// connection with 1009, since reading them at all is the cost an attacker wants us to pay.
const HARD_FRAME_LIMIT: usize = 4 * MAX_FRAME_BYTES;

/// Rate-limited requests a connection may rack up before it is closed (failed sign-ins have
/// their own, smaller allowance).
const MAX_REFUSALS: u32 = 1000;
const MAX_AUTH_FAILURES: u32 = 5;

/// WebSocket close codes. 4000–4999 are for applications.
pub mod close_code {
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;
    pub const AUTH_TIMEOUT: u16 = 4000;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const VERSION_MISMATCH: u16 = 4002;
    pub const AUTH_FAILED: u16 = 4003;
}

pub async fn upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    // Most sessions sit idle between small messages: tungstenite's 128 KiB default read buffer
    // per connection was most of a session's memory (docs/benchmarks.md).
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move { Connection::new(socket, shared).run().await })
}

enum Stage {
    AwaitHello,
    AwaitAuth,
    Attached { user: UserId, device: DeviceId, expires_at: UnixMillis },
}

/// A token bucket: `rate` requests a second, bursts of `2 × rate`.
struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self { rate, tokens: 2.0 * rate, at: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(2.0 * self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Connection {
    socket: WebSocket,
    shared: Arc<Shared>,
    session: calldock_switchboard::SessionId,
    stage: Stage,
    limit: RateLimit,
    refusals: u32,
    auth_failures: u32,
    outbox_tx: mpsc::Sender<Outbound>,
    started: Instant,
}

/// Why the loop ended and what to tell the client.
struct Close(u16, &'static str);

impl Connection {
    fn new(socket: WebSocket, shared: Arc<Shared>) -> Self {
        let (outbox_tx, _) = mpsc::channel(1);
        let limit = RateLimit::new(shared.config.rate_per_second);
        Self {
            socket,
            session: shared.new_session(),
            shared,
            stage: Stage::AwaitHello,
            limit,
            refusals: 0,
            auth_failures: 0,
            outbox_tx,
            started: Instant::now(),
        }
    }

    async fn run(mut self) {
        let (outbox_tx, mut outbox) = mpsc::channel(OUTBOX_CAPACITY);
        self.outbox_tx = outbox_tx;
        let mut shutdown = self.shared.shutdown.clone();
        let close = loop {
            let deadline = match &self.stage {
                Stage::Attached { expires_at, .. } => {
                    Instant::now() + Duration::from_millis(expires_at.0.saturating_sub(crate::now().0))
                }
                _ => self.started + AUTH_DEADLINE,
            };
            let attached = matches!(self.stage, Stage::Attached { .. });
            tokio::select! {
                frame = self.socket.recv() => {
                    match frame {
                        None | Some(Ok(Message::Close(_))) => break None,
                        Some(Ok(Message::Text(text))) => {
                            if let Some(close) = self.on_text(text.as_str()).await {
                                break Some(close);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let reply = ServerMessage::error(None, ErrorCode::BadJson, "binary frames are not part of the protocol; send JSON text frames");
                            if self.send(reply).await.is_err() { break None; }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Err(e)) => {
                            tracing::debug!(session = ?self.session, "websocket read failed: {e}");
                            let too_big = e
                                .into_inner()
                                .downcast::<tokio_tungstenite::tungstenite::Error>()
                                .is_ok_and(|e| matches!(*e, tokio_tungstenite::tungstenite::Error::Capacity(_)));
                            break too_big.then_some(Close(close_code::TOO_BIG, "frame too large"));
                        }
                    }
                }
                out = outbox.recv(), if attached => {
                    match out {
                        Some(Outbound::Message(message)) => {
                            if self.send(message).await.is_err() { break None; }
                        }
                        None => break Some(Close(close_code::POLICY, "too slow: messages were not read")),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if attached {
                        let _ = self.send(ServerMessage::error(None, ErrorCode::TokenExpired, "the session token expired; log in again")).await;
                        break Some(Close(close_code::TOKEN_EXPIRED, "token expired"));
                    }
                    break Some(Close(close_code::AUTH_TIMEOUT, "send hello and auth within 10 seconds"));
                }
                _ = async { shutdown.wait_for(|s| *s).await.map(|_| ()) } => break Some(Close(close_code::RESTART, "server restarting")),
            }
        };
        if let Some(Close(code, reason)) = close {
            let _ = self.socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
            // Finish the closing handshake: read until the client's close (or a second), so
            // the socket is not dropped with unread data, which would reset the connection
            // and could destroy the close frame before the client reads it.
            let drain = async {
                while let Some(Ok(frame)) = self.socket.recv().await {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
        if matches!(self.stage, Stage::Attached { .. }) {
            let _ = self
                .shared
                .actor
                .send(ActorMsg::Input { input: Input::Detach { session: self.session }, done: None })
                .await;
        }
    }

    async fn send(&mut self, message: ServerMessage) -> Result<(), axum::Error> {
        let text = serde_json::to_string(&message).unwrap_or_default();
        self.socket.send(Message::Text(text.into())).await
    }

    /// Handles one text frame; returns why to close, if it must.
    async fn on_text(&mut self, text: &str) -> Option<Close> {
        if !self.limit.take() {
            self.refusals += 1;
            if self.refusals > MAX_REFUSALS {
                return Some(Close(close_code::POLICY, "too many requests"));
            }
            let re = parse_client_frame(text).ok().map(|f| f.id);
            let reply = ServerMessage::error(re, ErrorCode::RateLimited, "too many requests; slow down");
            return self.send(reply).await.err().map(|_| Close(close_code::POLICY, "send failed"));
        }
        let frame = match parse_client_frame(text) {
            Ok(frame) => frame,
            Err(e) => return self.send(e.into_reply()).await.err().map(|_| Close(close_code::POLICY, "send failed")),
        };
        let re = frame.id;
        let reply = match frame.message {
            ClientMessage::Hello { protocol, agent: _ } => {
                if let Err(mismatch) = ProtocolVersion::check(protocol, PROTOCOL_VERSION) {
                    let _ = self
                        .send(ServerMessage::error(Some(re), ErrorCode::VersionMismatch, mismatch.to_string()))
                        .await;
                    return Some(Close(close_code::VERSION_MISMATCH, "protocol version mismatch"));
                }
                if matches!(self.stage, Stage::AwaitHello) {
                    self.stage = Stage::AwaitAuth;
                }
                ServerMessage::Welcome {
                    re,
                    protocol: PROTOCOL_VERSION,
                    server: SERVER_AGENT.into(),
                    max_frame_bytes: MAX_FRAME_BYTES,
                }
            }
            ClientMessage::Ping {} => ServerMessage::Pong { re, server_time: crate::now() },
            ClientMessage::Auth { token } => match self.auth(&re, &token).await {
                Ok(Some(reply)) => reply,
                Ok(None) => return None,
                Err(reply) => {
                    self.auth_failures += 1;
                    if self.send(reply).await.is_err() || self.auth_failures >= MAX_AUTH_FAILURES {
                        return Some(Close(close_code::AUTH_FAILED, "too many failed sign-ins"));
                    }
                    return None;
                }
            },
            message => {
                if !matches!(self.stage, Stage::Attached { .. }) {
                    ServerMessage::error(
                        Some(re),
                        ErrorCode::NotAuthenticated,
                        "send hello and auth before other requests",
                    )
                } else {
                    let input = Input::Request { session: self.session, id: re, message };
                    if self.shared.actor.send(ActorMsg::Input { input, done: None }).await.is_err() {
                        return Some(Close(close_code::RESTART, "server restarting"));
                    }
                    return None;
                }
            }
        };
        self.send(reply).await.err().map(|_| Close(close_code::POLICY, "send failed"))
    }

    /// Verifies a token; `Ok(None)` when the reply was already sent (first sign-in).
    async fn auth(
        &mut self,
        re: &calldock_protocol::RequestId,
        token: &str,
    ) -> Result<Option<ServerMessage>, ServerMessage> {
        if matches!(self.stage, Stage::AwaitHello) {
            return Err(ServerMessage::error(Some(re.clone()), ErrorCode::NotAuthenticated, "send hello first"));
        }
        let claims = self.shared.signer.verify(token, crate::now()).map_err(|e| {
            let code = match e {
                TokenError::Invalid => ErrorCode::TokenInvalid,
                TokenError::Expired => ErrorCode::TokenExpired,
            };
            ServerMessage::error(Some(re.clone()), code, e.to_string())
        })?;
        if let Stage::Attached { user, device, .. } = &self.stage
            && (user != &claims.user || device != &claims.device)
        {
            return Err(ServerMessage::error(
                Some(re.clone()),
                ErrorCode::BadRequest,
                format!("this connection is signed in as {user}; open a new connection for another account"),
            ));
        }
        let display_name =
            self.shared.store.display_name(&claims.user).ok().flatten().unwrap_or_else(|| claims.user.to_string());
        let reply = ServerMessage::Authenticated {
            re: re.clone(),
            user: claims.user.clone(),
            display_name,
            device: claims.device.clone(),
            expires_at: claims.expires_at,
        };
        if !matches!(self.stage, Stage::Attached { .. }) {
            // The reply goes out before the attach, so it precedes any invite the attach sends.
            let _ = self.send(reply.clone()).await;
            let attach = ActorMsg::Attach {
                session: self.session,
                user: claims.user.clone(),
                device: claims.device.clone(),
                outbox: self.outbox_tx.clone(),
            };
            self.stage = Stage::Attached { user: claims.user, device: claims.device, expires_at: claims.expires_at };
            if self.shared.actor.send(attach).await.is_err() {
                return Err(ServerMessage::error(Some(re.clone()), ErrorCode::Internal, "server is shutting down"));
            }
            self.auth_failures = 0;
            return Ok(None);
        }
        self.stage = Stage::Attached { user: claims.user, device: claims.device, expires_at: claims.expires_at };
        Ok(Some(reply))
    }
}
