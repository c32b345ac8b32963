//! One call's WebRTC peer connection over webrtc 0.21 (`docs/webrtc-notes.md`): offer/answer
//! and trickle ICE as [`Signal`]s to relay through signaling, one Opus audio track each way and,
//! in a video call, one VP8 track each way ([`Peer::send_video`], [`PeerEvent::Video`], key frame
//! requests both ways), stats, ICE restart, and the failures a call ends with (`failed(ice)`,
//! `failed(dtls)`).
//!
//! The peer is a thin async shell; the call decisions stay in the call core. Events come out
//! of one channel ([`PeerEvent`]). webrtc 0.21 never reports a DTLS fingerprint mismatch as a
//! state, so the peer watches for it itself: ICE connected but no secure connection within
//! [`PeerSettings::dtls_timeout`] is `failed(dtls)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use calldock_protocol::FailureKind;
use reception_reports::ReceptionReportReader;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{
    BandwidthEstimator, CongestionControlBuilder, EstimatorStats, Gcc, NackGeneratorBuilder, NackResponderBuilder,
    PacketReport, Slot, TwccReceiverBuilder, TwccSenderBuilder,
};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers,
};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind, TYPE_RTCP_FB_NACK, TYPE_RTCP_FB_TRANSPORT_CC,
};
use tokio::sync::{Mutex, OnceCell, mpsc};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceConnectionState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, RTCStatsReportEntry, Registry, SettingEngineBuilder, StatsSelector,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpSender;

mod priority_pacer;
mod reception_reports;
mod vp8_frames;
pub use reception_reports::ReceptionReports;

/// A STUN or TURN server (TURN over UDP only: webrtc 0.21 has no TCP/TLS relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub ice_servers: Vec<IceServer>,
    /// Only relay candidates (hides addresses; tests TURN).
    pub relay_only: bool,
    /// UDP addresses to gather host candidates on. A wildcard skips loopback, so tests and
    /// same-machine calls bind `127.0.0.1:0`.
    pub udp_bind: Vec<String>,
    /// Pacing of ICE connectivity checks. webrtc 0.21 acts only on this tick, and every tick
    /// checks every pair still in progress: setup takes a few ticks (its default, 200 ms, adds
    /// about 200 ms to every call), and a pair costs one check per tick until it answers or
    /// fails. 10 ms: setup in about 15 ms on a LAN, at 100 checks/s per pair for the moments
    /// a setup lasts (a browser sends about 20/s over all pairs, but reacts between ticks).
    pub check_interval: Duration,
    /// Checks per candidate pair before it fails: the pair's time budget is this times
    /// `check_interval` (1.5 s by default: long enough for a relayed pair across the world,
    /// short enough that a dead pair costs 150 small datagrams).
    pub max_binding_requests: u16,
    /// ICE connected but no secure (DTLS) connection after this long: `failed(dtls)`. 10 s:
    /// through a TURN relay each DTLS flight arrives 200–400 ms late and a lost one is sent
    /// again only after a fixed 1 s (vendor/README.md: the patched rtc-dtls, which resends lost
    /// flights at all), so a relayed setup on a lossy network costs a few seconds, while a
    /// handshake that cannot succeed (a forged fingerprint) still ends in bounded time.
    pub dtls_timeout: Duration,
    /// Nothing received on the selected pair for this long: `Disconnected`, and the session's
    /// ICE restarts begin. Audio arrives every 20 ms (400 ms in DTX silence), so only a real
    /// outage stays silent this long; webrtc's 5 s default only delays recovery.
    pub ice_disconnected_timeout: Duration,
    /// Consent checks on the selected pair. With 1 s, losing one check or its answer to packet
    /// loss cannot by itself make a silent pair look disconnected.
    pub ice_keepalive_interval: Duration,
    /// A VP8 video track each way besides the audio (a video call), and send-side congestion
    /// control (Google Congestion Control over transport-wide feedback) to say how much the
    /// path carries: [`Peer::send_estimate_bps`].
    pub video: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            relay_only: false,
            udp_bind: vec!["0.0.0.0:0".into()],
            check_interval: Duration::from_millis(10),
            max_binding_requests: 150,
            dtls_timeout: Duration::from_secs(10),
            ice_disconnected_timeout: Duration::from_secs(3),
            ice_keepalive_interval: Duration::from_secs(1),
            video: false,
        }
    }
}

