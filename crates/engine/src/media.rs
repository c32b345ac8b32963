//! A call's media: one [`Peer`] plus the audio pipeline between it and the call's devices
//! (real ones, or virtual ones for tests and support: see [`crate::sound`]), and in a video call
//! the camera's pictures and the other side's ([`crate::video`]).
//!
//! The session runs as its own task. The driver hands it the call's relayed signaling and
//! receives what to relay back and what happened to the connection.
//!
//! The peer gathers candidates with the STUN/TURN servers the signaling server hands out
//! ([`IceServerCache`]). When the connection is lost after media flowed, the session restarts
//! ICE on its own ([`crate::ice_restart`]) and ends the call `failed(ice)` if that does not
//! bring it back in time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use calldock_audio::codec::OpusSettings;
use calldock_audio::pipeline::{ReceivePipeline, SendPipeline};
use calldock_audio::processing::ProcessingSwitches;
use calldock_audio::{FRAME_10MS, FRAME_20MS, SAMPLE_RATE};
use calldock_media::fec::FecPlan;
use calldock_media::jitter::JitterConfig;
use calldock_peer::{Peer, PeerEvent, PeerSettings, Signal};
use calldock_protocol::{CallId, FailureKind};
use tokio::sync::mpsc;

use crate::ice_restart::{IceRestarts, RestartPolicy, RestartStep};
use crate::ice_servers::{self, IceServerCache};
pub use crate::sound::{DeviceChange, Microphone, Speaker};
use crate::sound::{MicrophoneInput, SpeakerOutput};
use crate::video::{self, VideoControl, VideoReceiver};
use crate::video_rate::{SendFormatPolicy, VideoRatePolicy};
pub use calldock_devices::camera::CameraSource;
use calldock_video::EncoderSettings;

/// How calls get media.
#[derive(Debug, Clone)]
// A configuration, made once per engine and cloned once per call: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum MediaConfig {
    /// No media: a call counts as connected once answered (signaling tests, conformance).
    SignalingOnly,
    Audio {
        microphone: Microphone,
        speaker: Speaker,
        peer: PeerSettings,
        processing: ProcessingSwitches,
        /// What video calls show of us.
        camera: CameraSource,
    },
}

/// From the driver to a session.
#[derive(Debug)]
pub enum ToMedia {
    Signal(Signal),
    /// The other side asks for an ICE restart (offerer: send a restart offer).
    RestartIce,
    /// Microphone muted or not: the track keeps running and carries silence (DTX).
    Mute(bool),
    /// Another microphone or speaker, mid-call: no renegotiation, the track goes on.
    SetMicrophone(Microphone),
    SetSpeaker(Speaker),
    /// Camera off or on again in a video call: nothing is sent while it is off.
    CameraOff(bool),
    /// Another camera, mid-call: the picture changes, the call goes on.
    SetCamera(CameraSource),
    Stop,
}

/// One second of a call's media, SPEC §5. Serialized as the CLI's `stats` lines and the
/// desktop UI's `call-stats` event carry it (docs/desktop-ipc.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallStats {
    pub rtt_ms: Option<f64>,
    pub jitter_ms: f64,
    /// Packets lost in the last interval, percent of those expected.
    pub loss_percent: f64,
    /// Of the packets we send, the share the other side reports losing (its latest RTCP
    /// report, about one a second), percent; `None` until it has reported.
    pub sent_loss_percent: Option<f64>,
    pub send_kbps: f64,
    pub receive_kbps: f64,
    pub codec: Option<String>,
    /// `host`, `srflx`, `prflx` or `relay`.
    pub local_candidate: Option<String>,
    pub remote_candidate: Option<String>,
    /// What was received in the last interval, dBFS.
    pub audio_level_dbfs: f64,
    pub jitter_buffer_delay_ms: u32,
    pub concealed_samples: u64,
    /// The loss, in percent, the sent audio's in-band FEC protects against (0: none), from
    /// what the other side reports losing (calldock_media::fec::FecPlan).
    pub fec_percent: i32,
    pub mos: f64,
    #[serde(serialize_with = "quality_name")]
    pub quality: calldock_media::quality::QualityLabel,
    /// In a video call.
    pub video: Option<VideoStats>,
}

