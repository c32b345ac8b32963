//! The engine API: what the CLI and the desktop shell call. It signs in, keeps one signaling
//! connection alive (token refresh, reconnect with backoff, call resync) and drives the call
//! core ([`calldock_call::Phone`]) with the real clock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calldock_engine::EngineError> {
//! use calldock_engine::{Engine, EngineConfig, EngineEvent};
//! let (engine, mut events) = Engine::connect(EngineConfig::new("http://127.0.0.1:7878", "alice")).await?;
//! let call = engine.call("echo".into(), calldock_protocol::Media::Audio).await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! With [`media::MediaConfig::SignalingOnly`] a call counts as connected once answered; with
//! `Audio`, each call gets a WebRTC peer and the audio pipeline ([`media`]).

use std::time::Duration;

use calldock_call::{CallEvent, CallView, Command, CommandError, PhoneConfig};
use calldock_protocol::{CallId, DeviceId, ErrorCode, History, Media, UnixMillis, UserId, VersionMismatch};
use tokio::sync::{mpsc, oneshot};

pub mod alerts;
mod driver;
pub mod ice_restart;
pub mod ice_servers;
pub mod media;
mod rest;
mod socket;
mod sound;
pub mod video;
pub mod video_rate;

pub use calldock_call as call;
pub use rest::ServerUrl;

/// How to reach the server and who we are.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Base URL, e.g. `http://127.0.0.1:7878`.
    pub server: String,
    pub user: UserId,
    pub display_name: Option<String>,
    /// This installation's id; a random one is made when absent.
    pub device: Option<DeviceId>,
    pub phone: PhoneConfig,
    /// First reconnect delay; it doubles up to `reconnect_max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub media: media::MediaConfig,
    /// A session token kept from an earlier run (the desktop shell keeps it in the OS
    /// keychain). [`Engine::connect`] renews it instead of signing in afresh when it still
    /// belongs to this user and device; otherwise it signs in as usual.
    pub saved_token: Option<String>,
}

impl EngineConfig {
    pub fn new(server: impl Into<String>, user: impl Into<UserId>) -> Self {
        Self {
            server: server.into(),
            user: user.into(),
            display_name: None,
            device: None,
            phone: PhoneConfig::default(),
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            media: media::MediaConfig::SignalingOnly,
            saved_token: None,
        }
    }
}

/// The signaling connection's state, as a UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalingState {
    Connected {
        user: UserId,
        device: DeviceId,
        expires_at: UnixMillis,
    },
    /// Lost; the next attempt is in `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        reason: String,
    },
    /// Given up: reconnecting cannot help (version mismatch, account refused).
    Failed(EngineError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    Call(CallEvent),
    Signaling(SignalingState),
    /// The session token was renewed before it expired.
    TokenRefreshed {
        expires_at: UnixMillis,
    },
    /// Once a second during a call with media.
    Stats {
        call_id: CallId,
        stats: media::CallStats,
    },
    /// A watched user's presence ([`Engine::watch_presence`]): their status when the watch
    /// starts (and again after each reconnect), then every change.
    Presence {
        user: UserId,
        status: calldock_protocol::PresenceStatus,
    },
    /// A microphone or speaker in a call changed without being asked (it failed and the
    /// default took over, or the chosen one came back), or a requested switch failed.
    Device {
        call_id: CallId,
        change: media::DeviceChange,
    },
    /// A picture of the other side in a video call, as decoded (about 30 a second; the UI
    /// shows the latest).
    Video {
        call_id: CallId,
        picture: std::sync::Arc<calldock_video::Picture>,
    },
    /// A thumbnail of what our camera sends in a video call (at most
    /// [`video::SELF_VIEW`], [`video::SELF_VIEW_FPS`] a second), for the self view. None
    /// while the camera is off.
    SelfView {
        call_id: CallId,
        picture: std::sync::Arc<calldock_video::Picture>,
    },
    /// Our camera stopped mid-call (unplugged, taken by another program): the call goes on
    /// without our picture. `reason` says what happened and what to do. Choosing a camera
    /// ([`Engine::set_camera`]) starts it again.
    CameraFailed {
        call_id: CallId,
        reason: String,
    },
    /// A camera switch ([`Engine::set_camera`]) failed: the call goes on with the camera it
    /// had. `reason` says why.
    CameraRefused {
        call_id: CallId,
        reason: String,
    },
}