impl PeerSettings {
    /// Settings for calls within this machine (tests, the embedded server's echo bot): checks
    /// cost nothing on loopback, so they go every 5 ms (the same 1.5 s budget per pair).
    pub fn loopback() -> Self {
        Self {
            udp_bind: vec!["127.0.0.1:0".into()],
            check_interval: Duration::from_millis(5),
            max_binding_requests: 300,
            ..Self::default()
        }
    }
}

/// What must reach the other peer through signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Offer(String),
    Answer(String),
    Candidate(Candidate),
}

/// A trickled ICE candidate, as the protocol's `ice` message carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

/// One received RTP packet of the remote audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpAudio {
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// One whole VP8 frame of the remote video track, reassembled from its RTP packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// 90 kHz.
    pub timestamp: u32,
    pub data: Bytes,
    /// Packets were lost before this frame and not repaired: until the next key frame the
    /// picture may be broken (the peer has already asked for one).
    pub after_loss: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    Signal(Signal),
    /// Media flows (ICE and DTLS up). Also after a reconnection.
    Connected,
    /// Connectivity lost after media flowed: ICE `disconnected`, `failed` once the call had
    /// connected, or checking again after an ICE restart (which drops the old path at once).
    /// A restart may bring it back; the session decides when to give up.
    Disconnected,
    /// Over: the call ends with `failed(kind)`.
    Failed(FailureKind),
    Audio(RtpAudio),
    Video(VideoFrame),
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// The remote description is not valid SDP, or does not fit this call.
    #[error("the other side sent an unusable session description: {0}")]
    BadRemoteDescription(String),
}

fn webrtc_error(e: impl std::fmt::Display) -> PeerError {
    PeerError::WebRtc(e.to_string())
}

/// Per-second figures for the stats line, SPEC §5.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStats {
    /// STUN round trip on the selected pair (webrtc 0.21 reports no RTCP round trip).
    pub rtt_ms: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// From the remote audio track's RTP sequence numbers, as reported by webrtc.
    pub packets_lost: i64,
    pub jitter_ms: f64,
    /// What the other side's RTCP reports say about the audio we send.
    pub remote: ReceptionReports,
    pub codec: Option<String>,
    /// `host`, `srflx`, `prflx` or `relay`.
    pub local_candidate_type: Option<String>,
    pub remote_candidate_type: Option<String>,
}

struct Flags {
    ice_connected: AtomicBool,
    connected: AtomicBool,
    failed: AtomicBool,
    /// ICE is `failed` right now (after media flowed, an ICE restart may still repair it).
    ice_failed: AtomicBool,
}

struct Handler {
    events: mpsc::Sender<PeerEvent>,
    flags: Arc<Flags>,
    dtls_timeout: Duration,
    remote_video: Arc<RemoteVideo>,
}

/// The other side's video track, for asking it for key frames.
#[derive(Default)]
struct RemoteVideo {
    track: std::sync::Mutex<Option<Arc<dyn TrackRemote>>>,
    last_request: std::sync::Mutex<Option<Instant>>,
}

impl RemoteVideo {
    /// At most one request per this long: a key frame takes a round trip and a few frames to
    /// arrive, and every request in between would only cost the sender another large frame.
    const REQUEST_INTERVAL: Duration = Duration::from_millis(300);

    /// Sends a picture loss indication (RFC 4585 §6.3.1) for the remote video track.
    async fn request_keyframe(&self) {
        let now = Instant::now();
        {
            let mut last = self.last_request.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < Self::REQUEST_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let track = self.track.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let Some(track) = track else { return };
        for media_ssrc in track.ssrcs().await {
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
            if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!("cannot ask for a key frame: {e}");
            }
        }
    }

    /// Sends a receiver estimated maximum bitrate (REMB, draft-alvestrand-rmcat-remb) for the
    /// remote video track: the most the other side should send us, all its streams together.
    async fn limit(&self, bits_per_second: f64) {
        let track = self.track.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let Some(track) = track else { return };
        let ssrcs = track.ssrcs().await;
        if ssrcs.is_empty() {
            return;
        }
        let remb = ReceiverEstimatedMaximumBitrate { sender_ssrc: 0, bitrate: bits_per_second as f32, ssrcs };
        if let Err(e) = track.write_rtcp(vec![Box::new(remb)]).await {
            tracing::debug!("cannot send a bitrate limit: {e}");
        }
    }
}

