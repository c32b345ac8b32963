//! The shell's state and what each command does: settings, the signaling connection through
//! the engine, the built-in server, contacts, devices, the ringer and the doctor.
//!
//! It decides nothing about calls: commands go to [`Engine`] as they come, and engine events go
//! to the UI as they come ([`Outbox`]). It owns only what the engine does not: where settings
//! and the session token are kept, when to (re)connect, and the desktop's ringer and meter.
//!
//! Nothing here knows Tauri's window types: [`Outbox`] is how it reaches the UI and the OS, so
//! the tests drive a whole shell against a real server with a recording outbox.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use calldock_devices::DeviceChoice;
use calldock_devices::camera::{CameraChoice, CameraSource};
use calldock_doctor::{Check, Plan, Report};
use calldock_engine::call::CallEvent;
use calldock_engine::media::{MediaConfig, Microphone, Speaker};
use calldock_engine::{Engine, EngineConfig, EngineError, EngineEvent, SignalingState};
use calldock_protocol::{CallId, Media, UserId};
use calldock_server::RunningServer;
use serde::Serialize;
use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::call_board::CallBoard;
use super::contacts::{self, Contact, ContactBook};
use super::deep_link::DeepLink;
use super::device_watch::{CameraDevice, DevicesChanged};
use super::keychain::{Keychain, KeychainError, KeychainStatus};
use super::mic_meter::{MicLevel, MicMeter};
use super::ringing::Ringing;
use super::settings::{self, CAMERA_PATTERN, ConfigDir, ServerSetting, Settings};
use super::transport::{CallEventJson, CallViewJson, IpcError, RecentCallJson, SignalingJson};

/// Where the shell's events and OS notices go: the UI's windows and the desktop (tray,
/// notifications) in the app, a recorder in tests.
pub trait Outbox: Send + Sync + 'static {
    /// An event for the UI (docs/desktop-ipc.md), emitted to every window.
    fn emit(&self, event: &'static str, payload: serde_json::Value);
    /// The calls or the microphone's mute changed: `text` is the tray's one line.
    fn calls_changed(&self, _text: &str, _muted: bool) {}
    /// A call started ringing here.
    fn incoming_call(&self, _from_name: &str, _stacked: bool) {}
    /// A decoded picture of the other side of a video call, I420, for the UI's video element.
    fn video_frame(&self, _call_id: &str, _picture: &calldock_video::Picture) {}
    /// A thumbnail of our own camera: the self view in a video call, or the pre-join preview.
    fn own_picture(&self, _picture: &calldock_video::Picture) {}
}

/// Who pressed mute (the `mute-changed` event's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MuteSource {
    Ui,
    Shortcut,
    Tray,
}

/// `get_app_state`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppState {
    pub first_run: bool,
    pub settings: Settings,
    pub signaling: SignalingJson,
    pub keychain: KeychainStatus,
    pub built_in_server_url: Option<String>,
    pub app_version: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceList {
    pub devices: Vec<calldock_devices::AudioDevice>,
    pub cameras: Vec<CameraDevice>,
}

/// A WAV file (or silence / nothing) standing in for the microphone or speaker in every call,
/// from `CALLDOCK_VIRTUAL_MIC` / `CALLDOCK_VIRTUAL_SPEAKER`, and a Y4M file (or `pattern`) for
/// the camera in video calls, from `CALLDOCK_VIRTUAL_CAMERA`: support replays a customer's
/// problem this way (SPEC), and end-to-end tests call without sound or camera hardware.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualDevices {
    pub microphone: Option<Microphone>,
    pub speaker: Option<Speaker>,
    pub camera: Option<CameraSource>,
}

impl VirtualDevices {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            microphone: var("CALLDOCK_VIRTUAL_MIC")
                .map(|p| if p.as_os_str() == "silence" { Microphone::Silence } else { Microphone::Wav(p) }),
            speaker: var("CALLDOCK_VIRTUAL_SPEAKER")
                .map(|p| if p.as_os_str() == "null" { Speaker::Null } else { Speaker::Wav(p) }),
            camera: var("CALLDOCK_VIRTUAL_CAMERA")
                .map(|p| if p.as_os_str() == "pattern" { CameraSource::Pattern } else { CameraSource::Y4m(p) }),
        }
    }
}

/// How long keychain calls may take before the shell goes on without them: a locked Secret
/// Service shows an unlock prompt and blocks until the person answers it.
const KEYCHAIN_WAIT: Duration = Duration::from_secs(10);

/// How long closing things may take at sign-out and exit.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How long after the UI first asked for the app state a waiting deep link is sent: the UI
/// shows the link on top of its first screen.
const DEEP_LINK_DELAY: Duration = Duration::from_millis(500);

/// How many past calls the contact list looks through for people.
const CONTACTS_FROM_HISTORY: usize = 50;

/// Where the window's alerts play: the ringtone on the ringer setting, cues on the call's
/// speaker, unless a virtual speaker stands in for it (cues are not mixed into a WAV file).
fn alert_outputs(settings: &Settings, virtual_devices: &VirtualDevices) -> crate::sounds::Outputs {
    let device = |text: &str| DeviceChoice::parse(text).unwrap_or(DeviceChoice::Default);
    crate::sounds::Outputs {
        ringer: Some((device(&settings.ringer.device), settings.ringer.volume)),
        speaker: virtual_devices.speaker.is_none().then(|| device(&settings.speaker)),
    }
}

/// The first-connect retry delay: 1 s, doubling to 30 s (the engine reconnects by itself only
/// once it has connected once).
fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

struct State {
    settings: Settings,
    first_run: bool,
    signaling: SignalingJson,
    keychain: KeychainStatus,
    built_in_url: Option<String>,
    engine: Option<Engine>,
    /// The task that signs in and then forwards the engine's events.
    connection: Option<tokio::task::JoinHandle<()>>,
    /// Bumped at every sign-in and sign-out: events of an older connection are dropped.
    generation: u64,
    muted: bool,
    board: CallBoard,
    contacts: ContactBook,
    /// The server's presence of the people in the contact list (this engine's watch).
    presence: contacts::PresenceBook,
    /// Processing switches changed: the engine takes them at its next sign-in, which waits
    /// until no call is live.
    processing_stale: bool,
    /// The UI has asked for the app state, so it listens to events.
    ui_ready: bool,
    /// A link that came before the UI listened.
    deep_link: Option<DeepLink>,
}

pub struct Shell {
    config: ConfigDir,
    data_dir: PathBuf,
    device_id: String,
    keychain: Arc<Keychain>,
    outbox: Arc<dyn Outbox>,
    runtime: Handle,
    virtual_devices: VirtualDevices,
    ringing: Ringing,
    state: Mutex<State>,
    /// One sign-in or sign-out at a time.
    sign_in_turn: tokio::sync::Mutex<()>,
    built_in: tokio::sync::Mutex<Option<RunningServer>>,
    mic_meter: Mutex<Option<MicMeter>>,
    /// The pre-join screen's camera preview, while it shows; whether the UI wants one (also
    /// when its camera would not open: a camera chosen next is tried).
    camera_preview: Mutex<Option<calldock_engine::video::CameraPreview>>,
    preview_wanted: AtomicBool,
    doctor_busy: AtomicBool,
}