/// Errors a person can act on; [`EngineError::code`] is stable for UIs and scripts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The configured server address is not a URL this client can use.
    #[error("\"{url}\" is not a server URL: use http://HOST:PORT or https://HOST")]
    BadServerUrl { url: String },
    /// Nothing answered at the server's address.
    #[error("cannot reach the server at {url} ({detail}): check the address and that the server is running")]
    Unreachable { url: String, detail: String },
    /// Client and server speak different major protocol versions.
    #[error(transparent)]
    VersionMismatch(#[from] VersionMismatch),
    /// The session token was refused; signing in again gets a new one.
    #[error("the server refused the session ({code}): {message}; sign in again")]
    SessionRefused { code: ErrorCode, message: String },
    /// The server refused to sign this user in.
    #[error("the server refused to sign in {user}: {message}")]
    LoginRefused { user: UserId, message: String },
    /// The server refused a request.
    #[error("the server refused the request ({code}): {message}")]
    Refused { code: ErrorCode, message: String },
    /// The server sent something that is not the Calldock protocol.
    #[error("the server at {url} does not speak the Calldock protocol: {detail}")]
    Protocol { url: String, detail: String },
    /// A command that makes no sense right now.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The engine has stopped.
    #[error("the call engine has stopped")]
    Stopped,
}

impl EngineError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadServerUrl { .. } => "bad_server_url",
            Self::Unreachable { .. } => "server_unreachable",
            Self::VersionMismatch(_) => "version_mismatch",
            Self::SessionRefused { code: ErrorCode::TokenExpired, .. } => "token_expired",
            Self::SessionRefused { .. } => "session_refused",
            Self::LoginRefused { .. } => "login_refused",
            Self::Refused { .. } => "request_refused",
            Self::Protocol { .. } => "protocol_error",
            Self::Command(_) => "invalid_command",
            Self::Stopped => "engine_stopped",
        }
    }

    /// Whether retrying later can help (the driver keeps reconnecting on these).
    pub fn transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Stopped)
            || matches!(self, Self::Refused { code, .. } if code.retryable())
    }
}

enum Request {
    Command(Command, oneshot::Sender<Result<(), CommandError>>),
    Calls(oneshot::Sender<Vec<CallView>>),
    HangUpAll(oneshot::Sender<Result<usize, EngineError>>),
    SetMuted(bool),
    SetCameraOff(bool),
    SetCamera(media::CameraSource),
    SetMicrophone(media::Microphone),
    SetSpeaker(media::Speaker),
    WatchPresence(Vec<UserId>),
    Close(oneshot::Sender<()>),
}

/// A signed-in client. Cloning shares the same connection.
#[derive(Clone)]
pub struct Engine {
    requests: mpsc::Sender<Request>,
    server: ServerUrl,
    session: std::sync::Arc<std::sync::Mutex<calldock_protocol::Session>>,
}

impl Engine {
    /// Signs in and connects. Fails fast when the first connection cannot be made; after that,
    /// connection losses are handled inside (see [`SignalingState`]).
    pub async fn connect(config: EngineConfig) -> Result<(Engine, mpsc::Receiver<EngineEvent>), EngineError> {
        let server = ServerUrl::parse(&config.server)?;
        let session = match config.saved_token.as_deref() {
            Some(token) => match rest::refresh(&server, token).await {
                Ok(session)
                    if session.user == config.user && config.device.as_ref().is_none_or(|d| *d == session.device) =>
                {
                    session
                }
                Err(e) if e.transient() => return Err(e),
                // Expired, revoked, signed by another server or for another account: the saved
                // token is only a shortcut, so sign in afresh.
                _ => rest::login(&server, &config).await?,
            },
            None => rest::login(&server, &config).await?,
        };
        let (socket, authenticated) = socket::open(&server, &session.token).await?;
        let (events_tx, events) = mpsc::channel(1024);
        let (requests, requests_rx) = mpsc::channel(64);
        let shared_session = std::sync::Arc::new(std::sync::Mutex::new(session.clone()));
        let _ = events_tx.try_send(EngineEvent::Signaling(SignalingState::Connected {
            user: session.user.clone(),
            device: session.device.clone(),
            expires_at: authenticated,
        }));
        let driver = driver::Driver::new(config, server.clone(), session, shared_session.clone(), socket, events_tx);
        tokio::spawn(driver.run(requests_rx));
        Ok((Engine { requests, server, session: shared_session }, events))
    }

    pub fn user(&self) -> UserId {
        self.session.lock().map(|s| s.user.clone()).unwrap_or_else(|p| p.into_inner().user.clone())
    }