/// Reads the remote video track: RTP packets reassembled into whole VP8 frames. A frame that
/// lost packets (after NACK retransmissions had their chance) is dropped and a key frame is
/// asked for, as is one at the start, in case the first key frame was lost.
async fn read_video(track: Arc<dyn TrackRemote>, remote: Arc<RemoteVideo>, events: mpsc::Sender<PeerEvent>) {
    // Wait up to 200 ms (about two retransmission round trips on a long path) for a missing
    // packet before giving its frame up.
    let mut frames = vp8_frames::FrameAssembler::new(200);
    let mut first = true;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let header = &packet.header;
                for frame in frames.push(header.sequence_number, header.timestamp, header.marker, &packet.payload) {
                    if (frame.after_loss || first) && !frame.is_key_frame() {
                        remote.request_keyframe().await;
                    }
                    first = false;
                    let frame =
                        VideoFrame { timestamp: frame.timestamp, data: frame.data, after_loss: frame.after_loss };
                    // A frame that cannot be queued is late anyway; the decoder will ask for a
                    // key frame if what follows does not decode.
                    let _ = events.try_send(PeerEvent::Video(frame));
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

impl Handler {
    fn fail(&self, kind: FailureKind) {
        if !self.flags.failed.swap(true, Ordering::SeqCst) {
            let _ = self.events.try_send(PeerEvent::Failed(kind));
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let candidate = Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                };
                let _ = self.events.send(PeerEvent::Signal(Signal::Candidate(candidate))).await;
            }
            Err(e) => tracing::warn!("cannot serialize a local ICE candidate: {e}"),
        }
    }

    /// webrtc 0.21 has no null-candidate event: gathering `Complete` is the end of candidates,
    /// relayed as an empty candidate (docs/protocol.md §9.2). Trickle ICE peers that follow RFC
    /// 8838, such as aioice (aiortc), only declare ICE failed once they have it.
    async fn on_ice_gathering_state_change(&self, state: webrtc::peer_connection::RTCIceGatheringState) {
        if state == webrtc::peer_connection::RTCIceGatheringState::Complete {
            let end = Candidate { candidate: String::new(), sdp_mid: None, sdp_mline_index: None };
            let _ = self.events.send(PeerEvent::Signal(Signal::Candidate(end))).await;
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.flags.ice_failed.store(state == RTCIceConnectionState::Failed, Ordering::SeqCst);
        match state {
            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                if !self.flags.ice_connected.swap(true, Ordering::SeqCst) =>
            {
                let flags = self.flags.clone();
                let events = self.events.clone();
                let timeout = self.dtls_timeout;
                tokio::spawn(async move {
                    tokio::time::sleep(timeout).await;
                    if !flags.connected.load(Ordering::SeqCst) && !flags.failed.swap(true, Ordering::SeqCst) {
                        let _ = events.try_send(PeerEvent::Failed(FailureKind::Dtls));
                    }
                });
            }
            // Once media has flowed, a failed ICE generation is for ICE restarts to repair.
            RTCIceConnectionState::Failed if self.flags.connected.load(Ordering::SeqCst) => {
                let _ = self.events.send(PeerEvent::Disconnected).await;
            }
            RTCIceConnectionState::Failed => self.fail(FailureKind::Ice),
            _ => {}
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                self.flags.connected.store(true, Ordering::SeqCst);
                let _ = self.events.send(PeerEvent::Connected).await;
            }
            RTCPeerConnectionState::Disconnected => {
                let _ = self.events.send(PeerEvent::Disconnected).await;
            }
            // Connecting again after media flowed: an ICE restart (ours, or the other side's
            // restart offer) dropped the old path, so media is down until the new one is up.
            RTCPeerConnectionState::Connecting if self.flags.connected.load(Ordering::SeqCst) => {
                let _ = self.events.send(PeerEvent::Disconnected).await;
            }
            // An ICE failure is reported by the ICE state handler, for a restart to repair; with
            // ICE up, it is the secure (DTLS) transport that failed, and nothing repairs that.
            // webrtc reports the connection state before the ICE state it derives from, so
            // look at the ICE state a moment later.
            RTCPeerConnectionState::Failed if self.flags.connected.load(Ordering::SeqCst) => {
                let flags = self.flags.clone();
                let events = self.events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if !flags.ice_failed.load(Ordering::SeqCst) && !flags.failed.swap(true, Ordering::SeqCst) {
                        let _ = events.try_send(PeerEvent::Failed(FailureKind::Dtls));
                    }
                });
            }
            RTCPeerConnectionState::Failed => {
                let kind = if self.flags.ice_connected.load(Ordering::SeqCst)
                    && !self.flags.connected.load(Ordering::SeqCst)
                {
                    FailureKind::Dtls
                } else {
                    FailureKind::Ice
                };
                self.fail(kind);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let events = self.events.clone();
        if track.kind().await == RtpCodecKind::Video {
            *self.remote_video.track.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(track.clone());
            tokio::spawn(read_video(track, self.remote_video.clone(), events));
            return;
        }
        // The driver must not block: read the track in a task of its own.
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let audio = RtpAudio {
                            sequence: packet.header.sequence_number,
                            timestamp: packet.header.timestamp,
                            payload: packet.payload.clone(),
                        };
                        // Audio that cannot be queued is late anyway: drop it, the jitter
                        // buffer conceals it.
                        let _ = events.try_send(PeerEvent::Audio(audio));
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

/// Where a video call's bandwidth estimate starts, and its bounds, bit/s: Chromium's start
/// (300 kbit/s) would begin every call blurry; 600 carries a clear 640×480 picture and audio
/// on any broadband path, and the estimate moves within seconds either way.
const INITIAL_ESTIMATE_BPS: f64 = 600_000.0;
const MIN_ESTIMATE_BPS: f64 = 30_000.0;
const MAX_ESTIMATE_BPS: f64 = 2_500_000.0;

/// How many times the receiver asks for one lost video packet (NACK, RFC 4585 §6.2.1), a
/// round every 100 ms: the frame assembler gives a missing packet up after 200 ms anyway. rtc's
/// default asks again every round for as long as the packet is missing; on a congested path each
/// retransmission queued behind the others in the sender's pacer and was asked for again, so
/// the pacer filled with copies of old packets and new frames waited seconds behind them.
const NACKS_PER_PACKET: u16 = 2;

/// rtc's `configure_nack` with the retries bounded ([`NACKS_PER_PACKET`]).
fn configure_nack(registry: Registry, media: &mut MediaEngine) -> Registry {
    for parameter in ["", "pli"] {
        media.register_feedback(
            RTCPFeedback { typ: TYPE_RTCP_FB_NACK.to_owned(), parameter: parameter.to_owned() },
            RtpCodecKind::Video,
        );
    }
    registry
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().with_max_nacks_per_packet(NACKS_PER_PACKET).build())
}

/// rtc's `configure_congestion_control` with transport-wide feedback, and with Calldock's pacer
/// in the pacer's slot: audio first, then retransmissions, then video ([`priority_pacer`]).
fn configure_congestion_control(
    registry: Registry,
    estimator: PublishedEstimate,
    media: &mut MediaEngine,
) -> Result<Registry, PeerError> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media.register_feedback(
            RTCPFeedback { typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(), parameter: String::new() },
            kind,
        );
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned() },
                kind,
                None,
            )
            .map_err(webrtc_error)?;
    }
    Ok(registry
        .with(Slot::CongestionControl, CongestionControlBuilder::new(estimator).build())
        .with(Slot::Pacer, priority_pacer::PriorityPacer::new())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build()))
}

