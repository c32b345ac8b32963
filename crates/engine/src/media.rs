//! A call's media: one [`Peer`] plus the audio pipeline between it and virtual devices (a WAV
//! file or silence as the microphone, a WAV file or nothing as the speaker). Real devices
//! (cpal) come with the devices crate; they plug in where the WAV files are.
//!
//! The session runs as its own task. The driver hands it the call's relayed signaling and
//! receives what to relay back and what happened to the connection.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use calldock_audio::codec::OpusSettings;
use calldock_audio::pipeline::{ReceivePipeline, SendPipeline};
use calldock_audio::processing::ProcessingSwitches;
use calldock_audio::wav::{WavSpeaker, read_mono};
use calldock_audio::{FRAME_10MS, SAMPLE_RATE};
use calldock_media::jitter::JitterConfig;
use calldock_peer::{Peer, PeerEvent, PeerSettings, Signal};
use calldock_protocol::{CallId, FailureKind};
use tokio::sync::mpsc;

/// What plays the microphone's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Microphone {
    Silence,
    /// A WAV file, played once from the start of media, then silence.
    Wav(PathBuf),
}

/// Where received audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    Null,
    /// Written as 48 kHz mono 16-bit; finished when the call ends.
    Wav(PathBuf),
}

/// How calls get media.
#[derive(Debug, Clone)]
pub enum MediaConfig {
    /// No media: a call counts as connected once answered (signaling tests, conformance).
    SignalingOnly,
    Audio {
        microphone: Microphone,
        speaker: Speaker,
        peer: PeerSettings,
        processing: ProcessingSwitches,
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
    Stop,
}

/// One second of a call's media, SPEC §5.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    pub rtt_ms: Option<f64>,
    pub jitter_ms: f64,
    /// Packets lost in the last interval, percent of those expected.
    pub loss_percent: f64,
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
    pub mos: f64,
    pub quality: calldock_media::quality::QualityLabel,
}

/// From a session to the driver.
#[derive(Debug)]
pub enum FromMedia {
    Stats { call_id: CallId, stats: CallStats },
    Signal { call_id: CallId, signal: Signal },
    Connected(CallId),
    Disconnected(CallId),
    Failed { call_id: CallId, kind: FailureKind, reason: String },
}

pub struct MediaSession {
    pub call_id: CallId,
    pub to_media: mpsc::Sender<ToMedia>,
}

/// Starts a session for `call_id`; `offerer` sends the first offer.
pub fn start(
    call_id: CallId,
    offerer: bool,
    microphone: Microphone,
    speaker: Speaker,
    peer: PeerSettings,
    processing: ProcessingSwitches,
    out: mpsc::Sender<FromMedia>,
) -> MediaSession {
    let (to_media, inbox) = mpsc::channel(256);
    let id = call_id.clone();
    tokio::spawn(async move {
        let result = run(id.clone(), offerer, microphone, speaker, peer, processing, inbox, out.clone()).await;
        if let Err((kind, reason)) = result {
            let _ = out.send(FromMedia::Failed { call_id: id, kind, reason }).await;
        }
    });
    MediaSession { call_id, to_media }
}

type Failure = (FailureKind, String);