/// One second of a video call's pictures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoStats {
    pub sent_fps: f64,
    /// Of the last picture sent (smaller on a narrow path, crate::video_rate); 0 before the first.
    pub sent_width: u32,
    pub sent_height: u32,
    pub received_fps: f64,
    /// Of the last picture shown; 0 before the first.
    pub received_width: u32,
    pub received_height: u32,
    /// Received frames that did not decode, since the call began.
    pub undecodable_frames: u64,
    pub camera_off: bool,
    /// What the path to the other side carries, by the congestion controller, kbit/s; `None`
    /// before its first estimate.
    pub estimate_kbps: Option<f64>,
    /// The most the other side asked us to send, kbit/s (a forwarding server's REMB: what it
    /// can pass on); the estimate stays under it. `None` when it asked nothing.
    pub limit_kbps: Option<f64>,
    /// The encoder's target now.
    pub target_kbps: u32,
    /// No video is sent: the estimate cannot carry it (the call goes on with audio).
    pub paused_for_bandwidth: bool,
}

fn quality_name<S: serde::Serializer>(
    label: &calldock_media::quality::QualityLabel,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(label.as_str())
}

/// From a session to the driver.
#[derive(Debug)]
pub enum FromMedia {
    Stats {
        call_id: CallId,
        stats: CallStats,
    },
    Signal {
        call_id: CallId,
        signal: Signal,
    },
    Connected(CallId),
    Disconnected(CallId),
    /// The answerer lost the connection: ask the offerer to restart ICE (`ice.restart`).
    AskIceRestart(CallId),
    Failed {
        call_id: CallId,
        kind: FailureKind,
        reason: String,
    },
    /// A device changed without being asked (failed, or came back), or a requested switch failed.
    Device {
        call_id: CallId,
        change: DeviceChange,
    },
    /// A picture of the other side, decoded.
    Video {
        call_id: CallId,
        picture: Arc<calldock_video::Picture>,
    },
    /// A thumbnail of what our camera sends (crate::video::SELF_VIEW).
    SelfView {
        call_id: CallId,
        picture: Arc<calldock_video::Picture>,
    },
    /// The camera stopped delivering mid-call: the call goes on without our picture.
    CameraFailed {
        call_id: CallId,
        reason: String,
    },
    /// A camera switch failed: the call goes on with the camera it had.
    CameraRefused {
        call_id: CallId,
        reason: String,
    },
}

pub struct MediaSession {
    pub call_id: CallId,
    pub to_media: mpsc::Sender<ToMedia>,
}

/// Starts a session for `call_id`; `offerer` sends the first offer. `ice_servers` adds the
/// signaling server's STUN/TURN servers to those in `peer`. With a `camera` it is a video call.
#[allow(clippy::too_many_arguments)]
pub fn start(
    call_id: CallId,
    offerer: bool,
    microphone: Microphone,
    speaker: Speaker,
    peer: PeerSettings,
    processing: ProcessingSwitches,
    camera: Option<CameraSource>,
    ice_servers: Arc<IceServerCache>,
    out: mpsc::Sender<FromMedia>,
) -> MediaSession {
    let (to_media, inbox) = mpsc::channel(256);
    let id = call_id.clone();
    tokio::spawn(async move {
        let devices = Devices { microphone, speaker, camera };
        let result = run(id.clone(), offerer, devices, peer, processing, ice_servers, inbox, out.clone()).await;
        if let Err((kind, reason)) = result {
            let _ = out.send(FromMedia::Failed { call_id: id, kind, reason }).await;
        }
    });
    MediaSession { call_id, to_media }
}

type Failure = (FailureKind, String);

/// How long a restart offer may go unanswered before another one replaces it (signaling is
/// fast; an answer this late was lost with a signaling outage).
const ANSWER_WAIT: Duration = Duration::from_secs(3);

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A session's devices as the call starts.
struct Devices {
    microphone: Microphone,
    speaker: Speaker,
    camera: Option<CameraSource>,
}

