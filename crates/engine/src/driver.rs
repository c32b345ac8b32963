//! The task that drives the call core: the socket, the clock, token refresh and reconnects.
//! All decisions about calls are the core's; this file only moves messages and keeps time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use calldock_call::{CallEvent, Input, MediaEvent, Output, Phone};
use calldock_peer::Signal as PeerSignal;
use calldock_protocol::{
    CallPhase, ClientMessage, DeclineReason, ErrorCode, ParticipantState, SdpKind, ServerMessage, Session, UnixMillis,
    UserId,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::ice_servers::IceServerCache;
use crate::media::{self, FromMedia, MediaConfig, MediaSession, ToMedia};
use crate::socket::{self, Socket};
use crate::{EngineConfig, EngineError, EngineEvent, Request, ServerUrl, SignalingState, rest};

fn now() -> UnixMillis {
    UnixMillis(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
}

/// The monotonic instant at which the wall-clock time `at` arrives.
fn instant_at(at: UnixMillis) -> Instant {
    Instant::now() + Duration::from_millis(at.0.saturating_sub(now().0))
}

/// When to renew a token: two thirds into its remaining life, so a slow refresh still lands.
fn refresh_instant(expires_at: UnixMillis) -> Instant {
    let left = expires_at.0.saturating_sub(now().0);
    Instant::now() + Duration::from_millis(left * 2 / 3)
}

pub struct Driver {
    config: EngineConfig,
    server: ServerUrl,
    session: Session,
    shared_session: Arc<Mutex<Session>>,
    phone: Phone,
    socket: Option<Socket>,
    events: mpsc::Sender<EngineEvent>,
    phone_deadline: Option<Instant>,
    refresh_at: Instant,
    reconnect_at: Option<Instant>,
    attempt: u32,
    /// Set once reconnecting cannot help.
    failed: bool,
    /// A `hang_up_all` waiting for the server's list of calls.
    pending_sync: Option<(String, tokio::sync::oneshot::Sender<Result<usize, EngineError>>)>,
    next_id: u64,
    /// Media of calls in progress, by call.
    media: Vec<MediaSession>,
    media_tx: mpsc::Sender<FromMedia>,
    media_rx: mpsc::Receiver<FromMedia>,
    muted: bool,
    camera_off: bool,
    /// The signaling server's STUN/TURN servers, shared by this engine's calls.
    ice_servers: Arc<IceServerCache>,
    /// Users whose presence the application follows; watched again after a reconnect.
    watched: BTreeSet<UserId>,
}

impl Driver {
    pub fn new(
        config: EngineConfig,
        server: ServerUrl,
        session: Session,
        shared_session: Arc<Mutex<Session>>,
        socket: Socket,
        events: mpsc::Sender<EngineEvent>,
    ) -> Self {
        let phone = Phone::new(session.user.clone(), session.device.clone(), config.phone);
        let refresh_at = refresh_instant(session.expires_at);
        let (media_tx, media_rx) = mpsc::channel(256);
        let ice_servers = Arc::new(IceServerCache::new(server.clone(), shared_session.clone()));
        Self {
            config,
            server,
            session,
            shared_session,
            phone,
            socket: Some(socket),
            events,
            phone_deadline: None,
            refresh_at,
            reconnect_at: None,
            attempt: 0,
            failed: false,
            pending_sync: None,
            next_id: 0,
            media: Vec::new(),
            media_tx,
            media_rx,
            muted: false,
            camera_off: false,
            ice_servers,
            watched: BTreeSet::new(),
        }
    }

    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        loop {
            self.drain().await;
            let far = Instant::now() + Duration::from_secs(3600);
            let phone_deadline = self.phone_deadline.unwrap_or(far);
            let reconnect_at = self.reconnect_at.unwrap_or(far);
            let refresh_at = if self.socket.is_some() { self.refresh_at } else { far };
            let connected = self.socket.is_some();
            tokio::select! {
                frame = next_frame(&mut self.socket), if connected => self.on_frame(frame).await,
                Some(from_media) = self.media_rx.recv() => self.on_media(from_media).await,
                request = requests.recv() => match request {
                    None => break,
                    Some(Request::Close(done)) => {
                        if let Some(mut s) = self.socket.take() {
                            let _ = s.close(None).await;
                        }
                        let _ = done.send(());
                        break;
                    }
                    Some(Request::HangUpAll(reply)) => self.hang_up_all(reply).await,
                    Some(Request::SetMuted(muted)) => {
                        self.muted = muted;
                        for m in &self.media {
                            let _ = m.to_media.try_send(ToMedia::Mute(muted));
                        }
                    }
                    Some(Request::SetCameraOff(off)) => {
                        self.camera_off = off;
                        for m in &self.media {
                            let _ = m.to_media.try_send(ToMedia::CameraOff(off));
                        }
                    }
                    Some(Request::SetCamera(wanted)) => {
                        if let MediaConfig::Audio { camera, .. } = &mut self.config.media {
                            *camera = wanted.clone();
                        }
                        for m in &self.media {
                            let _ = m.to_media.try_send(ToMedia::SetCamera(wanted.clone()));
                        }
                    }
                    Some(Request::SetMicrophone(wanted)) => {
                        if let MediaConfig::Audio { microphone, .. } = &mut self.config.media {
                            *microphone = wanted.clone();
                        }
                        for m in &self.media {
                            let _ = m.to_media.try_send(ToMedia::SetMicrophone(wanted.clone()));
                        }
                    }
                    Some(Request::SetSpeaker(wanted)) => {
                        if let MediaConfig::Audio { speaker, .. } = &mut self.config.media {
                            *speaker = wanted.clone();
                        }
                        for m in &self.media {
                            let _ = m.to_media.try_send(ToMedia::SetSpeaker(wanted.clone()));
                        }
                    }
                    Some(Request::WatchPresence(users)) => {
                        let new: Vec<UserId> = users.into_iter().filter(|u| self.watched.insert(u.clone())).collect();
                        self.send_presence_watch(new).await;
                    }
                    Some(Request::Calls(reply)) => {
                        let _ = reply.send(self.phone.calls().cloned().collect());
                    }
                    Some(Request::Command(command, reply)) => {
                        let result = self.phone.handle_input(now(), Input::Command(command));
                        let _ = reply.send(result);
                    }
                },
                _ = tokio::time::sleep_until(phone_deadline) => self.feed(Input::Timeout),
                _ = tokio::time::sleep_until(refresh_at) => self.refresh().await,
                _ = tokio::time::sleep_until(reconnect_at), if !connected && !self.failed => self.reconnect().await,
            }
        }
    }

    fn feed(&mut self, input: Input) {
        // Only user commands can be refused, and they are answered through their own channel.
        let _ = self.phone.handle_input(now(), input);
    }

    /// Drains the core's outputs: frames to the socket, events to the application.
    async fn drain(&mut self) {
        loop {
            match self.phone.poll_output() {
                Output::Send(frame) => {
                    let text = serde_json::to_string(&frame).unwrap_or_default();
                    if let Some(socket) = self.socket.as_mut()
                        && let Err(e) = socket.send(Message::Text(text.into())).await
                    {
                        self.lost(format!("send failed: {e}"));
                    }
                    // While disconnected frames are dropped: the core resyncs on reconnect.
                }
                Output::Event(event) => {
                    match &event {
                        CallEvent::StartMedia { call_id, offerer, media, .. } => {
                            let (call_id, offerer, media) = (call_id.clone(), *offerer, *media);
                            self.emit(EngineEvent::Call(event)).await;
                            self.start_media(call_id, offerer, media);
                            continue;
                        }
                        CallEvent::Ended { call_id, .. } | CallEvent::Replaced { old: call_id, .. } => {
                            self.stop_media(call_id);
                        }
                        _ => {}
                    }
                    self.emit(EngineEvent::Call(event)).await;
                }
                Output::Timeout(at) => {
                    self.phone_deadline = Some(instant_at(at));
                    break;
                }
                Output::Idle => {
                    self.phone_deadline = None;
                    break;
                }
            }
        }
    }

    async fn emit(&self, event: EngineEvent) {
        // An application that stopped listening does not stop calls from being handled.
        let _ = self.events.send(event).await;
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, String>>) {
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(close))) => {
                let reason = close
                    .map(|c| format!("closed by the server ({}: {})", u16::from(c.code), c.reason))
                    .unwrap_or_else(|| "closed by the server".into());
                self.lost(reason);
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(e)) => {
                self.lost(e);
                return;
            }
            None => {
                self.lost("connection closed".into());
                return;
            }
        };
        let message: ServerMessage = match serde_json::from_str(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                // A newer server may send event types this client does not know: skip them.
                tracing::debug!("ignoring a frame this client does not understand: {e}");
                return;
            }
        };
        if let ServerMessage::Presence { user, status } = &message {
            self.emit(EngineEvent::Presence { user: user.clone(), status: *status }).await;
            return;
        }
        if message.reply_to().is_some_and(|re| re.as_str().starts_with("e-")) {
            // Replies to the driver's own requests (re-auth after refresh, end everywhere,
            // presence watches).
            if let ServerMessage::PresenceState { users, .. } = &message {
                for entry in users {
                    self.emit(EngineEvent::Presence { user: entry.user.clone(), status: entry.status }).await;
                }
                return;
            }
            if let ServerMessage::Calls { re, calls } = &message {
                self.on_sync_reply(re.as_str(), calls).await;
                return;
            }
            if let ServerMessage::Error { code, message, .. } = &message {
                tracing::warn!("the server refused re-authentication ({code}): {message}");
            }
            return;
        }
        match &message {
            ServerMessage::Sdp { call_id, kind, sdp, .. } => {
                let signal = match kind {
                    SdpKind::Offer => PeerSignal::Offer(sdp.clone()),
                    SdpKind::Answer => PeerSignal::Answer(sdp.clone()),
                };
                self.to_media(call_id, ToMedia::Signal(signal));
                return;
            }
            ServerMessage::Ice { call_id, candidate, sdp_mid, sdp_mline_index, .. } => {
                let candidate = calldock_peer::Candidate {
                    candidate: candidate.clone(),
                    sdp_mid: sdp_mid.clone(),
                    sdp_mline_index: *sdp_mline_index,
                };
                self.to_media(call_id, ToMedia::Signal(PeerSignal::Candidate(candidate)));
                return;
            }
            ServerMessage::IceRestart { call_id, .. } => {
                self.to_media(call_id, ToMedia::RestartIce);
                return;
            }
            _ => {}
        }
        if let ServerMessage::Error { re: None, code: ErrorCode::TokenExpired, .. } = &message {
            // The socket is about to close; the reconnect signs in again.
            return;
        }
        self.feed(Input::Server(message));
    }

    /// Asks the server for `users`' presence and changes; without a connection, the reconnect
    /// asks for everyone watched.
    async fn send_presence_watch(&mut self, users: Vec<UserId>) {
        if users.is_empty() {
            return;
        }
        let Some(socket) = self.socket.as_mut() else { return };
        self.next_id += 1;
        let frame = socket::frame(&format!("e-presence-{}", self.next_id), ClientMessage::PresenceWatch { users });
        if let Err(e) = socket.send(frame).await {
            tracing::debug!("presence watch not sent ({e}); the reconnect sends it");
        }
    }

    async fn hang_up_all(&mut self, reply: tokio::sync::oneshot::Sender<Result<usize, EngineError>>) {
        let Some(socket) = self.socket.as_mut() else {
            let _ = reply.send(Err(EngineError::Unreachable {
                url: self.server.as_str().into(),
                detail: "reconnecting".into(),
            }));
            return;
        };
        self.next_id += 1;
        let id = format!("e-sync-{}", self.next_id);
        if let Err(e) = socket.send(socket::frame(&id, ClientMessage::CallSync {})).await {
            let _ =
                reply.send(Err(EngineError::Unreachable { url: self.server.as_str().into(), detail: e.to_string() }));
            return;
        }
        self.pending_sync = Some((id, reply));
    }

    async fn on_sync_reply(&mut self, re: &str, calls: &[calldock_protocol::CallSnapshot]) {
        let Some((id, reply)) = self.pending_sync.take() else { return };
        if id != re {
            self.pending_sync = Some((id, reply));
            return;
        }
        let me = self.session.user.clone();
        let device = self.session.device.clone();
        let mut ended = 0;
        for call in calls.iter().filter(|c| c.phase != CallPhase::Ended) {
            let call_id = call.call_id.clone();
            let message = if call.caller == me {
                if call.caller_device != device {
                    continue;
                }
                if call.phase == CallPhase::Ringing {
                    ClientMessage::CallCancel { call_id }
                } else {
                    ClientMessage::CallEnd { call_id, failure: None, reconnect_timeout: false }
                }
            } else {
                match call.participant(&me).map(|p| p.state) {
                    Some(ParticipantState::Invited | ParticipantState::Ringing) => {
                        ClientMessage::CallDecline { call_id, reason: DeclineReason::Declined }
                    }
                    Some(ParticipantState::Joined)
                        if call.participant(&me).and_then(|p| p.device.as_ref()) == Some(&device) =>
                    {
                        ClientMessage::CallEnd { call_id, failure: None, reconnect_timeout: false }
                    }
                    _ => continue,
                }
            };
            self.next_id += 1;
            let frame = socket::frame(&format!("e-end-{}", self.next_id), message);
            if let Some(socket) = self.socket.as_mut()
                && socket.send(frame).await.is_ok()
            {
                ended += 1;
            }
        }
        let _ = reply.send(Ok(ended));
    }

    fn start_media(&mut self, call_id: calldock_protocol::CallId, offerer: bool, call_media: calldock_protocol::Media) {
        match self.config.media.clone() {
            MediaConfig::SignalingOnly => self.feed(Input::Media { call_id, event: MediaEvent::Connected }),
            MediaConfig::Audio { microphone, speaker, peer, processing, camera } => {
                self.stop_media(&call_id);
                let camera = (call_media == calldock_protocol::Media::Video).then_some(camera);
                let session = media::start(
                    call_id,
                    offerer,
                    microphone,
                    speaker,
                    peer,
                    processing,
                    camera,
                    self.ice_servers.clone(),
                    self.media_tx.clone(),
                );
                let _ = session.to_media.try_send(ToMedia::Mute(self.muted));
                let _ = session.to_media.try_send(ToMedia::CameraOff(self.camera_off));
                self.media.push(session);
            }
        }
    }

    fn stop_media(&mut self, call_id: &calldock_protocol::CallId) {
        self.media.retain(|m| {
            if &m.call_id == call_id {
                let _ = m.to_media.try_send(ToMedia::Stop);
                false
            } else {
                true
            }
        });
    }

    fn to_media(&self, call_id: &calldock_protocol::CallId, message: ToMedia) {
        if let Some(m) = self.media.iter().find(|m| &m.call_id == call_id) {
            let _ = m.to_media.try_send(message);
        }
    }

    async fn on_media(&mut self, from: FromMedia) {
        match from {
            FromMedia::Signal { call_id, signal } => {
                let message = match signal {
                    PeerSignal::Offer(sdp) => ClientMessage::Sdp { call_id, to: None, kind: SdpKind::Offer, sdp },
                    PeerSignal::Answer(sdp) => ClientMessage::Sdp { call_id, to: None, kind: SdpKind::Answer, sdp },
                    PeerSignal::Candidate(c) => ClientMessage::Ice {
                        call_id,
                        to: None,
                        candidate: c.candidate,
                        sdp_mid: c.sdp_mid,
                        sdp_mline_index: c.sdp_mline_index,
                    },
                };
                self.next_id += 1;
                let frame = socket::frame(&format!("e-m-{}", self.next_id), message);
                if let Some(socket) = self.socket.as_mut()
                    && let Err(e) = socket.send(frame).await
                {
                    self.lost(format!("send failed: {e}"));
                }
            }
            FromMedia::Stats { call_id, stats } => self.emit(EngineEvent::Stats { call_id, stats }).await,
            FromMedia::Device { call_id, change } => self.emit(EngineEvent::Device { call_id, change }).await,
            // Thirty a second: an application that is behind misses pictures, never call events.
            FromMedia::Video { call_id, picture } => {
                let _ = self.events.try_send(EngineEvent::Video { call_id, picture });
            }
            FromMedia::SelfView { call_id, picture } => {
                let _ = self.events.try_send(EngineEvent::SelfView { call_id, picture });
            }
            FromMedia::CameraFailed { call_id, reason } => {
                tracing::warn!(%call_id, "camera failed: {reason}");
                self.emit(EngineEvent::CameraFailed { call_id, reason }).await;
            }
            FromMedia::CameraRefused { call_id, reason } => {
                self.emit(EngineEvent::CameraRefused { call_id, reason }).await;
            }
            FromMedia::Connected(call_id) => self.feed(Input::Media { call_id, event: MediaEvent::Connected }),
            FromMedia::Disconnected(call_id) => self.feed(Input::Media { call_id, event: MediaEvent::Disconnected }),
            FromMedia::AskIceRestart(call_id) => {
                self.next_id += 1;
                let frame =
                    socket::frame(&format!("e-m-{}", self.next_id), ClientMessage::IceRestart { call_id, to: None });
                // While signaling is down the request is lost; the next attempt asks again.
                if let Some(socket) = self.socket.as_mut()
                    && let Err(e) = socket.send(frame).await
                {
                    self.lost(format!("send failed: {e}"));
                }
            }
            FromMedia::Failed { call_id, kind, reason } => {
                tracing::warn!(%call_id, "media failed: {reason}");
                self.feed(Input::Media { call_id, event: MediaEvent::Failed(kind) });
            }
        }
    }

    fn lost(&mut self, reason: String) {
        if self.socket.take().is_none() {
            return;
        }
        tracing::info!("signaling connection lost: {reason}");
        self.feed(Input::SignalingLost);
        self.attempt = 0;
        self.schedule_reconnect(reason);
    }

    fn schedule_reconnect(&mut self, reason: String) {
        let base = self.config.reconnect_initial.as_millis() as u64;
        let max = self.config.reconnect_max.as_millis() as u64;
        let delay = base.saturating_mul(1u64 << self.attempt.min(16)).min(max);
        // Jitter spreads the reconnects of many clients after a server restart.
        let delay = Duration::from_millis(delay / 2 + rand::random::<u64>() % (delay / 2 + 1));
        self.reconnect_at = Some(Instant::now() + delay);
        self.attempt += 1;
        let event =
            EngineEvent::Signaling(SignalingState::Reconnecting { attempt: self.attempt, retry_in: delay, reason });
        let _ = self.events.try_send(event);
    }

    async fn reconnect(&mut self) {
        self.reconnect_at = None;
        let session = if self.session.expires_at > now() {
            match rest::refresh(&self.server, &self.session.token).await {
                Ok(s) => Ok(s),
                Err(EngineError::SessionRefused { .. }) => rest::login(&self.server, &self.config).await,
                Err(e) => Err(e),
            }
        } else {
            rest::login(&self.server, &self.config).await
        };
        let result = match session {
            Ok(session) => socket::open(&self.server, &session.token).await.map(|(s, exp)| (s, session, exp)),
            Err(e) => Err(e),
        };
        match result {
            Ok((socket, session, expires_at)) => {
                self.socket = Some(socket);
                self.set_session(session);
                self.attempt = 0;
                self.emit(EngineEvent::Signaling(SignalingState::Connected {
                    user: self.session.user.clone(),
                    device: self.session.device.clone(),
                    expires_at,
                }))
                .await;
                self.feed(Input::SignalingRestored);
                let watched = self.watched.iter().cloned().collect();
                self.send_presence_watch(watched).await;
            }
            Err(e) if e.transient() => self.schedule_reconnect(e.to_string()),
            Err(e) => {
                self.failed = true;
                self.emit(EngineEvent::Signaling(SignalingState::Failed(e))).await;
            }
        }
    }

    fn set_session(&mut self, session: Session) {
        self.refresh_at = refresh_instant(session.expires_at);
        if let Ok(mut shared) = self.shared_session.lock() {
            *shared = session.clone();
        }
        self.session = session;
    }

    /// Renews the token and re-authenticates the open socket with it.
    async fn refresh(&mut self) {
        match rest::refresh(&self.server, &self.session.token).await {
            Ok(session) => {
                let expires_at = session.expires_at;
                self.next_id += 1;
                let frame = socket::frame(
                    &format!("e-reauth-{}", self.next_id),
                    ClientMessage::Auth { token: session.token.clone() },
                );
                self.set_session(session);
                if let Some(socket) = self.socket.as_mut()
                    && let Err(e) = socket.send(frame).await
                {
                    self.lost(format!("send failed: {e}"));
                }
                self.emit(EngineEvent::TokenRefreshed { expires_at }).await;
            }
            Err(e) => {
                // Try again shortly; if the token runs out first, the server closes the socket
                // and the reconnect signs in afresh.
                tracing::warn!("token refresh failed: {e}");
                self.refresh_at = Instant::now() + Duration::from_secs(1);
            }
        }
    }
}

async fn next_frame(socket: &mut Option<Socket>) -> Option<Result<Message, String>> {
    match socket.as_mut() {
        Some(s) => s.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}
