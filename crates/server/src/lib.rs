//! The Calldock reference signaling server: WebSocket + REST around the switchboard.
//!
//! - One actor task owns the [`Switchboard`] and the session outboxes; every connection task
//!   sends it inputs through a bounded channel. The actor commits the records an input produced
//!   to SQLite before it delivers any message that input produced.
//! - Connection tasks parse frames, answer `hello`, `auth` and `ping` themselves, rate-limit,
//!   and serialize outgoing messages, so the actor does routing only.
//! - A slow client whose outbox fills up is disconnected rather than allowed to stall the actor.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::serve::ListenerExt;
use calldock_protocol::{DeviceId, ECHO_USER, UnixMillis, UserId};
use calldock_switchboard::{Input, SessionId, Switchboard, SwitchboardConfig};
use tokio::sync::{mpsc, oneshot, watch};

mod actor;
mod echo;
mod echo_media;
mod rest;
pub mod store;
pub mod token;
pub mod turn;
mod ws;

pub use echo::ECHO_DISPLAY_NAME;
pub use store::Store;
pub use turn::TurnConfig;

/// How the server runs. `Default` is the embedded server's setting: loopback, in-memory.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// SQLite file; `None` keeps everything in memory (lost on exit).
    pub db: Option<PathBuf>,
    pub token_ttl_ms: u64,
    pub ring_timeout_ms: u64,
    pub detach_grace_ms: u64,
    pub turn: Option<TurnConfig>,
    /// `stun:` URIs handed out with TURN credentials.
    pub stun_uris: Vec<String>,
    /// Requests one connection may send per second, sustained (bursts of twice that pass).
    pub rate_per_second: u32,
    /// The echo bot's peer connections (where it gathers candidates, which ICE servers).
    pub echo_peer: calldock_peer::PeerSettings,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: None,
            token_ttl_ms: 60 * 60_000,
            ring_timeout_ms: calldock_protocol::RING_TIMEOUT_MS,
            detach_grace_ms: 30_000,
            turn: None,
            stun_uris: Vec::new(),
            rate_per_second: 100,
            // Loopback unless told otherwise: a server started for tests or embedded for one
            // user talks to clients on the same machine.
            echo_peer: calldock_peer::PeerSettings::loopback(),
        }
    }
}

/// The server's name and version, sent in `welcome` and `/v1/info`.
pub const SERVER_AGENT: &str = concat!("calldock-server/", env!("CARGO_PKG_VERSION"));

pub(crate) fn now() -> UnixMillis {
    UnixMillis(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
}

/// What the connection tasks and REST handlers share.
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub store: Store,
    pub signer: token::TokenSigner,
    pub actor: mpsc::Sender<actor::ActorMsg>,
    pub next_session: AtomicU64,
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub fn new_session(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }
}

/// A running server. Dropping it leaves the server running until the runtime ends; call
/// [`RunningServer::shutdown`] to stop it and wait.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<()>,
    actor: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `http://ADDR`, the base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every connection (close code 1012, service restart) and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.http.await;
        let _ = self.actor.await;
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) {
        let _ = self.http.await;
    }
}

/// Opens the database, restores users and open calls, binds and serves.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let store = Store::open(config.db.as_deref()).with_context(|| {
        format!(
            "cannot open the database {}",
            config.db.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "in memory".into())
        )
    })?;
    let key = store.secret("token-key", || rand::random::<[u8; 32]>().to_vec())?;
    let signer = token::TokenSigner::new(key);

    let mut switchboard = Switchboard::new(SwitchboardConfig {
        ring_timeout_ms: config.ring_timeout_ms,
        detach_grace_ms: config.detach_grace_ms,
        ..SwitchboardConfig::default()
    });
    let started = now();
    switchboard
        .handle_input(started, Input::Register { user: ECHO_USER.into(), display_name: ECHO_DISPLAY_NAME.into() });
    for (user, display_name) in store.users()? {
        switchboard.handle_input(started, Input::Register { user, display_name });
    }
    for call in store.open_calls()? {
        switchboard.restore_call(started, call);
    }
    switchboard.handle_input(
        started,
        Input::Attach { session: actor::ECHO_SESSION, user: UserId::new(ECHO_USER), device: DeviceId::new("echo-bot") },
    );

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}: is another server using that port?", config.listen))?;
    let addr = listener.local_addr()?;

    let (stop, stop_rx) = watch::channel(false);
    let (actor_tx, actor_rx) = mpsc::channel(16 * 1024);
    let echo_peer = config.echo_peer.clone();
    let actor = tokio::spawn(actor::run(switchboard, store.clone(), actor_rx, stop_rx.clone(), echo_peer));
    let shared = Arc::new(Shared {
        config,
        store,
        signer,
        actor: actor_tx,
        next_session: AtomicU64::new(actor::FIRST_CLIENT_SESSION),
        shutdown: stop_rx.clone(),
    });
    let app = rest::router(shared);
    let mut stop_http = stop_rx;
    let http = tokio::spawn(async move {
        // Signaling is many small messages: without TCP_NODELAY each reply can wait for the
        // peer's delayed ACK (~40 ms), which was most of the call setup time on loopback.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop_http.wait_for(|s| *s).await.map(|_| ());
            });
        if let Err(e) = serve.await {
            tracing::error!("server stopped: {e}");
        }
    });
    tracing::info!("calldock server listening on http://{addr}");
    Ok(RunningServer { addr, stop, http, actor })
}

/// Registers a user through the actor and waits until it is stored.
pub(crate) async fn register_user(shared: &Shared, user: UserId, display_name: String) -> anyhow::Result<()> {
    let (done, wait) = oneshot::channel();
    shared
        .actor
        .send(actor::ActorMsg::Input { input: Input::Register { user, display_name }, done: Some(done) })
        .await
        .context("server is shutting down")?;
    wait.await.context("server is shutting down")?;
    Ok(())
}

pub(crate) const AUTH_DEADLINE: Duration = Duration::from_secs(10);
