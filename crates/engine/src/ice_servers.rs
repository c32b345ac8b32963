//! The STUN and TURN servers calls use: the ones the signaling server hands out at
//! `GET /v1/turn`, with TURN REST credentials that expire (the expiry is in the username).
//!
//! One cache per engine: a call (or an ICE restart) reuses credentials while more than half of
//! their lifetime is left and fetches fresh ones after that, so a call never starts with
//! credentials about to lapse. A server that cannot hand any out does not stop a call: it goes
//! on with what it has (stale credentials still serve an allocation made with them, coturn
//! keeps a session's key), or with host candidates only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use calldock_peer::IceServer;
use calldock_protocol::{Session, TurnCredentials};
use tokio::time::Instant;

use crate::ServerUrl;
use crate::rest;

/// How long a call waits for credentials before it gathers candidates without them.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// After a failed fetch, how long stale credentials serve before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Servers handed out without TURN (STUN only, or nothing) do not expire; ask again now and
/// then in case the server gained TURN.
const WITHOUT_TURN_KEEP: Duration = Duration::from_secs(600);

pub struct IceServerCache {
    server: ServerUrl,
    session: Arc<Mutex<Session>>,
    fetched: tokio::sync::Mutex<Option<Fetched>>,
}

struct Fetched {
    servers: Vec<IceServer>,
    renew_at: Instant,
}

impl IceServerCache {
    pub(crate) fn new(server: ServerUrl, session: Arc<Mutex<Session>>) -> Self {
        Self { server, session, fetched: tokio::sync::Mutex::new(None) }
    }

    /// The servers to gather candidates with now.
    pub async fn current(&self) -> Vec<IceServer> {
        let mut fetched = self.fetched.lock().await;
        if let Some(f) = fetched.as_ref()
            && Instant::now() < f.renew_at
        {
            return f.servers.clone();
        }
        let token = self.session.lock().map(|s| s.token.clone()).unwrap_or_else(|p| p.into_inner().token.clone());
        match rest::turn(&self.server, &token, FETCH_TIMEOUT).await {
            Ok(credentials) => {
                let servers = ice_servers(&credentials);
                tracing::debug!(
                    ?servers,
                    ttl_seconds = credentials.ttl_seconds,
                    "ICE servers from the signaling server"
                );
                *fetched =
                    Some(Fetched { servers: servers.clone(), renew_at: Instant::now() + keep_for(&credentials) });
                servers
            }
            Err(e) => {
                // Keep stale credentials a while before asking again: an ICE restart waits for
                // this fetch, and restarts come every few seconds while the network is down.
                if let Some(f) = fetched.as_mut() {
                    f.renew_at = Instant::now() + RETRY_AFTER_FAILURE;
                }
                let kept = fetched.as_ref().map(|f| f.servers.clone()).unwrap_or_default();
                tracing::warn!(
                    "no TURN credentials from the server ({e}); the call goes on with {}",
                    if kept.is_empty() { "direct (host) candidates only" } else { "the previous credentials" }
                );
                kept
            }
        }
    }
}

/// Half the credentials' lifetime: a call or restart that starts with them still has the other
/// half to allocate relays.
fn keep_for(credentials: &TurnCredentials) -> Duration {
    if credentials.ttl_seconds == 0 { WITHOUT_TURN_KEEP } else { Duration::from_secs(credentials.ttl_seconds) / 2 }
}

/// TURN URIs carry the credentials; STUN URIs take none.
pub fn ice_servers(credentials: &TurnCredentials) -> Vec<IceServer> {
    let (stun, turn): (Vec<String>, Vec<String>) =
        credentials.uris.iter().cloned().partition(|u| u.to_ascii_lowercase().starts_with("stun"));
    let mut servers = Vec::new();
    if !turn.is_empty() {
        servers.push(IceServer {
            urls: turn,
            username: credentials.username.clone(),
            credential: credentials.credential.clone(),
        });
    }
    if !stun.is_empty() {
        servers.push(IceServer { urls: stun, username: String::new(), credential: String::new() });
    }
    servers
}

/// Whether any server can give relay candidates.
pub fn has_turn(servers: &[IceServer]) -> bool {
    servers.iter().flat_map(|s| &s.urls).any(|u| u.to_ascii_lowercase().starts_with("turn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(ttl_seconds: u64, uris: &[&str]) -> TurnCredentials {
        TurnCredentials {
            username: "1700000600:alice".into(),
            credential: "c2VjcmV0".into(),
            ttl_seconds,
            uris: uris.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn turn_uris_get_the_credentials_and_stun_uris_none() {
        let servers = ice_servers(&credentials(600, &["turn:127.0.0.1:3478", "stun:127.0.0.1:3478"]));
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["turn:127.0.0.1:3478"]);
        assert_eq!(servers[0].username, "1700000600:alice");
        assert_eq!(servers[1].urls, ["stun:127.0.0.1:3478"]);
        assert!(servers[1].username.is_empty() && servers[1].credential.is_empty());
        assert!(has_turn(&servers));
        assert!(!has_turn(&servers[1..]));
        assert!(ice_servers(&credentials(0, &[])).is_empty());
    }

    #[test]
    fn credentials_are_renewed_at_half_their_lifetime() {
        assert_eq!(keep_for(&credentials(600, &["turn:x"])), Duration::from_secs(300));
        assert_eq!(keep_for(&credentials(0, &["stun:x"])), WITHOUT_TURN_KEEP);
    }

    async fn signed_in(config: calldock_server::ServerConfig) -> (calldock_server::RunningServer, IceServerCache) {
        let server = calldock_server::start(config).await.unwrap();
        let url = ServerUrl::parse(&server.base_url()).unwrap();
        let engine_config = crate::EngineConfig::new(server.base_url(), "alice");
        let session = rest::login(&url, &engine_config).await.unwrap();
        (server, IceServerCache::new(url, Arc::new(Mutex::new(session))))
    }

    #[tokio::test]
    async fn fetches_from_the_server_and_reuses_fresh_credentials() {
        let config = calldock_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            turn: Some(calldock_server::TurnConfig {
                shared_secret: "s".into(),
                uris: vec!["turn:127.0.0.1:3478".into()],
                ttl_seconds: 600,
            }),
            stun_uris: vec!["stun:127.0.0.1:3478".into()],
            ..calldock_server::ServerConfig::default()
        };
        let (server, cache) = signed_in(config).await;
        let first = cache.current().await;
        assert!(has_turn(&first), "{first:?}");
        assert!(first[0].username.ends_with(":alice"), "{first:?}");
        assert_eq!(
            first[0].credential,
            calldock_server::turn::password("s", &first[0].username),
            "coturn with the same secret accepts them"
        );
        // Fresh credentials are reused, even once the server is gone.
        server.shutdown().await;
        assert_eq!(cache.current().await, first);
    }

    #[tokio::test]
    async fn an_unreachable_server_means_no_servers_not_an_error() {
        let (server, cache) = signed_in(calldock_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..calldock_server::ServerConfig::default()
        })
        .await;
        server.shutdown().await;
        assert!(cache.current().await.is_empty());
    }
}