/// Google Congestion Control, with its estimate published where the media session reads it
/// (the estimator is the one part of rtc's congestion loop the application supplies), and held
/// under the most the other side says it wants (REMB), as libwebrtc holds its own: a forwarding
/// server (the echo bot, an SFU) can pass on no more than its own way onward carries, and what
/// it cannot pass on would wait in its queue. The pacer sends at that rate too.
struct PublishedEstimate {
    inner: Gcc,
    reports: Arc<std::sync::Mutex<ReceptionReports>>,
    published: Arc<AtomicU64>,
}

impl PublishedEstimate {
    /// What the media may use: the estimate, under the other side's limit.
    fn media_rate(&self) -> f64 {
        let limit = self.reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).max_bitrate_bps;
        let estimate = self.inner.target_bitrate();
        limit.map_or(estimate, |limit| estimate.min(limit.max(MIN_ESTIMATE_BPS)))
    }

    fn publish(&self) {
        self.published.store(self.media_rate().to_bits(), Ordering::Relaxed);
    }
}

impl BandwidthEstimator for PublishedEstimate {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.media_rate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// One outgoing track.
struct LocalTrack {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    payload_type: OnceCell<u8>,
}

impl LocalTrack {
    async fn new(
        pc: &Arc<dyn PeerConnection>,
        kind: RtpCodecKind,
        codec: RTCRtpCodec,
        id: &str,
        label: &str,
    ) -> Result<LocalTrack, PeerError> {
        let ssrc = rand::random::<u32>();
        let track = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "calldock".to_owned(),
                    id.to_owned(),
                    label.to_owned(),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                        codec,
                        ..Default::default()
                    }],
                ),
            )
            .map_err(webrtc_error)?,
        );
        let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(webrtc_error)?;
        Ok(LocalTrack { track, sender, ssrc, payload_type: OnceCell::new() })
    }

    /// Sends one sample. `false` when it was dropped because media is not negotiated yet (the
    /// first samples of a call, before the answer, or a track the other side declined).
    async fn send(&self, data: Bytes, duration: Duration) -> Result<bool, PeerError> {
        let pt = match self.payload_type.get() {
            Some(pt) => *pt,
            None => {
                let negotiated = self
                    .sender
                    .get_parameters()
                    .await
                    .ok()
                    .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
                let Some(pt) = negotiated else { return Ok(false) };
                let _ = self.payload_type.set(pt);
                pt
            }
        };
        let sample = Sample { data, duration, ..Sample::new(Instant::now()) };
        self.track.sample_writer(self.ssrc, pt).write_sample(&sample).await.map_err(webrtc_error)?;
        Ok(true)
    }
}

