//! The echo bot's media: for each call the bot is in, a webrtc peer that answers the caller's
//! offer and sends every received Opus packet and, in a video call, every VP8 frame straight
//! back — the classic echo test, with no decoding on the server. Key frame requests pass through
//! too: when the caller asks the bot for one, the bot asks the caller. Like an SFU, the bot tells
//! the caller the most to send it (REMB): a little under what its own estimate says the way back
//! carries, so what comes in can go straight out instead of waiting in its pacer. Signaling it
//! produces goes back through the actor as the bot's own requests, so it takes the same path as
//! any client's.

use std::collections::HashMap;
use std::time::Duration;

use calldock_peer::{Candidate, Peer, PeerEvent, PeerSettings, Signal};
use calldock_protocol::{CallId, ClientMessage, SdpKind, ServerMessage};
use tokio::sync::mpsc;

/// The share of its estimate of the way back the bot lets the caller send it: the rest is the
/// pacer's room to drain a key frame or an encoder's overshoot before the next frame comes.
const FORWARDING_SHARE: f64 = 0.9;

/// How often the bot tells the caller its limit: often enough that the caller follows a
/// narrowing way back within a second (a PLI-sized RTCP packet each time).
const LIMIT_INTERVAL: Duration = Duration::from_millis(500);

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
                    // A video track (and the congestion control that comes with it) only for a
                    // caller who offers video: an audio echo call stays as light as before.
                    let video = sdp.lines().any(|line| line.starts_with("m=video"));
                    let settings = PeerSettings { video, ..self.settings.clone() };
                    tokio::spawn(run(call_id.clone(), settings, rx, self.requests.clone()));
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
    // The RTP timestamp of the last video frame echoed, to send the next one as far after it.
    let mut last_video: Option<u32> = None;
    let mut limit_tick = tokio::time::interval(LIMIT_INTERVAL);
    limit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = limit_tick.tick(), if last_video.is_some() => {
                if let Some(estimate) = peer.send_estimate_bps() {
                    peer.limit_incoming(estimate * FORWARDING_SHARE).await;
                }
            }
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
                Some(PeerEvent::Video(frame)) => {
                    // 90 kHz ticks since the previous frame; 33 ms for the first.
                    let ticks = last_video.map_or(3000, |last| frame.timestamp.wrapping_sub(last).min(90_000));
                    last_video = Some(frame.timestamp);
                    let duration = std::time::Duration::from_micros(u64::from(ticks) * 100 / 9);
                    let sent = peer.send_video(frame.data, duration).await.unwrap_or(false);
                    // The caller lost the echoed picture, or a frame could not be sent back yet:
                    // only the caller can make a fresh key frame.
                    if !sent || peer.take_keyframe_request() {
                        peer.request_keyframe().await;
                    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use calldock_protocol::{DeviceId, UserId};
    use calldock_video::test_pattern::{counter, pattern};
    use calldock_video::{EncoderSettings, Vp8Decoder, Vp8Encoder};

    use super::*;

    /// What the actor would deliver to the bot, from the caller.
    fn from_caller(call_id: &CallId, signal: Signal) -> ServerMessage {
        let (from, from_device) = (UserId::new("alice"), DeviceId::new("laptop"));
        match signal {
            Signal::Offer(sdp) => {
                ServerMessage::Sdp { call_id: call_id.clone(), from, from_device, kind: SdpKind::Offer, sdp }
            }
            Signal::Answer(sdp) => {
                ServerMessage::Sdp { call_id: call_id.clone(), from, from_device, kind: SdpKind::Answer, sdp }
            }
            Signal::Candidate(c) => ServerMessage::Ice {
                call_id: call_id.clone(),
                from,
                from_device,
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
            },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bot_sends_a_callers_video_back() {
        let call_id = CallId::new("video-echo");
        let (requests_tx, mut requests) = mpsc::channel(256);
        let mut bot = EchoMedia::new(PeerSettings::loopback(), requests_tx);
        let (caller, mut events) = Peer::new(&PeerSettings { video: true, ..PeerSettings::loopback() }).await.unwrap();
        bot.on_message(&from_caller(&call_id, caller.offer(false).await.unwrap()));

        let mut encoder = Vp8Encoder::new(EncoderSettings::default());
        let mut decoder = Vp8Decoder::new().unwrap();
        let mut ticker = tokio::time::interval(Duration::from_millis(33));
        let (mut sent, mut echoed, mut connected) = (0u32, Vec::new(), false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while echoed.len() < 45 {
            tokio::select! {
                request = requests.recv() => match request.expect("the bot is running") {
                    ClientMessage::Sdp { kind: SdpKind::Answer, sdp, .. } => {
                        caller.handle_signal(Signal::Answer(sdp)).await.unwrap();
                    }
                    ClientMessage::Ice { candidate, sdp_mid, sdp_mline_index, .. } => {
                        let c = Candidate { candidate, sdp_mid, sdp_mline_index };
                        caller.handle_signal(Signal::Candidate(c)).await.unwrap();
                    }
                    other => panic!("the bot asked for {other:?}"),
                },
                event = events.recv() => match event.expect("the caller's peer is running") {
                    PeerEvent::Signal(signal) => bot.on_message(&from_caller(&call_id, signal)),
                    PeerEvent::Connected => connected = true,
                    PeerEvent::Video(frame) => {
                        if let Ok(Some(picture)) = decoder.decode(&frame.data) {
                            // Clearly this frame: a wrong one would be near 10 dB.
                            assert!(picture.luma_psnr(&pattern(640, 480, counter(&picture))).unwrap() > 20.0);
                            echoed.push(counter(&picture));
                        }
                    }
                    PeerEvent::Failed(kind) => panic!("the echo call failed: {kind:?}"),
                    _ => {}
                },
                _ = ticker.tick(), if connected => {
                    if let Some(frame) = encoder.encode(&pattern(640, 480, sent)).unwrap() {
                        caller.send_video(Bytes::from(frame.data), Duration::from_millis(33)).await.unwrap();
                    }
                    sent += 1;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        assert!(echoed.len() >= 45, "{} of {sent} frames came back", echoed.len());
        assert!(
            echoed.windows(2).all(|w| w[1] == (w[0] + 1) % 256),
            "frames came back out of order or with gaps: {echoed:?}"
        );
        bot.on_message(&ServerMessage::CallEnded {
            call_id,
            reason: calldock_protocol::EndReason::Hangup,
            by: None,
            by_name: None,
            failure: None,
        });
        caller.close().await;
    }
}
