//! REST calls: login, token refresh, TURN credentials, history.

use calldock_protocol::{ErrorCode, History, LoginRequest, RestError, ServerInfo, Session, TurnCredentials, WS_PATH};
use serde::de::DeserializeOwned;

use crate::{EngineConfig, EngineError};

/// A server base URL, checked once: `http(s)://host[:port]` with no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: url::Url,
}

impl ServerUrl {
    pub fn parse(text: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::BadServerUrl { url: text.to_owned() };
        let base = url::Url::parse(text.trim()).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() || base.cannot_be_a_base() {
            return Err(bad());
        }
        Ok(Self { base })
    }

    pub fn http(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    pub fn websocket(&self) -> String {
        let http = self.http(WS_PATH);
        match http.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => http.replacen("http://", "ws://", 1),
        }
    }

    pub fn as_str(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap_or_default()
}

async fn decode<T: DeserializeOwned>(server: &ServerUrl, response: reqwest::Response) -> Result<T, RestFailure> {
    let status = response.status();
    let body = response.text().await.map_err(|e| RestFailure::Transport(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&body).map_err(|e| {
            RestFailure::Engine(EngineError::Protocol {
                url: server.as_str().into(),
                detail: format!("bad REST reply: {e}"),
            })
        });
    }
    match serde_json::from_str::<RestError>(&body) {
        Ok(e) => Err(RestFailure::Server(e.code, e.message)),
        Err(_) => Err(RestFailure::Engine(EngineError::Protocol {
            url: server.as_str().into(),
            detail: format!("HTTP {status} without a protocol error body"),
        })),
    }
}

enum RestFailure {
    Transport(String),
    Server(ErrorCode, String),
    Engine(EngineError),
}

impl RestFailure {
    fn into_engine(self, server: &ServerUrl) -> EngineError {
        match self {
            RestFailure::Transport(detail) => EngineError::Unreachable { url: server.as_str().into(), detail },
            RestFailure::Server(
                code @ (ErrorCode::TokenExpired | ErrorCode::TokenInvalid | ErrorCode::NotAuthenticated),
                message,
            ) => EngineError::SessionRefused { code, message },
            RestFailure::Server(code, message) => EngineError::Refused { code, message },
            RestFailure::Engine(e) => e,
        }
    }
}

fn transport(e: reqwest::Error) -> RestFailure {
    // reqwest's top-level message is generic; the source says what actually failed.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    RestFailure::Transport(detail)
}

pub async fn login(server: &ServerUrl, config: &EngineConfig) -> Result<Session, EngineError> {
    let request = LoginRequest {
        user: config.user.clone(),
        display_name: config.display_name.clone(),
        device: config.device.clone(),
        ttl_seconds: None,
    };
    let response = client()
        .post(server.http("/v1/login"))
        .json(&request)
        .send()
        .await
        .map_err(|e| transport(e).into_engine(server))?;
    decode(server, response).await.map_err(|f| match f {
        RestFailure::Server(_, message) => EngineError::LoginRefused { user: config.user.clone(), message },
        other => other.into_engine(server),
    })
}

pub async fn info(server: &ServerUrl) -> Result<ServerInfo, EngineError> {
    let response = client().get(server.http("/v1/info")).send().await.map_err(|e| transport(e).into_engine(server))?;
    decode(server, response).await.map_err(|f| f.into_engine(server))
}

pub async fn refresh(server: &ServerUrl, token: &str) -> Result<Session, EngineError> {
    let response = client()
        .post(server.http("/v1/token/refresh"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| transport(e).into_engine(server))?;
    decode(server, response).await.map_err(|f| f.into_engine(server))
}

/// Short-lived TURN credentials and the STUN/TURN URIs to use them with. `timeout` bounds
/// the whole request: a call waits for it before gathering candidates.
pub async fn turn(
    server: &ServerUrl,
    token: &str,
    timeout: std::time::Duration,
) -> Result<TurnCredentials, EngineError> {
    let response = client()
        .get(server.http("/v1/turn"))
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport(e).into_engine(server))?;
    decode(server, response).await.map_err(|f| f.into_engine(server))
}

pub async fn history(server: &ServerUrl, token: &str, limit: usize) -> Result<History, EngineError> {
    let response = client()
        .get(server.http(&format!("/v1/history?limit={limit}")))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| transport(e).into_engine(server))?;
    decode(server, response).await.map_err(|f| f.into_engine(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(ServerUrl::parse("http://127.0.0.1:7878").unwrap().websocket(), "ws://127.0.0.1:7878/v1/ws");
        assert_eq!(ServerUrl::parse("https://calls.example/").unwrap().websocket(), "wss://calls.example/v1/ws");
        for bad in ["", "localhost:7878", "ftp://x", "not a url", "http://"] {
            let err = ServerUrl::parse(bad).unwrap_err();
            assert_eq!(err.code(), "bad_server_url", "{bad}");
            assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
        }
    }
}
