//! The echo bot's media: for each call the bot is in, a webrtc peer that answers the caller's
//! offer and sends every received Opus packet straight back — the classic echo test, with no
//! decoding on the server. Signaling it produces goes back through the actor as the bot's own
//! requests, so it takes the same path as any client's.

use std::collections::HashMap;

use calldock_peer::{Candidate, Peer, PeerEvent, PeerSettings, Signal};
use calldock_protocol::{CallId, ClientMessage, SdpKind, ServerMessage};
use tokio::sync::mpsc;

enum ToEcho {
    Signal(Signal),
    Stop,
}

/// The echo media sessions of one server.
pub struct EchoMedia {
    settings: PeerSettings,
    sessions: HashMap<CallId, mpsc::Sender<ToEcho>>,
    /// Requests the sessions want the bot to send (answers, candidates).
    requests: mpsc::Sender<ClientMessage>,
}

impl EchoMedia {
    pub fn new(settings: PeerSettings, requests: mpsc::Sender<ClientMessage>) -> Self {
        Self { settings, sessions: HashMap::new(), requests }
    }

    /// Handles a message to the bot that concerns media; other messages are left alone.
    pub fn on_message(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Sdp { call_id, kind: SdpKind::Offer, sdp, .. } => {
                let tx = self.sessions.entry(call_id.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(256);
                    tokio::spawn(run(call_id.clone(), self.settings.clone(), rx, self.requests.clone()));
                    tx
                });
                let _ = tx.try_send(ToEcho::Signal(Signal::Offer(sdp.clone())));
            }
            ServerMessage::Ice { call_id, candidate, sdp_mid, sdp_mline_index, .. } => {
                if let Some(tx) = self.sessions.get(call_id) {
                    let candidate = Candidate {
                        candidate: candidate.clone(),
                        sdp_mid: sdp_mid.clone(),
                        sdp_mline_index: *sdp_mline_index,
                    };
                    let _ = tx.try_send(ToEcho::Signal(Signal::Candidate(candidate)));
                }
            }
            ServerMessage::CallEnded { call_id, .. } => {
                if let Some(tx) = self.sessions.remove(call_id) {
                    let _ = tx.try_send(ToEcho::Stop);
                }
            }
            _ => {}
        }
    }
}

async fn run(
    call_id: CallId,
    settings: PeerSettings,
    mut inbox: mpsc::Receiver<ToEcho>,
    requests: mpsc::Sender<ClientMessage>,
) {
    let (peer, mut events) = match Peer::new(&settings).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%call_id, "echo bot cannot create a peer: {e}");
            let _ = requests
                .send(ClientMessage::CallEnd {
                    call_id,
                    failure: Some(calldock_protocol::FailureKind::Media),
                    reconnect_timeout: false,
                })
                .await;
            return;
        }
    };
    let relay = |signal: Signal| match signal {
        Signal::Offer(sdp) => ClientMessage::Sdp { call_id: call_id.clone(), to: None, kind: SdpKind::Offer, sdp },
        Signal::Answer(sdp) => ClientMessage::Sdp { call_id: call_id.clone(), to: None, kind: SdpKind::Answer, sdp },
        Signal::Candidate(c) => ClientMessage::Ice {
            call_id: call_id.clone(),
            to: None,
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
        },
    };
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                None | Some(ToEcho::Stop) => break,
                Some(ToEcho::Signal(signal)) => match peer.handle_signal(signal).await {
                    Ok(Some(answer)) => { let _ = requests.send(relay(answer)).await; }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(%call_id, "echo bot ignores unusable signaling: {e}"),
                },
            },
            event = events.recv() => match event {
                None => break,
                Some(PeerEvent::Signal(signal)) => { let _ = requests.send(relay(signal)).await; }
                Some(PeerEvent::Audio(rtp)) => {
                    // The echo: the caller's own packets, straight back.
                    let _ = peer.send_audio(rtp.payload).await;
                }
                Some(PeerEvent::Failed(kind)) => {
                    tracing::info!(%call_id, "echo media failed: {kind:?}");
                    break;
                }
                Some(_) => {}
            },
        }
    }
    peer.close().await;
}