impl Shell {
    pub fn new(
        config: ConfigDir,
        data_dir: PathBuf,
        keychain: Keychain,
        outbox: Arc<dyn Outbox>,
        runtime: Handle,
        virtual_devices: VirtualDevices,
    ) -> Arc<Shell> {
        let loaded = config.load_settings();
        let contacts = config.read_json::<ContactBook>(contacts::FILE).unwrap_or_default();
        let device_id = config.device_id();
        let ringing = Ringing::new(&alert_outputs(&loaded.settings, &virtual_devices));
        Arc::new(Shell {
            config,
            data_dir,
            device_id,
            keychain: Arc::new(keychain),
            outbox,
            runtime,
            virtual_devices,
            ringing,
            state: Mutex::new(State {
                settings: loaded.settings,
                first_run: loaded.first_run,
                signaling: SignalingJson::SignedOut,
                keychain: KeychainStatus::Ok,
                built_in_url: None,
                engine: None,
                connection: None,
                generation: 0,
                muted: false,
                board: CallBoard::default(),
                contacts,
                presence: contacts::PresenceBook::new(),
                processing_stale: false,
                ui_ready: false,
                deep_link: None,
            }),
            sign_in_turn: tokio::sync::Mutex::new(()),
            built_in: tokio::sync::Mutex::new(None),
            mic_meter: Mutex::new(None),
            camera_preview: Mutex::new(None),
            preview_wanted: AtomicBool::new(false),
            doctor_busy: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every later command down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// At launch: the built-in server comes up when it is the chosen server (also on a first
    /// run, whose default it is), and a configured app signs in.
    pub fn start(self: &Arc<Self>) {
        let shell = self.clone();
        self.runtime.spawn(async move {
            let (first_run, server) = {
                let s = shell.state();
                (s.first_run, s.settings.server.clone())
            };
            if first_run {
                if server == ServerSetting::BuiltIn
                    && let Err(e) = shell.built_in_url().await
                {
                    tracing::error!(code = e.code, "{}", e.message);
                }
            } else if let Err(e) = shell.sign_in().await {
                tracing::warn!(code = e.code, "{}", e.message);
            }
        });
    }

    pub fn app_state(&self) -> AppState {
        let s = self.state();
        AppState {
            first_run: s.first_run,
            settings: s.settings.clone(),
            signaling: s.signaling.clone(),
            keychain: s.keychain,
            built_in_server_url: s.built_in_url.clone(),
            app_version: env!("CARGO_PKG_VERSION"),
        }
    }

    // ---- Settings and the connection ------------------------------------------------------

    pub async fn save_settings(self: &Arc<Self>, next: Settings) -> Result<AppState, IpcError> {
        next.check()?;
        self.config.save_settings(&next)?;
        let (before, was_first_run, engine, signed_in, idle) = {
            let mut s = self.state();
            let before = std::mem::replace(&mut s.settings, next.clone());
            let was_first_run = std::mem::replace(&mut s.first_run, false);
            let signed_in = s.engine.is_some() || s.connection.is_some();
            (before, was_first_run, s.engine.clone(), signed_in, s.board.is_idle())
        };
        if before.ringer != next.ringer || before.speaker != next.speaker {
            self.ringing.set_outputs(&alert_outputs(&next, &self.virtual_devices));
        }
        if was_first_run || before.needs_reconnect(&next) {
            if !was_first_run {
                // The saved session carries the old name or account: it must not come back.
                self.forget_token(&account(&before)).await;
            }
            let shell = self.clone();
            self.runtime.spawn(async move {
                if let Err(e) = shell.sign_in().await {
                    tracing::warn!(code = e.code, "{}", e.message);
                }
                if next.server != ServerSetting::BuiltIn {
                    shell.stop_built_in().await;
                }
            });
            return Ok(self.app_state());
        }
        if let Some(engine) = engine {
            if before.microphone != next.microphone {
                let _ = engine.set_microphone(self.microphone(&next)).await;
            }
            if before.speaker != next.speaker {
                let _ = engine.set_speaker(self.speaker(&next)).await;
            }
        }
        if before.processing != next.processing && signed_in {
            // The engine takes processing switches when it signs in: now if no call is live,
            // else after the last one ends (on_call_event).
            if idle {
                let shell = self.clone();
                self.runtime.spawn(async move {
                    let _ = shell.sign_in().await;
                });
            } else {
                self.state().processing_stale = true;
            }
        }
        Ok(self.app_state())
    }

    /// Signs in with the saved settings, in the background; the `signaling` events tell how it
    /// goes. A keychain that cannot be read is reported as this command's error, and the
    /// sign-in goes ahead without the saved session: the app keeps working.
    pub async fn sign_in(self: &Arc<Self>) -> Result<(), IpcError> {
        let _turn = self.sign_in_turn.lock().await;
        let settings = {
            let s = self.state();
            if s.first_run {
                return Err(IpcError::not_configured());
            }
            s.settings.clone()
        };
        self.disconnect().await;
        let generation = {
            let mut s = self.state();
            s.generation += 1;
            s.processing_stale = false;
            s.generation
        };
        self.set_signaling(generation, SignalingJson::Connecting);
        let saved = self.read_token(&account(&settings)).await;
        let shell = self.clone();
        let token = saved.as_ref().ok().cloned().flatten();
        let task = self.runtime.spawn(async move { shell.connect(generation, settings, token).await });
        {
            let mut s = self.state();
            if s.generation == generation {
                s.connection = Some(task);
            } else {
                task.abort();
            }
        }
        saved.map(|_| ()).map_err(IpcError::from)
    }

    /// Ends this device's calls, closes the connection and forgets the saved session.
    /// Settings, contacts and history stay.
    pub async fn sign_out(self: &Arc<Self>) -> Result<(), IpcError> {
        let _turn = self.sign_in_turn.lock().await;
        self.disconnect().await;
        let (account, generation) = {
            let mut s = self.state();
            s.generation += 1;
            (account(&s.settings), s.generation)
        };
        self.set_signaling(generation, SignalingJson::SignedOut);
        let keychain = self.keychain.clone();
        let forgotten = self.blocking_keychain(move || keychain.forget(&account)).await;
        self.note_keychain(&forgotten);
        forgotten.map_err(IpcError::from)
    }

    /// Stops the current connection: its calls are hung up (so the UI sees them end), the
    /// engine closed, and the connecting task stopped.
    async fn disconnect(&self) {
        let (task, engine, idle) = {
            let mut s = self.state();
            (s.connection.take(), s.engine.clone(), s.board.is_idle())
        };
        if let Some(engine) = &engine
            && !idle
        {
            let _ = tokio::time::timeout(CLOSE_WAIT, engine.hang_up_all()).await;
            // Let the `ended` events reach the UI before the forwarding task stops.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(task) = task {
            task.abort();
        }
        {
            let mut s = self.state();
            s.generation += 1;
            s.engine = None;
            s.board = CallBoard::default();
            s.presence.clear();
        }
        self.ringing.forget_calls();
        self.tray_update();
        if let Some(engine) = engine {
            let _ = tokio::time::timeout(CLOSE_WAIT, engine.close()).await;
        }
    }

    /// Signs in until it works or cannot, then forwards the engine's events until it stops.
    async fn connect(self: Arc<Self>, generation: u64, settings: Settings, token: Option<String>) {
        let server = match &settings.server {
            ServerSetting::BuiltIn => match self.built_in_url().await {
                Ok(url) => url,
                Err(error) => {
                    self.set_signaling(generation, SignalingJson::Failed { error });
                    return;
                }
            },
            ServerSetting::Url { url } => url.clone(),
        };
        let mut attempt = 0;
        let camera = self.camera(&settings).await;
        let (engine, events) = loop {
            match Engine::connect(self.engine_config(&settings, &server, token.clone(), camera.clone())).await {
                Ok(connected) => break connected,
                Err(e) if e.transient() => {
                    attempt += 1;
                    let delay = retry_delay(attempt);
                    let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    let reason = e.to_string();
                    self.set_signaling(
                        generation,
                        SignalingJson::Reconnecting { attempt, retry_in_ms, reason, error: Some(e.into()) },
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    self.set_signaling(generation, SignalingJson::Failed { error: e.into() });
                    return;
                }
            }
        };
        let adopted = {
            let mut s = self.state();
            let current = s.generation == generation;
            if current {
                s.engine = Some(engine.clone());
            }
            current.then_some(s.muted)
        };
        let Some(muted) = adopted else {
            // Signed out or in again meanwhile: this engine is not wanted.
            engine.close().await;
            return;
        };
        if muted {
            let _ = engine.set_muted(true).await;
        }
        // The engine's first event says Connected, and the token is kept then.
        self.forward(generation, &settings, engine, events).await;
    }

    fn engine_config(
        &self,
        settings: &Settings,
        server: &str,
        saved_token: Option<String>,
        camera: CameraSource,
    ) -> EngineConfig {
        let mut config = EngineConfig::new(server, settings.user_id.as_str());
        config.display_name = Some(settings.display_name.clone());
        config.device = Some(self.device_id.as_str().into());
        config.saved_token = saved_token;
        let mut peer = calldock_peer::PeerSettings::default();
        if settings.server == ServerSetting::BuiltIn {
            // The built-in server's echo bot gathers on loopback only; a wildcard bind skips
            // loopback, so bind it too or the echo call finds no candidate pair.
            peer.udp_bind = vec!["127.0.0.1:0".into()];
        }
        config.media = MediaConfig::Audio {
            microphone: self.microphone(settings),
            speaker: self.speaker(settings),
            peer,
            processing: settings.processing.into(),
            camera,
        };
        config
    }

    /// What video calls and the preview show of us: the virtual camera when there is one, else
    /// the chosen camera (`pattern`: the test pattern). With no choice, the default camera, and
    /// on a machine without one the test pattern, as the pre-join preview shows (SPEC §8).
    async fn camera(&self, settings: &Settings) -> CameraSource {
        if let Some(camera) = &self.virtual_devices.camera {
            return camera.clone();
        }
        match settings.camera.as_deref() {
            Some(CAMERA_PATTERN) => CameraSource::Pattern,
            Some(id) => CameraSource::Device(CameraChoice::parse(id).unwrap_or(CameraChoice::Default)),
            None => {
                let present = self.runtime.spawn_blocking(calldock_devices::camera::any_camera).await.unwrap_or(false);
                if present { CameraSource::Device(CameraChoice::Default) } else { CameraSource::Pattern }
            }
        }
    }

    fn microphone(&self, settings: &Settings) -> Microphone {
        self.virtual_devices.microphone.clone().unwrap_or_else(|| {
            Microphone::Device(DeviceChoice::parse(&settings.microphone).unwrap_or(DeviceChoice::Default))
        })
    }

    fn speaker(&self, settings: &Settings) -> Speaker {
        self.virtual_devices
            .speaker
            .clone()
            .unwrap_or_else(|| Speaker::Device(DeviceChoice::parse(&settings.speaker).unwrap_or(DeviceChoice::Default)))
    }

    /// The built-in server's URL, starting it first if needed.
    async fn built_in_url(&self) -> Result<String, IpcError> {
        let mut server = self.built_in.lock().await;
        if let Some(running) = server.as_ref() {
            return Ok(running.base_url());
        }
        let running = super::built_in_server::start(&self.data_dir)
            .await
            .map_err(|e| IpcError::new("server_unreachable", format!("the built-in server could not start: {e:#}")))?;
        let url = running.base_url();
        *server = Some(running);
        self.state().built_in_url = Some(url.clone());
        Ok(url)
    }

    async fn stop_built_in(&self) {
        let running = self.built_in.lock().await.take();
        self.state().built_in_url = None;
        if let Some(running) = running {
            let _ = tokio::time::timeout(CLOSE_WAIT, running.shutdown()).await;
        }
    }

    /// Forwards one connection's events until the engine stops or the connection is replaced.
    async fn forward(
        self: &Arc<Self>,
        generation: u64,
        settings: &Settings,
        engine: Engine,
        mut events: mpsc::Receiver<EngineEvent>,
    ) {
        while let Some(event) = events.recv().await {
            if self.state().generation != generation {
                return;
            }
            match event {
                EngineEvent::Call(event) => self.on_call_event(&event),
                EngineEvent::Signaling(state) => {
                    match &state {
                        SignalingState::Connected { .. } => self.remember_token(settings, &engine),
                        SignalingState::Failed(EngineError::SessionRefused { .. }) => {
                            self.forget_token(&account(settings)).await;
                        }
                        _ => {}
                    }
                    self.set_signaling(generation, SignalingJson::from(&state));
                }
                EngineEvent::TokenRefreshed { expires_at } => {
                    self.remember_token(settings, &engine);
                    self.outbox.emit("token-refreshed", json!({ "expires_at": expires_at }));
                }
                EngineEvent::Stats { call_id, stats } => {
                    self.outbox.emit("call-stats", json!({ "call_id": call_id.as_str(), "stats": stats }));
                }
                EngineEvent::Presence { user, status } => {
                    let presence = contacts::Presence::from(status);
                    self.state().presence.insert(user.as_str().to_owned(), presence);
                    self.outbox.emit("presence", json!({ "user_id": user.as_str(), "presence": presence }));
                }
                EngineEvent::Video { call_id, picture } => self.show_video(&call_id, &picture),
                EngineEvent::SelfView { picture, .. } => self.outbox.own_picture(&picture),
                EngineEvent::CameraFailed { call_id, reason } => self.outbox.emit(
                    "camera-failed",
                    json!({ "call_id": call_id.as_str(), "error": { "code": "camera_failed", "message": reason } }),
                ),
                EngineEvent::CameraRefused { call_id, reason } => self.outbox.emit(
                    "camera-refused",
                    json!({ "call_id": call_id.as_str(), "error": { "code": "camera_refused", "message": reason } }),
                ),
                EngineEvent::Device { call_id, change } => self.outbox.emit(
                    "device-fallback",
                    json!({
                        "call_id": call_id.as_str(),
                        "direction": change.direction,
                        "device": change.device,
                        "reason": change.reason,
                    }),
                ),
            }
        }
        // The engine stopped by itself: its calls are gone.
        let stopped = {
            let mut s = self.state();
            let current = s.generation == generation;
            if current {
                s.engine = None;
                s.board = CallBoard::default();
                s.presence.clear();
            }
            current
        };
        if stopped {
            self.ringing.forget_calls();
            self.tray_update();
            self.set_signaling(generation, SignalingJson::Failed { error: EngineError::Stopped.into() });
        }
    }

    fn show_video(&self, call_id: &CallId, picture: &calldock_video::Picture) {
        self.outbox.video_frame(call_id.as_str(), picture);
    }

    fn on_call_event(self: &Arc<Self>, event: &CallEvent) {
        if let CallEvent::StartMedia { .. } = event {
            // The call needs the microphone and the camera; the meter and the preview give them
            // up (the UI restarts them later).
            self.stop_mic_meter();
            self.stop_camera_preview();
        }
        let reconnect = {
            let mut s = self.state();
            s.board.apply(event);
            s.processing_stale && s.board.is_idle()
        };
        self.ringing.on_call_event(event);
        if let CallEvent::Incoming { from_name, stacked, .. } = event {
            self.outbox.incoming_call(from_name, *stacked);
        }
        self.tray_update();
        if let Some(payload) = CallEventJson::of(event) {
            self.outbox.emit("call", serde_json::to_value(payload).unwrap_or_default());
        }
        if reconnect {
            let shell = self.clone();
            self.runtime.spawn(async move {
                let _ = shell.sign_in().await;
            });
        }
    }

    fn set_signaling(&self, generation: u64, signaling: SignalingJson) {
        {
            let mut s = self.state();
            if s.generation != generation {
                return;
            }
            s.signaling = signaling.clone();
        }
        self.outbox.emit("signaling", serde_json::to_value(signaling).unwrap_or_default());
    }

    fn tray_update(&self) {
        let (text, muted) = {
            let s = self.state();
            (s.board.tray_text(s.muted), s.muted)
        };
        self.outbox.calls_changed(&text, muted);
    }

    // ---- The keychain ----------------------------------------------------------------------

    async fn blocking_keychain<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, KeychainError> + Send + 'static,
    ) -> Result<T, KeychainError> {
        match tokio::time::timeout(KEYCHAIN_WAIT, self.runtime.spawn_blocking(work)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(KeychainError::Unavailable(format!("the keychain call failed: {e}"))),
            Err(_) => Err(KeychainError::Locked(format!("no answer within {} s", KEYCHAIN_WAIT.as_secs()))),
        }
    }

    /// Keeps the keychain's status for `get_app_state` (the UI warns when it is not ok).
    fn note_keychain<T>(&self, result: &Result<T, KeychainError>) {
        let status = match result {
            Ok(_) => KeychainStatus::Ok,
            Err(e) => {
                tracing::warn!(code = e.code(), "{e}");
                e.status()
            }
        };
        self.state().keychain = status;
    }

    async fn read_token(&self, account: &str) -> Result<Option<String>, KeychainError> {
        let keychain = self.keychain.clone();
        let account = account.to_owned();
        let result = self.blocking_keychain(move || keychain.token(&account)).await;
        self.note_keychain(&result);
        result
    }

    /// Keeps the session's current token, in the background: a keychain that blocks on an
    /// unlock prompt must not hold up the call events behind it.
    fn remember_token(self: &Arc<Self>, settings: &Settings, engine: &Engine) {
        let shell = self.clone();
        let account = account(settings);
        let token = engine.session_token();
        self.runtime.spawn(async move {
            let keychain = shell.keychain.clone();
            let result = shell.blocking_keychain(move || keychain.store(&account, &token)).await;
            shell.note_keychain(&result);
        });
    }

    async fn forget_token(&self, account: &str) {
        let keychain = self.keychain.clone();
        let account = account.to_owned();
        let result = self.blocking_keychain(move || keychain.forget(&account)).await;
        self.note_keychain(&result);
    }

    // ---- Calls -----------------------------------------------------------------------------

    fn engine(&self) -> Result<Engine, IpcError> {
        self.state().engine.clone().ok_or_else(IpcError::not_signed_in)
    }

    pub async fn list_calls(&self) -> Result<Vec<CallViewJson>, IpcError> {
        Ok(self.engine()?.calls().await?.iter().map(CallViewJson::from).collect())
    }

    pub async fn start_call(&self, to: String, media: Media) -> Result<String, IpcError> {
        settings::check_user_name(&to)?;
        let engine = self.engine()?;
        self.camera_for(&engine, media).await?;
        let call_id = engine.call(to.as_str().into(), media).await?;
        self.state().board.note_outgoing(call_id.clone(), &to);
        self.tray_update();
        Ok(call_id.0)
    }

    pub async fn accept_call(&self, call_id: String, media: Media) -> Result<(), IpcError> {
        let engine = self.engine()?;
        self.camera_for(&engine, media).await?;
        Ok(engine.accept(CallId(call_id), media).await?)
    }

    /// Before a video call: the camera as things are now (one plugged in since sign-in is the
    /// default now).
    async fn camera_for(&self, engine: &Engine, media: Media) -> Result<(), IpcError> {
        if media == Media::Video {
            let settings = self.state().settings.clone();
            engine.set_camera(self.camera(&settings).await).await?;
        }
        Ok(())
    }

    /// Chooses the camera (`None`: the default; [`CAMERA_PATTERN`]: the test pattern) for video
    /// calls, the one in progress included, and the preview if it shows.
    pub async fn set_camera(&self, camera: Option<String>) -> Result<(), IpcError> {
        let (engine, settings) = {
            let mut s = self.state();
            let mut next = s.settings.clone();
            next.camera = camera;
            next.check()?;
            s.settings = next;
            (s.engine.clone(), s.settings.clone())
        };
        self.keep_settings(&settings);
        let source = self.camera(&settings).await;
        if let Some(engine) = engine {
            engine.set_camera(source).await?;
        }
        if self.preview_wanted.load(Ordering::Acquire)
            && let Err(error) = self.start_camera_preview().await
        {
            self.outbox.emit("camera-preview-failed", json!({ "error": error }));
        }
        Ok(())
    }

    /// The camera's pictures on the pre-join screen (through [`Outbox::own_picture`]), until
    /// [`Shell::stop_camera_preview`] or a call starts. A camera that fails later is a
    /// `camera-preview-failed` event.
    pub async fn start_camera_preview(&self) -> Result<(), IpcError> {
        self.stop_camera_preview();
        self.preview_wanted.store(true, Ordering::Release);
        let settings = self.state().settings.clone();
        let source = self.camera(&settings).await;
        let (pictures, failures) = (self.outbox.clone(), self.outbox.clone());
        let preview = self
            .runtime
            .spawn_blocking(move || {
                calldock_engine::video::CameraPreview::start(
                    source,
                    move |picture| pictures.own_picture(&picture),
                    move |reason| {
                        failures.emit(
                            "camera-preview-failed",
                            json!({ "error": { "code": "camera_unavailable", "message": reason } }),
                        );
                    },
                )
            })
            .await
            .map_err(|e| IpcError::new("camera_unavailable", e.to_string()))?
            .map_err(|reason| IpcError::new("camera_unavailable", reason))?;
        *self.camera_preview.lock().unwrap_or_else(|p| p.into_inner()) = Some(preview);
        Ok(())
    }

    pub fn stop_camera_preview(&self) {
        self.preview_wanted.store(false, Ordering::Release);
        // Dropping it waits for its thread to let go of the camera (at most a frame).
        let preview = self.camera_preview.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(preview);
    }

    pub async fn decline_call(&self, call_id: String) -> Result<(), IpcError> {
        Ok(self.engine()?.decline(CallId(call_id)).await?)
    }

    pub async fn hang_up(&self, call_id: String) -> Result<(), IpcError> {
        Ok(self.engine()?.hangup(CallId(call_id)).await?)
    }

    /// Mutes or unmutes in every call and calls to come; works before sign-in too (the next
    /// engine starts muted).
    pub async fn set_muted(&self, muted: bool, source: MuteSource) -> Result<(), IpcError> {
        let engine = {
            let mut s = self.state();
            s.muted = muted;
            s.engine.clone()
        };
        if let Some(engine) = engine {
            engine.set_muted(muted).await?;
        }
        self.ringing.on_muted(muted);
        self.outbox.emit("mute-changed", json!({ "muted": muted, "source": source }));
        self.tray_update();
        Ok(())
    }

    /// Camera on or off in video calls (the `v` key): the call goes on either way.
    pub async fn set_video(&self, enabled: bool) -> Result<(), IpcError> {
        let engine = self.state().engine.clone();
        if let Some(engine) = engine {
            engine.set_camera_off(!enabled).await?;
        }
        Ok(())
    }

    pub fn is_muted(&self) -> bool {
        self.state().muted
    }

    pub async fn set_microphone(&self, device: String) -> Result<(), IpcError> {
        let (engine, settings) = self.choose_device(device, |s| &mut s.microphone)?;
        if let Some(engine) = engine {
            engine.set_microphone(self.microphone(&settings)).await?;
        }
        Ok(())
    }

    pub async fn set_speaker(&self, device: String) -> Result<(), IpcError> {
        let (engine, settings) = self.choose_device(device, |s| &mut s.speaker)?;
        self.ringing.set_outputs(&alert_outputs(&settings, &self.virtual_devices));
        if let Some(engine) = engine {
            engine.set_speaker(self.speaker(&settings)).await?;
        }
        Ok(())
    }

    /// Puts a device choice into the settings (`field` says which) and keeps them: the engine
    /// to switch, if signed in, and the settings as they are now.
    fn choose_device(
        &self,
        device: String,
        field: impl FnOnce(&mut Settings) -> &mut String,
    ) -> Result<(Option<Engine>, Settings), IpcError> {
        settings::parse_device("device", &device)?;
        let (engine, settings) = {
            let mut s = self.state();
            *field(&mut s.settings) = device;
            (s.engine.clone(), s.settings.clone())
        };
        self.keep_settings(&settings);
        Ok((engine, settings))
    }

    /// Saves a device switch; the switch itself worked, so a disk problem is only logged.
    fn keep_settings(&self, settings: &Settings) {
        if self.state().first_run {
            return;
        }
        if let Err(e) = self.config.save_settings(settings) {
            tracing::warn!(code = e.code, "{}", e.message);
        }
    }

    pub async fn recent_calls(&self, limit: usize) -> Result<Vec<RecentCallJson>, IpcError> {
        let history = self.engine()?.history(limit.clamp(1, 500)).await?;
        Ok(history.calls.iter().map(RecentCallJson::from).collect())
    }

    // ---- Contacts --------------------------------------------------------------------------

    async fn contact_list(&self, engine: Option<Engine>) -> Vec<Contact> {
        let history = match &engine {
            Some(engine) => match engine.history(CONTACTS_FROM_HISTORY).await {
                Ok(h) => h.calls.iter().map(RecentCallJson::from).collect(),
                Err(e) => {
                    // The list still shows the echo test and added people.
                    tracing::warn!(code = e.code(), "contacts without history: {e}");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let list = {
            let s = self.state();
            let online = matches!(s.signaling, SignalingJson::Connected { .. });
            s.contacts.list(&s.settings.user_id, &history, online, &s.presence)
        };
        if let Some(engine) = engine {
            // The engine watches each user once; their presence comes as `presence` events.
            let people = list.iter().filter(|c| !c.is_echo).map(|c| UserId::new(&c.user_id)).collect();
            if let Err(e) = engine.watch_presence(people).await {
                tracing::warn!(code = e.code(), "no presence for contacts: {e}");
            }
        }
        list
    }

    pub async fn list_contacts(&self) -> Result<Vec<Contact>, IpcError> {
        let engine = self.engine()?;
        Ok(self.contact_list(Some(engine)).await)
    }

    pub async fn add_contact(&self, user_id: String, display_name: String) -> Result<Vec<Contact>, IpcError> {
        settings::check_user_name(&user_id)?;
        if !display_name.trim().is_empty() {
            settings::check_display_name(display_name.trim())?;
        }
        self.change_contacts(|book| book.add(&user_id, &display_name))?;
        let engine = self.state().engine.clone();
        Ok(self.contact_list(engine).await)
    }

    pub async fn remove_contact(&self, user_id: String) -> Result<Vec<Contact>, IpcError> {
        self.change_contacts(|book| book.remove(&user_id))?;
        let engine = self.state().engine.clone();
        Ok(self.contact_list(engine).await)
    }

    fn change_contacts(&self, change: impl FnOnce(&mut ContactBook)) -> Result<(), IpcError> {
        let mut s = self.state();
        let mut book = s.contacts.clone();
        change(&mut book);
        self.config.write_json(contacts::FILE, &book)?;
        s.contacts = book;
        Ok(())
    }

    // ---- Devices, the meter, the ringer, the doctor ----------------------------------------

    pub async fn list_devices(&self) -> Result<DeviceList, IpcError> {
        let (devices, cameras) = self
            .runtime
            .spawn_blocking(|| calldock_devices::list().map(|devices| (devices, super::device_watch::cameras())))
            .await
            .map_err(|e| IpcError::new("device_enumeration_failed", e.to_string()))??;
        Ok(DeviceList { devices, cameras })
    }

    /// Watches sound devices and emits `devices-changed` when they change, for as long as the
    /// shell lives.
    pub fn watch_devices(self: &Arc<Self>) {
        let shell = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("calldock devices-changed".into()).spawn(move || {
            let (events, changes) = std::sync::mpsc::channel();
            let _watch = match calldock_devices::DeviceWatch::start(super::device_watch::POLL, events) {
                Ok((watch, _first)) => watch,
                Err(e) => {
                    tracing::warn!(error = %e, code = e.code(), "devices cannot be watched; plugging one in needs a restart");
                    return;
                }
            };
            // One message per reading that changed: a headset's input, output and default
            // changes arrive together and become one event.
            while let Ok(calldock_devices::DeviceChanges { events: batch, reading }) = changes.recv() {
                let Some(shell) = shell.upgrade() else { return };
                let Ok(devices) = calldock_devices::list() else { continue };
                let super::device_watch::Changes { added, removed, default_changed } =
                    super::device_watch::Changes::of(&batch);
                let payload = DevicesChanged {
                    devices,
                    cameras: super::device_watch::cameras(),
                    added,
                    removed,
                    default_input: reading.as_ref().and_then(|r| r.input.default.clone()),
                    default_output: reading.as_ref().and_then(|r| r.output.default.clone()),
                    default_changed,
                };
                shell.outbox.emit("devices-changed", serde_json::to_value(payload).unwrap_or_default());
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread to watch the devices");
        }
    }

    pub async fn start_mic_meter(&self, device: String) -> Result<(), IpcError> {
        let choice = settings::parse_device("device", &device)?;
        self.stop_mic_meter();
        let outbox = self.outbox.clone();
        // A virtual microphone stands in for every device in calls, so in the meter too.
        let stand_in = self.virtual_devices.microphone.clone();
        let meter = self
            .runtime
            .spawn_blocking(move || {
                let report = move |level: MicLevel| {
                    outbox.emit("mic-level", serde_json::to_value(level).unwrap_or_default());
                };
                match stand_in {
                    Some(microphone) => MicMeter::start_virtual(&microphone, report),
                    None => MicMeter::start(&choice, report),
                }
            })
            .await
            .map_err(|e| IpcError::new("device_open_failed", e.to_string()))??;
        *self.mic_meter.lock().unwrap_or_else(|p| p.into_inner()) = Some(meter);
        Ok(())
    }

    pub fn stop_mic_meter(&self) {
        self.mic_meter.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub async fn test_ringer(self: &Arc<Self>, device: String, volume: f32) -> Result<(), IpcError> {
        let choice = settings::parse_device("device", &device)?;
        if !(0.0..=1.0).contains(&volume) {
            return Err(IpcError::invalid_argument(format!("volume takes 0.0 to 1.0, not {volume}")));
        }
        let shell = self.clone();
        self.runtime
            .spawn_blocking(move || shell.ringing.test(&choice, volume))
            .await
            .map_err(|e| IpcError::new("device_open_failed", e.to_string()))??;
        Ok(())
    }

    pub fn silence_ringer(&self) {
        self.ringing.stop();
    }

    pub async fn run_doctor(&self, checks: Option<Vec<String>>) -> Result<Report, IpcError> {
        let checks = match checks {
            None => Check::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|name| name.parse::<Check>().map_err(IpcError::invalid_argument))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if self.doctor_busy.swap(true, Ordering::AcqRel) {
            return Err(IpcError::new("doctor_busy", "a check is already running: wait for it"));
        }
        // The checks need the microphone and the camera.
        self.stop_mic_meter();
        self.stop_camera_preview();
        let plan = match self.doctor_plan(checks).await {
            Ok(plan) => plan,
            Err(error) => {
                self.doctor_busy.store(false, Ordering::Release);
                return Err(error);
            }
        };
        let outbox = self.outbox.clone();
        let report = self
            .runtime
            .spawn_blocking(move || {
                calldock_doctor::run(&plan, |check| outbox.emit("doctor-progress", json!({ "check": check })))
            })
            .await;
        self.doctor_busy.store(false, Ordering::Release);
        report.map_err(|e| IpcError::new("doctor_failed", format!("a check stopped unexpectedly: {e}")))
    }

    /// The doctor checks what calls will use: the chosen (or virtual) microphone and speaker, the
    /// chosen camera, and the server this app signs in to.
    async fn doctor_plan(&self, checks: Vec<Check>) -> Result<Plan, IpcError> {
        use calldock_doctor::{microphone::MicSource, network::NetworkPlan, speaker::SpeakerPlan};
        let (settings, first_run) = {
            let s = self.state();
            (s.settings.clone(), s.first_run)
        };
        let microphone = match &self.virtual_devices.microphone {
            Some(Microphone::Wav(path)) => MicSource::Wav(path.clone()),
            Some(Microphone::Device(choice)) => MicSource::Device(choice.clone()),
            // Silence stands in for the microphone: the check hears it and says so.
            Some(Microphone::Silence) | None => {
                MicSource::Device(DeviceChoice::parse(&settings.microphone).unwrap_or(DeviceChoice::Default))
            }
        };
        let speaker = match &self.virtual_devices.speaker {
            // A WAV file or nothing stands in for the speaker: there is no sound to check.
            Some(Speaker::Null | Speaker::Wav(_)) => SpeakerPlan::Null,
            Some(Speaker::Device(choice)) => SpeakerPlan::Device(choice.clone()),
            None => SpeakerPlan::Device(DeviceChoice::parse(&settings.speaker).unwrap_or(DeviceChoice::Default)),
        };
        let camera = self.camera(&settings).await;
        let server = match &settings.server {
            ServerSetting::BuiltIn if first_run => None,
            ServerSetting::BuiltIn => Some(self.built_in_url().await?),
            ServerSetting::Url { url } => Some(url.clone()),
        };
        Ok(Plan { checks, microphone, speaker, camera, network: NetworkPlan { server } })
    }

    // ---- Deep links and exit ---------------------------------------------------------------

    /// A `calldock://call/<user>` link: to the UI now if it listens, else once it does.
    pub fn open_deep_link(&self, link: DeepLink) {
        let mut s = self.state();
        if s.ui_ready {
            drop(s);
            self.outbox.emit("deep-link", serde_json::to_value(link).unwrap_or_default());
        } else {
            s.deep_link = Some(link);
        }
    }

    /// The UI asked for the app state, which it does right after subscribing to events: from
    /// now on events reach it. Returns a link that came before.
    pub fn ui_ready(&self) -> Option<DeepLink> {
        let mut s = self.state();
        s.ui_ready = true;
        s.deep_link.take()
    }

    /// Sends a link that waited for the UI, once its first screen is up.
    pub fn deliver_deep_link_later(&self, link: DeepLink) {
        let outbox = self.outbox.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(DEEP_LINK_DELAY).await;
            outbox.emit("deep-link", serde_json::to_value(link).unwrap_or_default());
        });
    }

    /// At exit: calls are hung up (so the other side is not left waiting for a grace period),
    /// the engine closed and the built-in server stopped, each within a bound.
    pub async fn shutdown(self: &Arc<Self>) {
        let _turn = self.sign_in_turn.lock().await;
        self.stop_mic_meter();
        self.stop_camera_preview();
        self.disconnect().await;
        self.stop_built_in().await;
    }
}

/// The keychain account of a session: user and server, so two servers' sessions never mix.
fn account(settings: &Settings) -> String {
    match &settings.server {
        ServerSetting::BuiltIn => format!("{}@built-in", settings.user_id),
        ServerSetting::Url { url } => format!("{}@{}", settings.user_id, url.trim().trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    //! A whole shell against the built-in server, with keyring's mock store standing in for
    //! the OS keychain and a recorder for the UI.

    use keyring::mock::MockCredential;
    use serde_json::Value;

    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<(&'static str, Value)>>,
        changed: tokio::sync::Notify,
        /// Pictures of our own camera (preview or self view), and of the other side.
        own_pictures: std::sync::atomic::AtomicUsize,
        remote_pictures: std::sync::atomic::AtomicUsize,
    }

    impl Outbox for Recorder {
        fn emit(&self, event: &'static str, payload: Value) {
            self.events.lock().unwrap().push((event, payload));
            self.changed.notify_waiters();
        }

        fn video_frame(&self, _call_id: &str, _picture: &calldock_video::Picture) {
            self.remote_pictures.fetch_add(1, Ordering::AcqRel);
        }

        fn own_picture(&self, picture: &calldock_video::Picture) {
            assert!(picture.width() <= 320 && picture.height() <= 240, "a thumbnail, not the camera's picture");
            self.own_pictures.fetch_add(1, Ordering::AcqRel);
        }
    }

    impl Recorder {
        /// Waits until `count` grows by `more`, failing after [`WAIT`].
        async fn pictures(count: &std::sync::atomic::AtomicUsize, more: usize, what: &str) {
            let goal = count.load(Ordering::Acquire) + more;
            let deadline = tokio::time::Instant::now() + WAIT;
            while count.load(Ordering::Acquire) < goal {
                assert!(tokio::time::Instant::now() < deadline, "no {more} {what} pictures in {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        fn count(&self, name: &str) -> usize {
            self.events.lock().unwrap().iter().filter(|(n, _)| *n == name).count()
        }

        /// Waits for an event `pick` accepts, failing after [`WAIT`].
        async fn until(&self, name: &str, pick: impl Fn(&Value) -> bool) -> Value {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let changed = self.changed.notified();
                if let Some((_, v)) = self.events.lock().unwrap().iter().find(|(n, v)| *n == name && pick(v)) {
                    return v.clone();
                }
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    panic!("no {name} event as expected; got {:?}", self.events.lock().unwrap());
                }
            }
        }
    }

    struct Fixture {
        shell: Arc<Shell>,
        ui: Arc<Recorder>,
        _dirs: tempfile::TempDir,
    }

    /// A shell whose settings say `settings` (none: a first run), with `prepare` run on the
    /// mock keychain before the shell gets it.
    fn shell(settings: Option<Settings>, prepare: impl FnOnce(&Keychain)) -> Fixture {
        let dirs = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(dirs.path().join("config"));
        if let Some(settings) = &settings {
            config.save_settings(settings).unwrap();
        }
        let keychain = Keychain::with_builder(keyring::mock::default_credential_builder());
        prepare(&keychain);
        let ui = Arc::new(Recorder::default());
        let shell = Shell::new(
            config,
            dirs.path().join("data"),
            keychain,
            ui.clone(),
            Handle::current(),
            VirtualDevices { microphone: Some(Microphone::Silence), speaker: Some(Speaker::Null), camera: None },
        );
        Fixture { shell, ui, _dirs: dirs }
    }

    fn alice() -> Settings {
        Settings { user_id: "alice".into(), display_name: "Alice".into(), ..Settings::default() }
    }

    fn fail_next(keychain: &Keychain, account: &str, error: keyring::Error) {
        let entry = keychain.entry(account).unwrap();
        let credential: &MockCredential = entry.get_credential().downcast_ref().unwrap();
        credential.set_error(error);
    }

    fn boxed(text: &str) -> Box<dyn std::error::Error + Send + Sync> {
        text.to_string().into()
    }

    /// Waits until the keychain holds the engine's current session token.
    async fn token_stored(f: &Fixture) {
        let stored = tokio::time::timeout(WAIT, async {
            loop {
                let current = f.shell.engine().map(|e| e.session_token()).ok();
                if current.is_some() && f.shell.keychain.token("alice@built-in").ok().flatten() == current {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(stored.is_ok(), "the session token reaches the keychain");
    }

    fn is_state(state: &'static str) -> impl Fn(&Value) -> bool {
        move |v| v["state"] == state
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_keychain_is_an_error_code_and_the_app_still_signs_in_and_calls() {
        let f = shell(Some(alice()), |keychain| {
            fail_next(keychain, "alice@built-in", keyring::Error::NoStorageAccess(boxed("collection is locked")));
        });
        let error = f.shell.sign_in().await.expect_err("the keychain is locked");
        assert_eq!(error.code, "keychain_locked");
        assert!(error.message.contains("unlock"), "{}", error.message);

        let connected = f.ui.until("signaling", is_state("connected")).await;
        assert_eq!(connected["user"], "alice");
        assert!(f.shell.app_state().built_in_server_url.is_some_and(|u| u.starts_with("http://127.0.0.1:")));

        let call_id = f.shell.start_call("echo".into(), Media::Audio).await.unwrap();
        f.ui.until("call", |v| v["call_id"] == call_id.as_str() && v["state"] == "connected").await;
        f.shell.hang_up(call_id.clone()).await.unwrap();
        f.ui.until("call", |v| v["type"] == "ended" && v["reason"] == "hangup-local").await;

        let recent = f.shell.recent_calls(5).await.unwrap();
        assert_eq!(recent.first().map(|c| c.remote.as_str()), Some("echo"));
        // The keychain answered again (the mock's error is one-shot): the session was kept.
        token_stored(&f).await;
        assert_eq!(f.shell.app_state().keychain, KeychainStatus::Ok);
        f.shell.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_keychain_does_not_stop_signing_out() {
        let f = shell(Some(alice()), |_| {});
        f.shell.sign_in().await.unwrap();
        f.ui.until("signaling", is_state("connected")).await;
        token_stored(&f).await;
        fail_next(
            &f.shell.keychain,
            "alice@built-in",
            keyring::Error::PlatformFailure(boxed("org.freedesktop.secrets was not provided")),
        );
        let error = f.shell.sign_out().await.expect_err("the keychain is missing");
        assert_eq!(error.code, "keychain_unavailable");
        let state = f.shell.app_state();
        assert_eq!(state.signaling, SignalingJson::SignedOut);
        assert_eq!(state.keychain, KeychainStatus::Unavailable);
        assert_eq!(state.settings, alice(), "settings stay");
        assert_eq!(f.shell.list_calls().await.unwrap_err().code, "not_signed_in");
        f.shell.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_is_down_is_retried_with_the_reason() {
        let down = Settings { server: ServerSetting::Url { url: "http://127.0.0.1:9".into() }, ..alice() };
        let f = shell(Some(down), |_| {});
        f.shell.sign_in().await.unwrap();
        let retrying = f.ui.until("signaling", is_state("reconnecting")).await;
        assert_eq!(retrying["attempt"], 1);
        assert_eq!(retrying["error"]["code"], "server_unreachable");
        assert_eq!(retrying["retry_in_ms"], 1000);
        f.shell.sign_out().await.unwrap();
        assert_eq!(f.shell.app_state().signaling, SignalingJson::SignedOut);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_run_refuses_bad_settings_and_commands_that_need_a_sign_in() {
        let f = shell(None, |_| {});
        let state = f.shell.app_state();
        assert!(state.first_run);
        assert_eq!(state.signaling, SignalingJson::SignedOut);
        assert_eq!(f.shell.sign_in().await.unwrap_err().code, "not_configured");

        let bad = Settings { server: ServerSetting::Url { url: "my office".into() }, ..alice() };
        assert_eq!(f.shell.save_settings(bad).await.unwrap_err().code, "bad_server_url");
        assert!(f.shell.app_state().first_run, "nothing was saved");

        assert_eq!(f.shell.start_call("echo".into(), Media::Audio).await.unwrap_err().code, "not_signed_in");
        assert_eq!(f.shell.start_call("<script>".into(), Media::Audio).await.unwrap_err().code, "invalid_argument");
        assert_eq!(f.shell.recent_calls(10).await.unwrap_err().code, "not_signed_in");
        assert_eq!(f.shell.set_microphone("the blue one".into()).await.unwrap_err().code, "invalid_argument");
        assert_eq!(f.shell.run_doctor(Some(vec!["vibes".into()])).await.unwrap_err().code, "invalid_argument");
        // Muting before sign-in is kept for the calls to come.
        f.shell.set_muted(true, MuteSource::Ui).await.unwrap();
        assert_eq!(f.ui.until("mute-changed", |v| v["muted"] == true).await["source"], "ui");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_settings_sign_in_and_contacts_start_with_the_echo_test() {
        let f = shell(None, |_| {});
        let state = f.shell.save_settings(alice()).await.unwrap();
        assert!(!state.first_run);
        f.ui.until("signaling", is_state("connected")).await;
        let contacts = f.shell.add_contact("bob".into(), "Bob".into()).await.unwrap();
        let ids: Vec<_> = contacts.iter().map(|c| c.user_id.as_str()).collect();
        assert_eq!(ids, ["echo", "bob"]);
        assert_eq!(f.shell.add_contact("Bob!".into(), "".into()).await.unwrap_err().code, "invalid_argument");
        f.shell.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contacts_show_the_servers_presence_and_the_ui_hears_each_change() {
        let f = shell(Some(alice()), |_| {});
        f.shell.sign_in().await.unwrap();
        f.ui.until("signaling", is_state("connected")).await;
        let bob_is = |presence: &'static str| move |v: &Value| v["user_id"] == "bob" && v["presence"] == presence;
        f.shell.add_contact("bob".into(), "Bob".into()).await.unwrap();
        f.ui.until("presence", bob_is("offline")).await;
        let listed = f.shell.list_contacts().await.unwrap();
        assert_eq!(listed[1].presence, contacts::Presence::Offline, "{listed:?}");

        let base = f.shell.built_in_url().await.unwrap();
        let _bob = calldock_conformance::RawClient::connect_as(&base, "bob", "bob-phone").await.unwrap();
        f.ui.until("presence", bob_is("online")).await;
        let listed = f.shell.list_contacts().await.unwrap();
        assert_eq!(listed[1].presence, contacts::Presence::Online, "{listed:?}");
        f.shell.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_preview_follows_the_chosen_camera_and_a_camera_that_will_not_open_is_an_event_with_the_setting_kept() {
        let f = shell(Some(Settings { camera: Some(CAMERA_PATTERN.into()), ..alice() }), |_| {});
        let own = &f.ui.own_pictures;
        f.shell.start_camera_preview().await.unwrap();
        Recorder::pictures(own, 5, "preview").await;

        // A camera that is not there: the preview says so, and the choice is kept (the camera
        // may be plugged in later), on disk too.
        f.shell.set_camera(Some("/dev/video63".into())).await.unwrap();
        let failed = f.ui.until("camera-preview-failed", |_| true).await;
        assert_eq!(failed["error"]["code"], "camera_unavailable");
        assert!(failed["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
        assert_eq!(f.shell.app_state().settings.camera.as_deref(), Some("/dev/video63"));
        assert_eq!(f.shell.config.load_settings().settings.camera.as_deref(), Some("/dev/video63"));
        let stalled = own.load(Ordering::Acquire);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(own.load(Ordering::Acquire), stalled, "no pictures from a camera that did not open");

        // The preview is still wanted: choosing the test pattern shows it again.
        f.shell.set_camera(Some(CAMERA_PATTERN.into())).await.unwrap();
        Recorder::pictures(own, 5, "preview").await;
        assert_eq!(f.ui.count("camera-preview-failed"), 1);

        // Stopped: no more pictures, and choosing a camera does not start it again.
        f.shell.stop_camera_preview();
        let stopped = own.load(Ordering::Acquire);
        f.shell.set_camera(None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(own.load(Ordering::Acquire), stopped, "the preview stays stopped");
        assert_eq!(f.shell.app_state().settings.camera, None);

        let refused = f.shell.set_camera(Some(String::new())).await.expect_err("an empty camera id");
        assert_eq!(refused.code, "invalid_argument");
        assert_eq!(f.shell.app_state().settings.camera, None, "a refused setting changes nothing");
        f.shell.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_video_echo_call_shows_the_other_side_and_the_self_view_and_ends_the_preview() {
        let f = shell(Some(Settings { camera: Some(CAMERA_PATTERN.into()), ..alice() }), |_| {});
        f.shell.sign_in().await.unwrap();
        f.ui.until("signaling", is_state("connected")).await;
        f.shell.start_camera_preview().await.unwrap();
        Recorder::pictures(&f.ui.own_pictures, 3, "preview").await;

        let call_id = f.shell.start_call("echo".into(), Media::Video).await.unwrap();
        f.ui.until("call", |v| v["call_id"] == call_id.as_str() && v["state"] == "connected").await;
        // The call's camera took over: the preview let go of it.
        assert!(f.shell.camera_preview.lock().unwrap().is_none(), "the preview stops when the call's media starts");
        Recorder::pictures(&f.ui.remote_pictures, 10, "echoed").await;
        Recorder::pictures(&f.ui.own_pictures, 10, "self view").await;
        f.shell.hang_up(call_id).await.unwrap();
        f.ui.until("call", |v| v["type"] == "ended" && v["reason"] == "hangup-local").await;
        f.shell.shutdown().await;
    }
}