    /// The current session token (it changes on every renewal and reconnect), for a caller that
    /// keeps it between runs ([`EngineConfig::saved_token`]). A secret: never log it.
    pub fn session_token(&self) -> String {
        self.session.lock().map(|s| s.token.clone()).unwrap_or_else(|p| p.into_inner().token.clone())
    }

    pub fn device(&self) -> DeviceId {
        self.session.lock().map(|s| s.device.clone()).unwrap_or_else(|p| p.into_inner().device.clone())
    }

    async fn command(&self, command: Command) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Command(command, tx)).await.map_err(|_| EngineError::Stopped)?;
        Ok(rx.await.map_err(|_| EngineError::Stopped)??)
    }

    /// Starts a call; its progress comes as [`EngineEvent::Call`] events.
    pub async fn call(&self, to: UserId, media: Media) -> Result<CallId, EngineError> {
        let call_id = CallId(format!("{:032x}", rand::random::<u128>()));
        self.command(Command::Call { call_id: call_id.clone(), to, media }).await?;
        Ok(call_id)
    }

    pub async fn accept(&self, call_id: CallId, media: Media) -> Result<(), EngineError> {
        self.command(Command::Accept { call_id, media }).await
    }

    pub async fn decline(&self, call_id: CallId) -> Result<(), EngineError> {
        self.command(Command::Decline { call_id }).await
    }

    pub async fn hangup(&self, call_id: CallId) -> Result<(), EngineError> {
        self.command(Command::Hangup { call_id }).await
    }

    /// Mutes or unmutes this device's microphone in every call (and calls to come). The
    /// call and its track go on; the other side hears silence.
    pub async fn set_muted(&self, muted: bool) -> Result<(), EngineError> {
        self.requests.send(Request::SetMuted(muted)).await.map_err(|_| EngineError::Stopped)
    }

    /// Turns the camera off or on again in every video call (and video calls to come). The
    /// call goes on; while it is off nothing of our picture is sent.
    pub async fn set_camera_off(&self, off: bool) -> Result<(), EngineError> {
        self.requests.send(Request::SetCameraOff(off)).await.map_err(|_| EngineError::Stopped)
    }

    /// Switches the camera in every video call (and video calls to come) without
    /// renegotiating: the other side's picture changes at the next frame. A camera that cannot
    /// be opened leaves a call on its current one and says so in an
    /// [`EngineEvent::CameraRefused`]; after a camera failed ([`EngineEvent::CameraFailed`]),
    /// the chosen one starts.
    pub async fn set_camera(&self, camera: media::CameraSource) -> Result<(), EngineError> {
        self.requests.send(Request::SetCamera(camera)).await.map_err(|_| EngineError::Stopped)
    }

    /// Switches the microphone in every call (and calls to come) without renegotiating: the
    /// call goes on. A device that cannot be opened leaves a call on its current one and says
    /// so in an [`EngineEvent::Device`].
    pub async fn set_microphone(&self, microphone: media::Microphone) -> Result<(), EngineError> {
        self.requests.send(Request::SetMicrophone(microphone)).await.map_err(|_| EngineError::Stopped)
    }

    /// Switches the speaker in every call (and calls to come), like [`Engine::set_microphone`].
    pub async fn set_speaker(&self, speaker: media::Speaker) -> Result<(), EngineError> {
        self.requests.send(Request::SetSpeaker(speaker)).await.map_err(|_| EngineError::Stopped)
    }

    /// Follows these users' presence (added to those already watched; the watch outlives
    /// reconnects): each one's status comes as an [`EngineEvent::Presence`] now, and again at
    /// every change.
    pub async fn watch_presence(&self, users: Vec<UserId>) -> Result<(), EngineError> {
        self.requests.send(Request::WatchPresence(users)).await.map_err(|_| EngineError::Stopped)
    }

    /// This device's calls: live ones, then recently ended ones.
    pub async fn calls(&self) -> Result<Vec<CallView>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Calls(tx)).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Ends every call of this device that the server knows, including calls another process
    /// holds with the same device id: cancels calls ringing out, declines calls ringing in
    /// (on all of the user's devices), leaves calls in progress. Returns how many it ended.
    pub async fn hang_up_all(&self) -> Result<usize, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::HangUpAll(tx)).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// The user's call history from the server, newest first.
    pub async fn history(&self, limit: usize) -> Result<History, EngineError> {
        let token = self.session.lock().map(|s| s.token.clone()).unwrap_or_else(|p| p.into_inner().token.clone());
        rest::history(&self.server, &token, limit).await
    }

    /// Hangs nothing up: closes the connection (the server ends calls whose device does not
    /// come back within its grace period).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