#[allow(clippy::too_many_arguments)]
async fn run(
    call_id: CallId,
    offerer: bool,
    microphone: Microphone,
    speaker: Speaker,
    settings: PeerSettings,
    processing: ProcessingSwitches,
    mut inbox: mpsc::Receiver<ToMedia>,
    out: mpsc::Sender<FromMedia>,
) -> Result<(), Failure> {
    let media = |e: &dyn std::fmt::Display| (FailureKind::Media, e.to_string());
    // Devices first: a missing WAV ends the call with a reason, before any network work.
    let mic = match &microphone {
        Microphone::Silence => Vec::new(),
        Microphone::Wav(path) => {
            let (samples, rate) = read_mono(path).map_err(|e| media(&e))?;
            let mut resampler = calldock_audio::resample::Resampler::new(rate).map_err(|e| media(&e))?;
            let mut at48 = Vec::with_capacity(samples.len() * 2);
            resampler.push(&samples, |f| at48.extend_from_slice(f)).map_err(|e| media(&e))?;
            at48
        }
    };
    let mut speaker_file = match &speaker {
        Speaker::Null => None,
        Speaker::Wav(path) => Some(WavSpeaker::create(path).map_err(|e| media(&e))?),
    };
    let mut send = SendPipeline::new(SAMPLE_RATE, processing, OpusSettings::default()).map_err(|e| media(&e))?;
    let mut receive = ReceivePipeline::new(JitterConfig::default()).map_err(|e| media(&e))?;

    let (peer, mut events) = Peer::new(&settings).await.map_err(|e| (FailureKind::Ice, e.to_string()))?;
    let signal = |signal| FromMedia::Signal { call_id: call_id.clone(), signal };
    if offerer {
        let offer = peer.offer(false).await.map_err(|e| (FailureKind::Ice, e.to_string()))?;
        let _ = out.send(signal(offer)).await;
    }
    let started = Instant::now();
    let mut connected = false;
    let mut mic_position = 0;
    let (mut sent_packets, mut unsent_packets) = (0u64, 0u64);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    stats_tick.tick().await;
    let mut last = (0u64, 0u64, 0u64, 0u64); // bytes sent, bytes received, received, lost
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            message = inbox.recv() => match message {
                None | Some(ToMedia::Stop) => break Ok(()),
                Some(ToMedia::Signal(s)) => match peer.handle_signal(s).await {
                    Ok(Some(answer)) => { let _ = out.send(signal(answer)).await; }
                    Ok(None) => {}
                    Err(e) => break Err((FailureKind::Dtls, e.to_string())),
                },
                Some(ToMedia::Mute(muted)) => send.set_muted(muted),
                Some(ToMedia::RestartIce) => {
                    if offerer {
                        match peer.offer(true).await {
                            Ok(offer) => { let _ = out.send(signal(offer)).await; }
                            Err(e) => break Err((FailureKind::Ice, e.to_string())),
                        }
                    }
                }
            },
            event = events.recv() => match event {
                None => break Err((FailureKind::Media, "the peer connection stopped".into())),
                Some(PeerEvent::Signal(s)) => { let _ = out.send(signal(s)).await; }
                Some(PeerEvent::Connected) => {
                    tracing::info!(%call_id, offerer, after_ms = started.elapsed().as_millis() as u64, "media connected");
                    connected = true;
                    let _ = out.send(FromMedia::Connected(call_id.clone())).await;
                }
                Some(PeerEvent::Disconnected) => { let _ = out.send(FromMedia::Disconnected(call_id.clone())).await; }
                Some(PeerEvent::Failed(kind)) => break Err((kind, format!("{kind:?} failed").to_lowercase())),
                Some(PeerEvent::Audio(rtp)) => {
                    receive.push_rtp(started.elapsed().as_millis() as u64, rtp.sequence, rtp.timestamp, &rtp.payload);
                }
            },
            _ = stats_tick.tick(), if connected => {
                let peer_stats = peer.stats().await;
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
                    send_kbps: peer_stats.bytes_sent.saturating_sub(last.0) as f64 * 8.0 / 1000.0,
                    receive_kbps: peer_stats.bytes_received.saturating_sub(last.1) as f64 * 8.0 / 1000.0,
                    codec: peer_stats.codec.clone(),
                    local_candidate: peer_stats.local_candidate_type.clone(),
                    remote_candidate: peer_stats.remote_candidate_type.clone(),
                    audio_level_dbfs: rx.level_dbfs,
                    jitter_buffer_delay_ms: rx.jitter.buffered_ms,
                    concealed_samples: rx.concealed_samples,
                    mos,
                    quality: calldock_media::quality::QualityLabel::of(mos),
                };
                last = (peer_stats.bytes_sent, peer_stats.bytes_received, received, lost);
                let _ = out.send(FromMedia::Stats { call_id: call_id.clone(), stats }).await;
            }
            _ = tick.tick() => {
                // Playout: 20 ms to the speaker, and the same frames as the echo reference.
                let frame = *receive.next_frame();
                if let Some(file) = speaker_file.as_mut() {
                    file.write(&frame).map_err(|e| media(&e))?;
                }
                for half in frame.chunks_exact(FRAME_10MS) {
                    let _ = send.render_reference(half.try_into().expect("960 is two 480-sample frames"));
                }
                if !connected {
                    continue;
                }
                // Capture: the next 20 ms of the microphone.
                let mut chunk = [0f32; 960];
                let end = (mic_position + 960).min(mic.len());
                if mic_position < end {
                    chunk[..end - mic_position].copy_from_slice(&mic[mic_position..end]);
                }
                mic_position = end;
                let mut packets: Vec<Bytes> = Vec::with_capacity(1);
                send.push_capture(&chunk, 0, |p| packets.push(Bytes::copy_from_slice(p))).map_err(|e| media(&e))?;
                for p in packets {
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
    if let Some(file) = speaker_file {
        let _ = file.finish();
    }
    peer.close().await;
    outcome
}
