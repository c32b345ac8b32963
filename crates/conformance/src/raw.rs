//! A bare protocol client: it sends exactly what it is told, so it can send what a good client
//! never would. The conformance checks and the server tests both drive servers with it.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use calldock_protocol::{
    ClientFrame, ClientMessage, LoginRequest, PROTOCOL_VERSION, RequestId, ServerMessage, Session, WS_PATH,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What came off the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Json(Value),
    /// The server closed the connection, with its close code (1005 when it gave none).
    Closed(u16),
}

pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events that arrived while waiting for a reply, oldest first.
    backlog: VecDeque<Value>,
    pub session: Option<Session>,
}

/// `http://host:port` → `ws://host:port/v1/ws`.
pub fn ws_url(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        bail!("server URL {base:?} must start with http:// or https://");
    };
    Ok(format!("{rest}{WS_PATH}"))
}

pub async fn login(base: &str, user: &str, device: &str) -> anyhow::Result<Session> {
    login_with_ttl(base, user, device, None).await
}

pub async fn login_with_ttl(base: &str, user: &str, device: &str, ttl_seconds: Option<u64>) -> anyhow::Result<Session> {
    let url = format!("{}/v1/login", base.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .json(&LoginRequest {
            user: user.into(),
            display_name: Some(capitalize(user)),
            device: Some(device.into()),
            ttl_seconds,
        })
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("login as {user} failed with {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("login reply is not a session: {body}"))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl RawClient {
    /// Opens the WebSocket and nothing else.
    pub async fn connect(base: &str) -> anyhow::Result<Self> {
        let url = ws_url(base)?;
        // Allow big frames on our side so tests can send them to the server.
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20)).max_frame_size(Some(16 << 20));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
            .await
            .with_context(|| format!("cannot open {url}"))?;
        Ok(Self { ws, next_id: 0, backlog: VecDeque::new(), session: None })
    }

    /// Logs in, connects, says hello and authenticates.
    pub async fn connect_as(base: &str, user: &str, device: &str) -> anyhow::Result<Self> {
        let session = login(base, user, device).await?;
        let mut client = Self::connect(base).await?;
        client.hello().await?;
        client.auth(&session.token).await?;
        client.session = Some(session);
        Ok(client)
    }

    pub async fn hello(&mut self) -> anyhow::Result<ServerMessage> {
        let reply = self
            .request(ClientMessage::Hello { protocol: PROTOCOL_VERSION, agent: "calldock-conformance".into() })
            .await?;
        match reply {
            ServerMessage::Welcome { .. } => Ok(reply),
            other => bail!("hello was answered with {other:?}"),
        }
    }

    pub async fn auth(&mut self, token: &str) -> anyhow::Result<ServerMessage> {
        let reply = self.request(ClientMessage::Auth { token: token.into() }).await?;
        match reply {
            ServerMessage::Authenticated { .. } => Ok(reply),
            other => bail!("auth was answered with {other:?}"),
        }
    }

    pub fn fresh_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(format!("q{}", self.next_id))
    }

    pub async fn send_text(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into().into())).await.context("send failed")
    }

    pub async fn send_message(&mut self, message: Message) -> anyhow::Result<()> {
        self.ws.send(message).await.context("send failed")
    }

    /// Sends a request and waits for its reply (a success or an `error`), keeping events that
    /// arrive meanwhile for [`RawClient::event`].
    pub async fn request(&mut self, message: ClientMessage) -> anyhow::Result<ServerMessage> {
        let id = self.fresh_id();
        let text = serde_json::to_string(&ClientFrame { id: id.clone(), message })?;
        self.send_text(text).await?;
        self.reply_to(&id).await
    }

    /// Sends raw JSON (with whatever `id` it has) and waits for the reply to `id`.
    pub async fn request_json(&mut self, value: Value) -> anyhow::Result<Value> {
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        self.send_text(value.to_string()).await?;
        match id {
            Some(id) => self.reply_value(|v| v.get("re").and_then(Value::as_str) == Some(id.as_str())).await,
            None => self.reply_value(|v| v.get("type").and_then(Value::as_str) == Some("error")).await,
        }
    }

    pub async fn reply_to(&mut self, id: &RequestId) -> anyhow::Result<ServerMessage> {
        let value = self.reply_value(|v| v.get("re").and_then(Value::as_str) == Some(id.as_str())).await?;
        serde_json::from_value(value.clone()).with_context(|| format!("reply is not a protocol message: {value}"))
    }

    async fn reply_value(&mut self, is_it: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        loop {
            match self.socket_frame(Duration::from_secs(5)).await? {
                Frame::Json(v) if is_it(&v) => return Ok(v),
                Frame::Json(v) => self.backlog.push_back(v),
                Frame::Closed(code) => bail!("the server closed the connection (code {code}) instead of replying"),
            }
        }
    }

    /// The next frame from the socket (backlog first), or an error after `wait`.
    pub async fn frame(&mut self, wait: Duration) -> anyhow::Result<Frame> {
        if let Some(v) = self.backlog.pop_front() {
            return Ok(Frame::Json(v));
        }
        self.socket_frame(wait).await
    }

    /// The next frame from the socket itself, skipping the backlog.
    async fn socket_frame(&mut self, wait: Duration) -> anyhow::Result<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("nothing from the server within {wait:?}"))?;
            match next {
                None => return Ok(Frame::Closed(1006)),
                Some(Err(e)) => {
                    let _ = e;
                    return Ok(Frame::Closed(1006));
                }
                Some(Ok(Message::Text(t))) => {
                    let v: Value =
                        serde_json::from_str(t.as_str()).with_context(|| format!("server sent non-JSON: {t}"))?;
                    return Ok(Frame::Json(v));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Frame::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005)));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next event (a message without `re`), waiting up to `wait`.
    pub async fn event(&mut self, wait: Duration) -> anyhow::Result<ServerMessage> {
        match self.frame(wait).await? {
            Frame::Json(v) => serde_json::from_value(v.clone()).with_context(|| format!("not a protocol message: {v}")),
            Frame::Closed(code) => bail!("connection closed (code {code}) while waiting for an event"),
        }
    }

    /// Waits for the first event `pick` accepts, skipping others (presence and the like).
    pub async fn event_where<T>(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.event(left).await?;
            if let Some(t) = pick(&event) {
                return Ok(t);
            }
        }
    }

    /// Fails if any event other than presence arrives within `wait`.
    pub async fn no_call_event(&mut self, wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.frame(left).await {
                Err(_) => return Ok(()),
                Ok(Frame::Json(v)) if v.get("type").and_then(Value::as_str) == Some("presence") => {}
                Ok(other) => bail!("expected silence, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
