//! Opening the signaling WebSocket: connect, hello, auth.

use std::time::Duration;

use calldock_protocol::{
    ClientFrame, ClientMessage, ErrorCode, PROTOCOL_VERSION, ProtocolVersion, RequestId, ServerMessage, UnixMillis,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{EngineError, ServerUrl};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub const AGENT: &str = concat!("calldock/", env!("CARGO_PKG_VERSION"));

pub fn frame(id: &str, message: ClientMessage) -> Message {
    let frame = ClientFrame { id: RequestId(id.to_owned()), message };
    Message::Text(serde_json::to_string(&frame).unwrap_or_default().into())
}

/// Connects, checks the protocol version, authenticates. Returns the token's expiry.
pub async fn open(server: &ServerUrl, token: &str) -> Result<(Socket, UnixMillis), EngineError> {
    let url = server.websocket();
    let unreachable = |detail: String| EngineError::Unreachable { url: server.as_str().into(), detail };
    let (mut socket, _) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async_with_config(&url, None, true))
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
    socket
        .send(frame("e-hello", ClientMessage::Hello { protocol: PROTOCOL_VERSION, agent: AGENT.into() }))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    match reply(server, &mut socket, "e-hello").await? {
        ServerMessage::Welcome { protocol, .. } => ProtocolVersion::check(PROTOCOL_VERSION, protocol)?,
        ServerMessage::Error { code: ErrorCode::VersionMismatch, message, .. } => {
            // Name both versions; the info endpoint says the server's. If even that fails,
            // the server's own message names both.
            return Err(match crate::rest::info(server).await {
                Ok(info) => EngineError::VersionMismatch(calldock_protocol::VersionMismatch {
                    client: PROTOCOL_VERSION,
                    server: info.protocol,
                }),
                Err(_) => EngineError::Refused { code: ErrorCode::VersionMismatch, message },
            });
        }
        other => return Err(unexpected(server, "hello", &other)),
    }
    socket
        .send(frame("e-auth", ClientMessage::Auth { token: token.into() }))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    match reply(server, &mut socket, "e-auth").await? {
        ServerMessage::Authenticated { expires_at, .. } => Ok((socket, expires_at)),
        ServerMessage::Error { code, message, .. } => Err(EngineError::SessionRefused { code, message }),
        other => Err(unexpected(server, "auth", &other)),
    }
}

fn unexpected(server: &ServerUrl, request: &str, reply: &ServerMessage) -> EngineError {
    EngineError::Protocol { url: server.as_str().into(), detail: format!("{request} was answered with {reply:?}") }
}

/// Reads until the reply to `id`; events before it are not expected during the handshake.
async fn reply(server: &ServerUrl, socket: &mut Socket, id: &str) -> Result<ServerMessage, EngineError> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await.map_err(|_| EngineError::Unreachable {
            url: server.as_str().into(),
            detail: "the server did not answer the handshake within 10 s".into(),
        })?;
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                return Err(EngineError::Unreachable {
                    url: server.as_str().into(),
                    detail: format!(
                        "the server closed the connection: {}",
                        frame.map(|f| f.reason.to_string()).unwrap_or_default()
                    ),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return Err(EngineError::Unreachable { url: server.as_str().into(), detail: e.to_string() });
            }
            None => {
                return Err(EngineError::Unreachable {
                    url: server.as_str().into(),
                    detail: "connection closed".into(),
                });
            }
        };
        let message: ServerMessage = serde_json::from_str(text.as_str()).map_err(|e| EngineError::Protocol {
            url: server.as_str().into(),
            detail: format!("unreadable frame: {e}"),
        })?;
        if message.reply_to().map(|r| r.as_str()) == Some(id) {
            return Ok(message);
        }
    }
}