/// One peer connection with one outgoing Opus track, and in a video call one VP8 track.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    audio: LocalTrack,
    video: Option<LocalTrack>,
    remote_video: Arc<RemoteVideo>,
    /// Key frame requests from the other side already acted on.
    keyframe_requests_seen: std::sync::atomic::AtomicU64,
    /// The congestion controller's estimate, bit/s (as f64 bits; 0 without one).
    estimate: Arc<AtomicU64>,
    /// Remote candidates that arrived before the remote description.
    pending: Mutex<Vec<RTCIceCandidateInit>>,
    relay_only: bool,
    reports: Arc<std::sync::Mutex<ReceptionReports>>,
}

/// One webrtc ICE server per URI, skipping URIs webrtc cannot use: they come from the
/// signaling server, and one bad URI (or a TURN URI without credentials) would otherwise make
/// webrtc refuse the whole configuration and the call.
fn ice_configuration(servers: &[IceServer], relay_only: bool) -> webrtc::peer_connection::RTCConfiguration {
    let ice_servers = servers
        .iter()
        .flat_map(|s| {
            s.urls.iter().map(|url| RTCIceServer {
                urls: vec![url.clone()],
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
        })
        .filter(|server| match server.urls() {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(url = ?server.urls, "skipping an unusable ICE server: {e}");
                false
            }
        })
        .collect();
    let mut configuration = RTCConfigurationBuilder::new().with_ice_servers(ice_servers);
    if relay_only {
        configuration = configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    configuration.build()
}

impl Peer {
    /// Builds the connection; events (signals to relay, state, audio) arrive on the returned
    /// channel.
    pub async fn new(settings: &PeerSettings) -> Result<(Peer, mpsc::Receiver<PeerEvent>), PeerError> {
        let mut media = MediaEngine::default();
        media.register_default_codecs().map_err(webrtc_error)?;
        // Wire-most: it only observes, so it sees every report before any interceptor acts on it.
        let (report_reader, reports) = ReceptionReportReader::new();
        let estimate = Arc::new(AtomicU64::new(0));
        let mut registry = Registry::new();
        if settings.video {
            // Before the default interceptors, as rtc wants: the send history, the pacer and
            // the transport-wide feedback each take the slot the chain keeps for them.
            let estimator = PublishedEstimate {
                inner: Gcc::new(INITIAL_ESTIMATE_BPS, MIN_ESTIMATE_BPS, MAX_ESTIMATE_BPS),
                reports: reports.clone(),
                published: estimate.clone(),
            };
            registry = configure_congestion_control(registry, estimator, &mut media)?;
            // rtc's defaults less the transport-wide feedback receiver, which congestion
            // control has just installed (a second one only replaces it, with a warning).
            registry = configure_nack(registry, &mut media);
            configure_simulcast_extension_headers(&mut media).map_err(webrtc_error)?;
            registry = configure_rtcp_reports(registry);
        } else {
            registry = register_default_interceptors(registry, &mut media).map_err(webrtc_error)?;
        }
        let registry = registry.with(Slot::from(500), report_reader);
        let mut setting_engine = SettingEngineBuilder::new()
            // The default mDNS mode binds 0.0.0.0:5353; Calldock does not use mDNS candidates.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(Some(settings.check_interval), Some(settings.max_binding_requests))
            .with_ice_timeouts(Some(settings.ice_disconnected_timeout), None, Some(settings.ice_keepalive_interval))
            // A check from the other side often arrives before its trickled candidate, so the
            // pair is first learned as peer-reflexive; responses then stay with that pair even
            // when the same address arrives as a host candidate. webrtc waits 1 s before
            // nominating a peer-reflexive pair (hoping for a better one): one setup in four took
            // 1 s longer on loopback. The address is the same either way; nominate at once.
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO));
        if settings.relay_only {
            // webrtc waits 2 s before nominating a relay pair, hoping for a direct one; with
            // only relay candidates there is none to wait for (it would add 2 s to every
            // setup and every ICE restart).
            setting_engine = setting_engine.with_relay_acceptance_min_wait(Some(Duration::ZERO));
        }
        let setting_engine = setting_engine.build();
        let configuration = ice_configuration(&settings.ice_servers, settings.relay_only);
        let (events_tx, events) = mpsc::channel(1024);
        let flags = Arc::new(Flags {
            ice_connected: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            ice_failed: AtomicBool::new(false),
        });
        let remote_video = Arc::new(RemoteVideo::default());
        let handler = Arc::new(Handler {
            events: events_tx,
            flags,
            dtls_timeout: settings.dtls_timeout,
            remote_video: remote_video.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine)
            .with_handler(handler)
            .with_udp_addrs(settings.udp_bind.clone())
            .build()
            .await
            .map_err(webrtc_error)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let opus = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        };
        let audio = LocalTrack::new(&pc, RtpCodecKind::Audio, opus, "calldock-audio", "microphone").await?;
        let video = if settings.video {
            let vp8 = RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            };
            Some(LocalTrack::new(&pc, RtpCodecKind::Video, vp8, "calldock-video", "camera").await?)
        } else {
            None
        };
        let peer = Peer {
            pc,
            audio,
            video,
            remote_video,
            keyframe_requests_seen: std::sync::atomic::AtomicU64::new(0),
            estimate,
            pending: Mutex::new(Vec::new()),
            relay_only: settings.relay_only,
            reports,
        };
        Ok((peer, events))
    }

    /// Replaces the STUN/TURN servers (fresh TURN credentials). webrtc applies them when the
    /// next local description is set, so they serve the next ICE restart; a live TURN
    /// allocation is re-signed rather than replaced.
    pub async fn set_ice_servers(&self, servers: &[IceServer]) -> Result<(), PeerError> {
        self.pc.set_configuration(ice_configuration(servers, self.relay_only)).await.map_err(webrtc_error)
    }

    /// Creates and applies an offer; returns it for signaling. With `ice_restart`, new ICE
    /// credentials make the other side reconnect from scratch.
    pub async fn offer(&self, ice_restart: bool) -> Result<Signal, PeerError> {
        if ice_restart {
            self.pc.restart_ice().await.map_err(webrtc_error)?;
        }
        let offer = self.pc.create_offer(None).await.map_err(webrtc_error)?;
        self.pc.set_local_description(offer).await.map_err(webrtc_error)?;
        let offer = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| webrtc_error("no local description after applying the offer"))?;
        Ok(Signal::Offer(offer.sdp))
    }

    /// Applies what the other side sent. For an offer, returns the answer to send back.
    pub async fn handle_signal(&self, signal: Signal) -> Result<Option<Signal>, PeerError> {
        match signal {
            Signal::Offer(sdp) => {
                let offer =
                    RTCSessionDescription::offer(sdp).map_err(|e| PeerError::BadRemoteDescription(e.to_string()))?;
                self.pc
                    .set_remote_description(offer)
                    .await
                    .map_err(|e| PeerError::BadRemoteDescription(e.to_string()))?;
                self.flush_pending().await?;
                let answer = self.pc.create_answer(None).await.map_err(webrtc_error)?;
                self.pc.set_local_description(answer).await.map_err(webrtc_error)?;
                let answer = self
                    .pc
                    .local_description()
                    .await
                    .ok_or_else(|| webrtc_error("no local description after answering"))?;
                Ok(Some(Signal::Answer(answer.sdp)))
            }
            Signal::Answer(sdp) => {
                let answer =
                    RTCSessionDescription::answer(sdp).map_err(|e| PeerError::BadRemoteDescription(e.to_string()))?;
                self.pc
                    .set_remote_description(answer)
                    .await
                    .map_err(|e| PeerError::BadRemoteDescription(e.to_string()))?;
                self.flush_pending().await?;
                Ok(None)
            }
            Signal::Candidate(c) => {
                if c.candidate.is_empty() {
                    return Ok(None); // end of candidates: nothing to do for webrtc 0.21
                }
                let init = RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                    ..Default::default()
                };
                if self.pc.remote_description().await.is_some() {
                    // A malformed candidate from the other side is its problem, not a reason
                    // to end the call: other candidates may work.
                    if let Err(e) = self.pc.add_ice_candidate(init).await {
                        tracing::debug!("ignoring a remote candidate: {e}");
                    }
                } else {
                    let mut pending = self.pending.lock().await;
                    if pending.len() < 256 {
                        pending.push(init);
                    }
                }
                Ok(None)
            }
        }
    }

    async fn flush_pending(&self) -> Result<(), PeerError> {
        let pending: Vec<_> = std::mem::take(&mut *self.pending.lock().await);
        for init in pending {
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                tracing::debug!("ignoring a remote candidate: {e}");
            }
        }
        Ok(())
    }

    /// Sends one 20 ms Opus packet. Returns `false` when it was dropped because media is not
    /// negotiated yet (the first packets of a call, before the answer).
    pub async fn send_audio(&self, payload: Bytes) -> Result<bool, PeerError> {
        self.audio.send(payload, Duration::from_millis(20)).await
    }

    /// Sends one encoded VP8 frame, `duration` after the one before (the RTP timestamp moves by
    /// that much). Returns `false` when it was dropped: video not negotiated (yet), or this is
    /// not a video call.
    pub async fn send_video(&self, frame: Bytes, duration: Duration) -> Result<bool, PeerError> {
        match &self.video {
            Some(video) => video.send(frame, duration).await,
            None => Ok(false),
        }
    }

    /// Whether the other side asked for a key frame (PLI or FIR) since the last call: the
    /// next frame sent should be one.
    pub fn take_keyframe_request(&self) -> bool {
        let requests = self.reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).keyframe_requests;
        self.keyframe_requests_seen.swap(requests, Ordering::SeqCst) != requests
    }

    /// How many bits per second the path to the other side carries, by the congestion
    /// controller's estimate (video calls only; `None` in an audio call).
    pub fn send_estimate_bps(&self) -> Option<f64> {
        let bits = self.estimate.load(Ordering::Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }

    /// Asks the other side for a key frame: what we received does not decode.
    pub async fn request_keyframe(&self) {
        self.remote_video.request_keyframe().await;
    }

    /// Tells the other side the most it should send us, bit/s (a REMB about its video): what a
    /// forwarder can pass on. A Calldock peer holds its estimate under the latest it received
    /// ([`ReceptionReports::max_bitrate_bps`]). Nothing happens before the other side's video
    /// arrives.
    pub async fn limit_incoming(&self, bits_per_second: f64) {
        self.remote_video.limit(bits_per_second).await;
    }

    pub async fn stats(&self) -> PeerStats {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let mut stats = PeerStats::default();
        if let Some(transport) = report.transport() {
            stats.bytes_sent = transport.bytes_sent;
            stats.bytes_received = transport.bytes_received;
            if let Some(RTCStatsReportEntry::IceCandidatePair(pair)) = report.get(&transport.selected_candidate_pair_id)
            {
                if pair.responses_received > 0 {
                    stats.rtt_ms = Some(pair.current_round_trip_time * 1000.0);
                }
                // Pair entries name candidates `candidate:X`; candidate entries are
                // `RTC…IceCandidate_candidate:X`.
                let kind = |id: &str| {
                    report.iter().find_map(|e| match e {
                        RTCStatsReportEntry::LocalCandidate(c) | RTCStatsReportEntry::RemoteCandidate(c)
                            if !id.is_empty() && c.stats.id.ends_with(id) =>
                        {
                            Some(c.candidate_type.to_string())
                        }
                        _ => None,
                    })
                };
                stats.local_candidate_type = kind(&pair.local_candidate_id);
                // A peer-reflexive remote has no entry of its own.
                stats.remote_candidate_type = kind(&pair.remote_candidate_id).or_else(|| Some("prflx".into()));
            }
        }
        for entry in report.iter() {
            match entry {
                RTCStatsReportEntry::Codec(c) if c.mime_type.to_lowercase().contains("opus") => {
                    stats.codec = Some(c.mime_type.clone());
                }
                // The loss and jitter figures are the audio's: what a call's quality is judged by
                // (SPEC §5's MOS), and in a video call the video's would swamp them.
                RTCStatsReportEntry::OutboundRtp(o)
                    if o.sent_rtp_stream_stats.rtp_stream_stats.kind == RtpCodecKind::Audio =>
                {
                    stats.packets_sent += o.sent_rtp_stream_stats.packets_sent;
                }
                RTCStatsReportEntry::InboundRtp(i)
                    if i.received_rtp_stream_stats.rtp_stream_stats.kind == RtpCodecKind::Audio =>
                {
                    stats.packets_received += i.received_rtp_stream_stats.packets_received;
                    stats.packets_lost += i.received_rtp_stream_stats.packets_lost;
                    // Reported in RTP timestamp units (48 kHz), not seconds.
                    stats.jitter_ms = i.received_rtp_stream_stats.jitter / 48.0;
                }
                _ => {}
            }
        }
        stats.remote = *self.reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        stats
    }

    pub async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing the peer connection: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(url: &str, username: &str) -> IceServer {
        IceServer { urls: vec![url.into()], username: username.into(), credential: "secret".into() }
    }

    #[test]
    fn unusable_ice_servers_are_skipped_rather_than_fatal() {
        let servers = [
            IceServer {
                urls: vec!["turn:127.0.0.1:3478?transport=udp".into(), "not a uri".into()],
                username: "1700000000:alice".into(),
                credential: "secret".into(),
            },
            // TURN without credentials: webrtc refuses the whole configuration for it.
            turn("turn:127.0.0.1:3479", ""),
            IceServer { urls: vec!["stun:127.0.0.1:3478".into()], username: String::new(), credential: String::new() },
        ];
        let configuration = ice_configuration(&servers, true);
        let urls: Vec<_> = configuration.ice_servers().iter().flat_map(|s| s.urls.clone()).collect();
        assert_eq!(urls, ["turn:127.0.0.1:3478?transport=udp", "stun:127.0.0.1:3478"]);
        assert_eq!(configuration.ice_transport_policy(), RTCIceTransportPolicy::Relay);
    }

    #[tokio::test]
    async fn a_peer_takes_fresh_credentials_mid_call() {
        let settings = PeerSettings {
            ice_servers: vec![turn("turn:127.0.0.1:3478", "1700000000:alice"), turn("bogus", "x")],
            ..PeerSettings::loopback()
        };
        let (peer, _events) = Peer::new(&settings).await.expect("a bad server URI does not stop a call");
        peer.set_ice_servers(&[turn("turn:127.0.0.1:3478", "1700000600:alice")]).await.unwrap();
        let configuration = peer.pc.get_configuration().await;
        assert_eq!(configuration.ice_servers()[0].username, "1700000600:alice");
        peer.close().await;
    }
}