/// A video call's share of a session.
struct VideoSession {
    control: Arc<VideoControl>,
    receiver: Option<VideoReceiver>,
    /// For a camera thread started again (after its camera failed, another one is chosen).
    reports: mpsc::Sender<video::CameraReport>,
    /// Counters at the last stats tick: sent, received.
    last: (u64, u64),
}

impl Drop for VideoSession {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// Where the camera thread's thumbnails go: to the driver, dropped when it is behind (the next
/// one replaces it anyway).
fn self_view_sink(call_id: &CallId, out: &mpsc::Sender<FromMedia>) -> Box<dyn Fn(calldock_video::Picture) + Send> {
    let (call_id, out) = (call_id.clone(), out.clone());
    Box::new(move |picture| {
        let _ = out.try_send(FromMedia::SelfView { call_id: call_id.clone(), picture: Arc::new(picture) });
    })
}

/// The next message on a channel that may not be there (an audio call has no camera, and a
/// camera that stopped has nothing more to say): never, then.
async fn recv_if<T>(channel: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match channel {
        Some(channel) => channel.recv().await,
        None => std::future::pending().await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    call_id: CallId,
    offerer: bool,
    devices: Devices,
    mut settings: PeerSettings,
    processing: ProcessingSwitches,
    ice_servers: Arc<IceServerCache>,
    mut inbox: mpsc::Receiver<ToMedia>,
    out: mpsc::Sender<FromMedia>,
) -> Result<(), Failure> {
    let media = |e: &dyn std::fmt::Display| (FailureKind::Media, e.to_string());
    let Devices { microphone, speaker, camera } = devices;
    // Devices first: a missing WAV or a device that cannot be opened ends the call with a
    // reason, before any network work. Speaker before microphone: on some hosts an input only
    // starts once audio flows.
    let mut speaker = SpeakerOutput::open(&speaker).await.map_err(|e| media(&e))?;
    let mut mic = MicrophoneInput::open(&microphone).await.map_err(|e| media(&e))?;
    let mut send = SendPipeline::new(mic.rate(), processing, OpusSettings::default()).map_err(|e| media(&e))?;
    let mut receive = ReceivePipeline::new(JitterConfig::default()).map_err(|e| media(&e))?;

    let configured_servers = settings.ice_servers.clone();
    let mut servers_in_use = ice_servers.current().await;
    settings.ice_servers = [configured_servers.clone(), servers_in_use.clone()].concat();
    if settings.relay_only && !ice_servers::has_turn(&settings.ice_servers) {
        return Err((
            FailureKind::Ice,
            "relay only, but there is no TURN server to relay through: the signaling server handed out none \
             (start it with --turn-secret and --turn-uri) or could not be asked"
                .into(),
        ));
    }
    settings.video = camera.is_some();
    let (peer, mut events) = Peer::new(&settings).await.map_err(|e| (FailureKind::Ice, e.to_string()))?;
    // Encoded frames from the camera thread, and what else it reports (a failure, a refused switch).
    let (mut camera_frames, mut camera_reports) = (None, None);
    let mut rate_policy = VideoRatePolicy::new(EncoderSettings::default().target_kbps);
    let mut format_policy = SendFormatPolicy::new();
    let mut rate_tick = tokio::time::interval(Duration::from_millis(250));
    let mut video = camera.map(|camera| {
        let control = Arc::new(VideoControl::default());
        let (reports_tx, reports) = mpsc::channel(4);
        camera_reports = Some(reports);
        let self_view = Some(self_view_sink(&call_id, &out));
        camera_frames = Some(video::start_sending(
            camera,
            EncoderSettings::default(),
            control.clone(),
            reports_tx.clone(),
            self_view,
        ));
        let (id, pictures) = (call_id.clone(), out.clone());
        let receiver = VideoReceiver::start(control.clone(), move |picture| {
            // A picture the UI cannot take now is stale by the next one: drop it.
            let _ = pictures.try_send(FromMedia::Video { call_id: id.clone(), picture: Arc::new(picture) });
        });
        VideoSession { control, receiver, reports: reports_tx, last: (0, 0) }
    });
    let signal = |signal| FromMedia::Signal { call_id: call_id.clone(), signal };
    if offerer {
        let offer = peer.offer(false).await.map_err(|e| (FailureKind::Ice, e.to_string()))?;
        let _ = out.send(signal(offer)).await;
    }
    let started = Instant::now();
    let mut connected = false;
    let mut restarts = IceRestarts::new(RestartPolicy::default());
    // A restart offer whose answer has not come yet: another offer now would race it.
    let mut awaiting_answer_since: Option<tokio::time::Instant> = offerer.then(tokio::time::Instant::now);
    // Virtual devices keep time by these clocks, both started when media connects (so a WAV
    // microphone and a WAV speaker share a timeline, and the delay between them is the
    // mouth-to-ear delay): 10 ms chunks of microphone taken, 20 ms frames played.
    let mut mic_started: Option<Instant> = None;
    let mut speaker_started: Option<Instant> = None;
    let mut mic_chunks = 0usize;
    let mut frames_played = 0usize;
    let mut captured: Vec<f32> = Vec::with_capacity(SAMPLE_RATE as usize / 10);
    let mut packets: Vec<Bytes> = Vec::with_capacity(8);
    let (mut sent_packets, mut unsent_packets) = (0u64, 0u64);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    stats_tick.tick().await;
    let mut last = (0u64, 0u64, 0u64, 0u64); // bytes sent, bytes received, received, lost
    let mut fec = FecPlan::new();
    let mut remote_reports = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            message = inbox.recv() => match message {
                None | Some(ToMedia::Stop) => break Ok(()),
                Some(ToMedia::Signal(Signal::Answer(_))) if offerer && awaiting_answer_since.is_none() => {
                    // The answer to a restart offer that a newer one replaced: the newer
                    // one's answer follows.
                    tracing::debug!(%call_id, "ignoring an answer to a superseded offer");
                }
                Some(ToMedia::Signal(s)) => {
                    let answer = matches!(s, Signal::Answer(_));
                    match peer.handle_signal(s).await {
                        Ok(Some(answer)) => { let _ = out.send(signal(answer)).await; }
                        Ok(None) => {}
                        // Mid-call (a restart's description), the restarts go on and decide.
                        Err(e) if connected => tracing::warn!(%call_id, "renegotiation failed: {e}"),
                        Err(e) => break Err((FailureKind::Dtls, e.to_string())),
                    }
                    if answer {
                        awaiting_answer_since = None;
                    }
                }
                Some(ToMedia::Mute(muted)) => send.set_muted(muted),
                Some(ToMedia::CameraOff(off)) => {
                    if let Some(v) = &video {
                        v.control.set_camera_off(off);
                    }
                }
                Some(ToMedia::SetCamera(camera)) => {
                    if let Some(v) = &video {
                        if camera_frames.as_ref().is_none_or(|frames| frames.is_closed()) {
                            // The camera had failed: start again with the one chosen now.
                            tracing::info!(%call_id, %camera, "camera started again");
                            let self_view = Some(self_view_sink(&call_id, &out));
                            let reports = v.reports.clone();
                            camera_frames = Some(video::start_sending(
                                camera, EncoderSettings::default(), v.control.clone(), reports, self_view,
                            ));
                        } else {
                            v.control.switch_camera(camera);
                        }
                    }
                }
                Some(ToMedia::SetSpeaker(wanted)) => match SpeakerOutput::open(&wanted).await {
                    Ok(opened) => {
                        tracing::info!(%call_id, device = ?wanted, "speaker switched");
                        std::mem::replace(&mut speaker, opened).finish();
                    }
                    Err(reason) => {
                        let change = DeviceChange::refused(calldock_devices::Direction::Output, speaker.device_id(), &reason);
                        let _ = out.send(FromMedia::Device { call_id: call_id.clone(), change }).await;
                    }
                },
                Some(ToMedia::SetMicrophone(wanted)) => {
                    let opened = match MicrophoneInput::open(&wanted).await {
                        Ok(opened) => send.set_input_rate(opened.rate()).map(|()| opened).map_err(|e| e.to_string()),
                        Err(reason) => Err(reason),
                    };
                    match opened {
                        Ok(opened) => {
                            tracing::info!(%call_id, device = ?wanted, "microphone switched");
                            mic = opened;
                            mic_started = connected.then(Instant::now);
                            mic_chunks = 0;
                        }
                        Err(reason) => {
                            let change = DeviceChange::refused(calldock_devices::Direction::Input, mic.device_id(), &reason);
                            let _ = out.send(FromMedia::Device { call_id: call_id.clone(), change }).await;
                        }
                    }
                }
                // The other side lost the connection: the same schedule as a loss seen here.
                Some(ToMedia::RestartIce) if offerer && connected => {
                    tracing::info!(%call_id, "the other side asks for an ICE restart");
                    restarts.lost(tokio::time::Instant::now());
                }
                Some(ToMedia::RestartIce) => {}
            },
            event = events.recv() => match event {
                None => break Err((FailureKind::Media, "the peer connection stopped".into())),
                Some(PeerEvent::Signal(s)) => { let _ = out.send(signal(s)).await; }
                Some(PeerEvent::Connected) => {
                    if let Some((lost_for, attempts)) = restarts.reconnected(tokio::time::Instant::now()) {
                        tracing::info!(
                            %call_id, offerer, lost_ms = lost_for.as_millis() as u64, attempts, "media reconnected"
                        );
                    } else {
                        tracing::info!(%call_id, offerer, after_ms = started.elapsed().as_millis() as u64, "media connected");
                    }
                    // Only the first time: through a reconnection the microphone's timeline
                    // runs on, as a person keeps talking through an outage.
                    if !connected {
                        mic.discard();
                        mic_started = Some(Instant::now());
                        speaker_started = mic_started;
                    }
                    connected = true;
                    let _ = out.send(FromMedia::Connected(call_id.clone())).await;
                }
                Some(PeerEvent::Disconnected) => {
                    if connected && !restarts.is_lost() {
                        tracing::info!(%call_id, offerer, "media connection lost; ICE restarts begin");
                        restarts.lost(tokio::time::Instant::now());
                    }
                    let _ = out.send(FromMedia::Disconnected(call_id.clone())).await;
                }
                Some(PeerEvent::Failed(kind)) => break Err((kind, format!("{kind:?} failed").to_lowercase())),
                Some(PeerEvent::Audio(rtp)) => {
                    receive.push_rtp(started.elapsed().as_millis() as u64, rtp.sequence, rtp.timestamp, &rtp.payload);
                }
                Some(PeerEvent::Video(frame)) => {
                    if let Some(VideoSession { control, receiver: Some(receiver), .. }) = &video {
                        receiver.push(frame, control);
                        if control.take_keyframe_needed() {
                            peer.request_keyframe().await;
                        }
                    }
                }
            },
            frame = recv_if(&mut camera_frames) => match frame {
                // Before media connects there is nowhere to send it (the frame would only be
                // refused for want of SRTP keys): drop it, and start with a key frame.
                Some(_) if !connected => {
                    if let Some(v) = &video {
                        v.control.want_keyframe();
                    }
                }
                Some(frame) => {
                    let sent = peer.send_video(frame.data, frame.duration).await.unwrap_or_else(|e| {
                        tracing::debug!("video frame not sent: {e}");
                        false
                    });
                    // A frame not sent (video not negotiated yet: the first ones of a call) leaves
                    // the other side without what the next ones build on: start with a key frame.
                    if let Some(v) = &video && (!sent || peer.take_keyframe_request()) {
                        v.control.want_keyframe();
                    }
                }
                // The camera thread ended (stopped, or failed: the reason follows).
                None => camera_frames = None,
            },
            report = recv_if(&mut camera_reports) => match report {
                Some(video::CameraReport::Stopped(reason)) => {
                    let _ = out.send(FromMedia::CameraFailed { call_id: call_id.clone(), reason }).await;
                }
                Some(video::CameraReport::SwitchRefused(reason)) => {
                    let _ = out.send(FromMedia::CameraRefused { call_id: call_id.clone(), reason }).await;
                }
                None => camera_reports = None,
            },
            _ = sleep_until(restarts.deadline()), if restarts.is_lost() => {
                let now = tokio::time::Instant::now();
                match restarts.poll(now) {
                    RestartStep::Wait => {}
                    RestartStep::GiveUp { attempts, lost_for } => {
                        let what = if offerer { "ICE restarts" } else { "ICE restarts asked of the other side" };
                        break Err((
                            FailureKind::Ice,
                            format!(
                                "the connection to the other side was lost and {attempts} {what} over {:.0} s did not \
                                 bring it back (network down, or UDP blocked?)",
                                lost_for.as_secs_f64()
                            ),
                        ));
                    }
                    RestartStep::Restart { attempt } => {
                        // Fresh TURN credentials if the cached ones are past half their life:
                        // a restart may need a new allocation.
                        let current = ice_servers.current().await;
                        if current != servers_in_use && !current.is_empty() {
                            match peer.set_ice_servers(&[configured_servers.clone(), current.clone()].concat()).await {
                                Ok(()) => servers_in_use = current,
                                Err(e) => tracing::warn!(%call_id, "cannot update the ICE servers: {e}"),
                            }
                        }
                        if !offerer {
                            tracing::info!(%call_id, attempt, "asking the other side for an ICE restart");
                            let _ = out.send(FromMedia::AskIceRestart(call_id.clone())).await;
                        } else if awaiting_answer_since.is_some_and(|at| now - at < ANSWER_WAIT) {
                            tracing::info!(%call_id, attempt, "ICE restart skipped: the previous offer is not answered yet");
                        } else {
                            tracing::info!(%call_id, attempt, "restarting ICE");
                            match peer.offer(true).await {
                                Ok(offer) => {
                                    awaiting_answer_since = Some(now);
                                    let _ = out.send(signal(offer)).await;
                                }
                                Err(e) => tracing::warn!(%call_id, attempt, "ICE restart failed: {e}"),
                            }
                        }
                    }
                }
            }
            // The bandwidth estimate sets the video's bitrate, or stops video (crate::video_rate).
            _ = rate_tick.tick(), if connected && video.is_some() => {
                if let (Some(v), Some(estimate)) = (&video, peer.send_estimate_bps()) {
                    let before = rate_policy.rate();
                    let rate = rate_policy.update(started.elapsed(), estimate);
                    if rate.paused != before.paused {
                        let estimate_kbps = (estimate / 1000.0).round();
                        if rate.paused {
                            tracing::info!(%call_id, estimate_kbps, "video paused: the path cannot carry it");
                        } else {
                            tracing::info!(%call_id, estimate_kbps, "video resumed");
                        }
                    }
                    v.control.set_rate(rate);
                    let format = format_policy.update(started.elapsed(), rate.target_kbps);
                    if format != v.control.format() {
                        tracing::info!(%call_id, target_kbps = rate.target_kbps, "video now sent at {format}");
                        v.control.set_format(format);
                    }
                }
            }
            _ = stats_tick.tick(), if connected => {
                let peer_stats = peer.stats().await;
                let remote = peer_stats.remote;
                if remote.count > remote_reports {
                    remote_reports = remote.count;
                    let now_ms = started.elapsed().as_millis() as u64;
                    if let Some(percent) = fec.report(now_ms, remote.fraction_lost) {
                        tracing::info!(%call_id, percent, "FEC now protects against this much loss");
                        send.set_fec_loss(percent).map_err(|e| media(&e))?;
                    }
                }
                let rx = receive.stats();
                let lost = rx.jitter.lost + rx.jitter.late;
                let received = rx.jitter.received;
                let expected = (received - last.2) + (lost - last.3);
                let loss_percent = if expected == 0 { 0.0 } else { 100.0 * (lost - last.3) as f64 / expected as f64 };
                let sample = calldock_media::quality::NetworkSample {
                    rtt_ms: peer_stats.rtt_ms.unwrap_or(0.0),
                    jitter_ms: rx.jitter.jitter_ms,
                    loss_percent,
                };
                let mos = calldock_media::quality::mos(sample);
                let stats = CallStats {
                    rtt_ms: peer_stats.rtt_ms,
                    jitter_ms: rx.jitter.jitter_ms,
                    loss_percent,
                    sent_loss_percent: (remote.count > 0).then_some(remote.fraction_lost * 100.0),
                    send_kbps: peer_stats.bytes_sent.saturating_sub(last.0) as f64 * 8.0 / 1000.0,
                    receive_kbps: peer_stats.bytes_received.saturating_sub(last.1) as f64 * 8.0 / 1000.0,
                    codec: peer_stats.codec.clone(),
                    local_candidate: peer_stats.local_candidate_type.clone(),
                    remote_candidate: peer_stats.remote_candidate_type.clone(),
                    audio_level_dbfs: rx.level_dbfs,
                    jitter_buffer_delay_ms: rx.jitter.buffered_ms,
                    concealed_samples: rx.concealed_samples,
                    fec_percent: fec.percent(),
                    mos,
                    quality: calldock_media::quality::QualityLabel::of(mos),
                    video: video.as_mut().map(|v| {
                        let c = &v.control;
                        let (sent, received) = (c.frames_sent.load(Ordering::Relaxed), c.frames_received.load(Ordering::Relaxed));
                        let stats = VideoStats {
                            sent_fps: (sent - v.last.0) as f64,
                            sent_width: c.sent_width.load(Ordering::Relaxed),
                            sent_height: c.sent_height.load(Ordering::Relaxed),
                            received_fps: (received - v.last.1) as f64,
                            received_width: c.received_width.load(Ordering::Relaxed),
                            received_height: c.received_height.load(Ordering::Relaxed),
                            undecodable_frames: c.undecodable.load(Ordering::Relaxed),
                            camera_off: c.camera_off(),
                            estimate_kbps: peer.send_estimate_bps().map(|bps| bps / 1000.0),
                            limit_kbps: remote.max_bitrate_bps.map(|bps| bps / 1000.0),
                            target_kbps: c.target_kbps(),
                            paused_for_bandwidth: c.paused_for_bandwidth(),
                        };
                        v.last = (sent, received);
                        stats
                    }),
                };
                last = (peer_stats.bytes_sent, peer_stats.bytes_received, received, lost);
                let _ = out.send(FromMedia::Stats { call_id: call_id.clone(), stats }).await;
            }
            _ = tick.tick() => {
                let now = Instant::now();
                // Devices that failed fall back to the default; chosen ones that came back return.
                for change in [speaker.keep_working(now).await, mic.keep_working(now).await].into_iter().flatten() {
                    tracing::warn!(%call_id, device = %change.device, "{}", change.reason);
                    if change.direction == calldock_devices::Direction::Input {
                        send.set_input_rate(mic.rate()).map_err(|e| media(&e))?;
                    }
                    let _ = out.send(FromMedia::Device { call_id: call_id.clone(), change }).await;
                }
                // Playout: received audio to the speaker, and the same frames as the echo
                // canceller's reference.
                let due = speaker_started
                    .map_or(0, |since| (now.duration_since(since).as_millis() as usize / 20).saturating_sub(frames_played));
                for _ in 0..speaker.frames_wanted(due) {
                    let frame: [f32; FRAME_20MS] = *receive.next_frame();
                    speaker.play(&frame).map_err(|e| media(&e))?;
                    frames_played += 1;
                    for half in frame.chunks_exact(FRAME_10MS) {
                        let _ = send.render_reference(half.try_into().expect("960 is two 480-sample frames"));
                    }
                }
                let Some(mic_since) = mic_started else {
                    mic.discard();
                    continue;
                };
                // Capture: what the microphone has for us, encoded in 20 ms packets.
                let due = (now.duration_since(mic_since).as_millis() as usize / 10).saturating_sub(mic_chunks);
                mic_chunks += due;
                captured.clear();
                mic.read(due, &mut captured);
                send.push_capture(&captured, 0, |p| packets.push(Bytes::copy_from_slice(p))).map_err(|e| media(&e))?;
                for p in packets.drain(..) {
                    match peer.send_audio(p).await {
                        Ok(true) => sent_packets += 1,
                        Ok(false) => unsent_packets += 1,
                        Err(e) => {
                            unsent_packets += 1;
                            tracing::debug!("audio packet not sent: {e}");
                        }
                    }
                }
            }
        }
    };
    tracing::info!(%call_id, sent_packets, unsent_packets, stats = ?receive.stats(), "media session ends");
    tracing::info!(%call_id, underrun_samples = speaker.underrun_samples(), "playout");
    speaker.finish();
    peer.close().await;
    outcome
}
