//! The network check (SPEC §6): can this machine reach the signaling server, get through to its
//! STUN and TURN servers over UDP, and carry a call's audio well?
//!
//! Four steps, in order, each timed:
//!
//! 1. **signaling**: `GET /v1/info` a few times (reachability and round-trip time), then sign
//!    in and fetch the STUN/TURN servers and TURN REST credentials the server hands out at
//!    `GET /v1/turn`;
//! 2. **STUN**: a binding request to the advertised STUN server gives this machine's
//!    server-reflexive address;
//! 3. **TURN**: an allocation on the advertised TURN server with those credentials, then a
//!    short paced burst from one relay to a second one (both on the same TURN server) measures
//!    the throughput of the path relayed media takes, both ways through this machine's link;
//! 4. **echo call**: a ~2 s audio call to the server's echo bot through the engine, with the
//!    engine's own per-second statistics (RTT, jitter, loss, bitrate, and the MOS of SPEC §5).
//!
//! STUN and TURN are asked at the same time, over UDP only: webrtc 0.21 relays over UDP and
//! nothing else, so a network that lets signaling (TCP) through but drops UDP leaves Calldock
//! with no way to carry a call, and the check says so in those words. Without `--server`, the
//! check starts the embedded reference server on 127.0.0.1 and says that only this machine was
//! checked.
//!
//! [`run`] measures; [`verdict`] judges what was measured (the worst step decides), with no IO
//! and no clock, so every verdict is tested on controlled inputs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use calldock_audio::processing::ProcessingSwitches;
use calldock_engine::call::{CallEvent, CallState, EndReason};
use calldock_engine::media::{CallStats, MediaConfig, Microphone, Speaker};
use calldock_engine::{Engine, EngineConfig, EngineEvent, ServerUrl, SignalingState};
use calldock_media::quality::QualityLabel;
use calldock_peer::PeerSettings;
use calldock_protocol::{
    CallId, DeviceId, ECHO_USER, LoginRequest, Media, PROTOCOL_VERSION, ProtocolVersion, RestError, ServerInfo,
    Session, TurnCredentials, UserId,
};
use rtc::ice::url::{ProtoType, SchemeType, Url as IceUrl};
use rtc::sansio::Protocol;
use rtc::shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc::turn::client::{Client as TurnClient, ClientConfig as TurnClientConfig, Event as TurnEvent};
use serde::{Serialize, Serializer};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::{Check, CheckResult, Figures, Verdict};

/// Below this throughput a call's audio (and more so video) suffers (Twilio's threshold).
pub const WARN_THROUGHPUT_KBPS: f64 = 100.0;

/// Connecting to the signaling server, and each REST request, give up after this long.
const SIGNALING_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole signaling step (seven requests) gives up after this long: a server that answers
/// each request just in time must not stretch the doctor past its 10 s.
const SIGNALING_LIMIT: Duration = Duration::from_secs(5);
/// `GET /v1/info` requests after the first (which also connects): their median is the RTT.
const RTT_PROBES: usize = 4;
/// A STUN or TURN server that has sent nothing back after this long is not answering. STUN
/// answers in one round trip; the client retransmits at 0, 0.2, 0.6 and 1.4 s by then.
const UDP_SILENCE_LIMIT: Duration = Duration::from_millis(1500);
/// A server that answered gets this long (from the start) to finish its transaction: a TURN
/// allocation takes two round trips (the first is refused for credentials, by design).
const UDP_ANSWER_LIMIT: Duration = Duration::from_secs(3);
/// The throughput burst: a payload every `BURST_INTERVAL` for `BURST_PACKETS` packets is 400
/// kb/s for 0.4 s, several times what a call needs, so a path that carries it all has room.
const BURST_PAYLOAD: usize = 500;
const BURST_INTERVAL: Duration = Duration::from_millis(10);
const BURST_PACKETS: usize = 40;
/// Permissions between the two relays: one round trip each, sent together.
const PERMISSION_LIMIT: Duration = Duration::from_secs(1);
/// After the last packet of the burst, stragglers are awaited this long.
const BURST_DRAIN: Duration = Duration::from_millis(300);
/// From dialing the echo bot until media flows.
const ECHO_CONNECT_LIMIT: Duration = Duration::from_secs(4);
/// Statistics samples (the engine gives one a second of media) the echo call waits for before
/// hanging up, at most `ECHO_MEASURE_LIMIT` after media connected: a call of about 2 s.
const ECHO_SAMPLES: usize = 2;
const ECHO_MEASURE_LIMIT: Duration = Duration::from_millis(2500);
/// The check's user on the server: a fresh one per run, because the server folds a second
/// call of one user to the echo bot into the first (`call.start` is idempotent per
/// conversation), and two machines may run the doctor against one server at once.
const USER_PREFIX: &str = "doctor-";

/// Which server the check talks to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPlan {
    /// `--server`'s base URL; `None` starts the embedded reference server on 127.0.0.1.
    pub server: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// What was measured
// ---------------------------------------------------------------------------------------------

/// The network check's figures in a report: each step's outcome and timings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkFigures {
    /// The server's base URL (the embedded server's loopback address without `--server`).
    pub server: String,
    /// True when no `--server` was given: the embedded server on loopback, this machine only.
    pub embedded: bool,
    pub signaling: SignalingStep,
    pub stun: StunStep,
    /// Boxed, like `echo_call`: the report's figures enum stays small.
    pub turn: Box<TurnStep>,
    pub echo_call: Box<EchoCallStep>,
    /// The whole check, start to end.
    pub took_ms: f64,
}

/// Step 1: the signaling server over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SignalingStep {
    /// It answered, signed this check in, and handed out its STUN/TURN servers.
    Reached {
        /// `server` from `/v1/info`, e.g. `calldock-server/0.1.0`.
        agent: String,
        /// The first `/v1/info`, connection set-up included.
        first_request_ms: f64,
        /// Median of the following `/v1/info` requests on the open connection.
        rtt_ms: f64,
        /// `POST /v1/login` and `GET /v1/turn`.
        sign_in_ms: f64,
        took_ms: f64,
    },
    /// Nothing answered: refused, timed out, no such host, or not a URL.
    Unreachable { detail: String, took_ms: f64 },
    /// Something answered, but not as a Calldock server that lets this client in.
    Refused { detail: String, took_ms: f64 },
}

/// Step 2: a server-reflexive address from the STUN server the server hands out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StunStep {
    Gathered {
        /// `host:port` asked.
        server: String,
        /// This machine's address as the STUN server saw it.
        reflexive: String,
        took_ms: f64,
    },
    /// Not a single datagram came back.
    NoAnswer { server: String, waited_ms: f64 },
    /// It answered with an error, or could not be asked (unknown host, no UDP socket).
    Failed {
        server: String,
        detail: String,
        /// Whether the server sent anything back (an error); false when it was never asked.
        answered: bool,
        took_ms: f64,
    },
    /// The server hands out no STUN server.
    NotOffered,
    /// Not tried: signaling failed first.
    Skipped,
}

/// Step 3: a relay allocated on the TURN server the server hands out, and the throughput
/// through it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TurnStep {
    Allocated {
        server: String,
        /// The relayed address coturn allocated.
        relay: String,
        took_ms: f64,
        throughput: Throughput,
    },
    /// The TURN server refused the credentials the signaling server handed out.
    AuthFailed {
        server: String,
        detail: String,
        took_ms: f64,
    },
    NoAnswer {
        server: String,
        waited_ms: f64,
    },
    /// It answered but the allocation failed otherwise, or it could not be asked.
    Failed {
        server: String,
        detail: String,
        /// Whether the server sent anything back; false when it was never asked.
        answered: bool,
        took_ms: f64,
    },
    /// Only `turns:` or `?transport=tcp` URIs: webrtc 0.21 relays over UDP only.
    NotOverUdp {
        uris: Vec<String>,
    },
    NotOffered,
    Skipped,
}

/// The burst from one relay to another on the same TURN server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Throughput {
    Measured {
        offered_kbps: f64,
        /// The rate packets arrived at (their dispersion), at most the offered rate.
        received_kbps: f64,
        loss_percent: f64,
        took_ms: f64,
    },
    /// The second relay or the permissions between them could not be set up.
    NotMeasured { detail: String },
}

/// Step 4: a call to the echo bot through the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EchoCallStep {
    Measured {
        /// Signing in over the WebSocket, dialing, and media connecting.
        setup_ms: f64,
        /// How long media flowed before hanging up.
        seconds: f64,
        #[serde(flatten)]
        quality: CallQuality,
    },
    Failed {
        stage: EchoStage,
        detail: String,
        took_ms: f64,
    },
    /// Not tried: signaling failed, or UDP is blocked (a call could not carry audio).
    Skipped {
        reason: String,
    },
}

/// Where the echo call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoStage {
    /// Signing in or the signaling WebSocket.
    Signaling,
    /// The echo bot did not answer, or the call ended before media flowed.
    Answer,
    /// Media did not connect, or was lost during the call.
    Media,
}

/// What the engine's per-second call statistics said, over the samples taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallQuality {
    /// Statistics samples the figures come from.
    pub samples: usize,
    /// ICE (STUN) round-trip time; `None` when webrtc reported none.
    pub rtt_ms: Option<f64>,
    pub jitter_ms: f64,
    pub loss_percent: f64,
    pub send_kbps: f64,
    pub receive_kbps: f64,
    /// The worst second's MOS (SPEC §5), as the engine computed it, and its label.
    pub mos: f64,
    #[serde(serialize_with = "label_text")]
    pub quality: QualityLabel,
    /// Candidate types of the pair media took, `local→remote` (e.g. `host→host`, `relay→host`).
    pub path: String,
}

fn label_text<S: Serializer>(label: &QualityLabel, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(label.as_str())
}

impl CallQuality {
    /// Sums up a call's statistics: means, and the worst second's MOS and label as the engine
    /// gave them. Bitrates leave the first sample out when later ones exist: its second may
    /// have begun before media flowed, and it counts the DTLS handshake. `None` without samples.
    pub fn from_samples(samples: &[CallStats]) -> Option<CallQuality> {
        let worst = samples.iter().min_by(|a, b| a.mos.total_cmp(&b.mos))?;
        let last = samples.last()?;
        let mean =
            |of: &[CallStats], value: fn(&CallStats) -> f64| of.iter().map(value).sum::<f64>() / of.len().max(1) as f64;
        let steady = if samples.len() > 1 { &samples[1..] } else { samples };
        let rtts: Vec<f64> = samples.iter().filter_map(|s| s.rtt_ms).collect();
        Some(CallQuality {
            samples: samples.len(),
            rtt_ms: (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64),
            jitter_ms: mean(samples, |s| s.jitter_ms),
            loss_percent: mean(samples, |s| s.loss_percent),
            send_kbps: mean(steady, |s| s.send_kbps),
            receive_kbps: mean(steady, |s| s.receive_kbps),
            mos: worst.mos,
            quality: worst.quality,
            path: format!(
                "{}→{}",
                last.local_candidate.as_deref().unwrap_or("?"),
                last.remote_candidate.as_deref().unwrap_or("?")
            ),
        })
    }
}

impl Throughput {
    /// Judges a burst of `sent` packets of `payload` bytes, one every `interval`, from the
    /// times (since the first was sent) at which those that arrived did. The received rate is
    /// the arrivals' dispersion: bytes after the first over the time from first to last
    /// arrival, capped at the offered rate (a sender late on its schedule bunches packets up,
    /// which says nothing about the path).
    pub fn measure(sent: usize, payload: usize, interval: Duration, arrivals: &[Duration]) -> Throughput {
        let bits = (payload * 8) as f64;
        let interval_ms = interval.as_secs_f64() * 1000.0;
        let offered_kbps = if interval_ms > 0.0 { bits / interval_ms } else { 0.0 };
        let received = arrivals.len().min(sent);
        let received_kbps = match (arrivals.iter().min(), arrivals.iter().max()) {
            (Some(first), Some(last)) if received >= 2 => {
                // At least half an interval per gap, so a burst that arrives all at once (in
                // one clock tick) does not divide by zero.
                let span_ms =
                    (last.saturating_sub(*first).as_secs_f64() * 1000.0).max((received - 1) as f64 * interval_ms / 2.0);
                ((received - 1) as f64 * bits / span_ms).min(offered_kbps)
            }
            // One packet: all that can be said is that it came through in the burst's time.
            _ if received == 1 => bits / (sent as f64 * interval_ms).max(interval_ms),
            _ => 0.0,
        };
        let loss_percent = if sent == 0 { 0.0 } else { 100.0 * (sent - received) as f64 / sent as f64 };
        let took_ms = arrivals.iter().max().map_or(sent as f64 * interval_ms, |last| last.as_secs_f64() * 1000.0);
        Throughput::Measured { offered_kbps, received_kbps, loss_percent, took_ms }
    }
}

// ---------------------------------------------------------------------------------------------
// The verdict
// ---------------------------------------------------------------------------------------------

/// One problem a step showed.
struct Finding {
    verdict: Verdict,
    code: &'static str,
    problem: String,
    remedy: String,
}

impl Finding {
    fn new(verdict: Verdict, code: &'static str, problem: String, remedy: impl Into<String>) -> Self {
        Self { verdict, code, problem, remedy: remedy.into() }
    }
}

/// True when UDP looks blocked: STUN and/or TURN were asked over UDP, and none of them sent a
/// single datagram back. (A server that answers with an error is reachable over UDP.)
pub fn udp_blocked(stun: &StunStep, turn: &TurnStep) -> bool {
    // Some(true): it answered; Some(false): asked, and silent; None: not asked over UDP.
    let stun_heard = match stun {
        StunStep::Gathered { .. } => Some(true),
        StunStep::Failed { answered, .. } => answered.then_some(true),
        StunStep::NoAnswer { .. } => Some(false),
        StunStep::NotOffered | StunStep::Skipped => None,
    };
    let turn_heard = match turn {
        TurnStep::Allocated { .. } | TurnStep::AuthFailed { .. } => Some(true),
        TurnStep::Failed { answered, .. } => answered.then_some(true),
        TurnStep::NoAnswer { .. } => Some(false),
        TurnStep::NotOverUdp { .. } | TurnStep::NotOffered | TurnStep::Skipped => None,
    };
    let heard = [stun_heard, turn_heard];
    heard.contains(&Some(false)) && !heard.contains(&Some(true))
}

/// The verdict on what the check measured: the worst step decides; the summary names that
/// problem first, then every step's figures.
pub fn verdict(figures: NetworkFigures) -> CheckResult {
    let findings = findings(&figures);
    let line = figures_line(&figures);
    // The first of the worst: steps are in the order they ran, so the earliest cause leads.
    let worst = findings.into_iter().rev().max_by_key(|f| f.verdict);
    let result = match worst {
        None => CheckResult::pass(Check::Network, line, None),
        Some(f) => {
            let summary = if line.is_empty() { f.problem } else { format!("{}; {line}", f.problem) };
            CheckResult::problem(Check::Network, f.verdict, f.code, summary, f.remedy, None)
        }
    };
    CheckResult { figures: Some(Figures::Network(figures)), ..result }
}

fn findings(f: &NetworkFigures) -> Vec<Finding> {
    let mut found = Vec::new();
    match &f.signaling {
        SignalingStep::Unreachable { detail, .. } => found.push(Finding::new(
            Verdict::Fail,
            "network_server_unreachable",
            format!("cannot reach the server at {}: {detail}; check the address or your network", f.server),
            "Check the --server address and that the server is running there; if it is, a firewall or proxy \
             between this machine and it blocks the connection",
        )),
        SignalingStep::Refused { detail, .. } => found.push(Finding::new(
            Verdict::Fail,
            "network_server_refused",
            format!("the server at {} answered, but {detail}", f.server),
            "Check that --server is the Calldock signaling server's base URL (its /v1/info answers) and that it \
             lets this client sign in",
        )),
        SignalingStep::Reached { .. } => {}
    }
    if udp_blocked(&f.stun, f.turn.as_ref()) {
        let servers = silent_servers(&f.stun, f.turn.as_ref());
        found.push(Finding::new(
            Verdict::Fail,
            "network_udp_blocked",
            format!(
                "UDP looks blocked: {} sent nothing back within {:.1} s while signaling over TCP works; Calldock \
                 carries calls over UDP only and cannot relay over TCP/TLS yet",
                servers,
                UDP_SILENCE_LIMIT.as_secs_f64()
            ),
            "Let UDP to the server's STUN/TURN port (usually 3478) and its relay ports through the firewall, or \
             use another network: Calldock cannot relay calls over TCP/TLS yet",
        ));
    } else {
        match &f.stun {
            StunStep::NoAnswer { server, waited_ms } => found.push(Finding::new(
                Verdict::Warn,
                "network_stun_no_answer",
                format!("the STUN server at {server} sent nothing back within {:.1} s", waited_ms / 1000.0),
                "Check that the STUN server the signaling server hands out (--stun-uri) runs and that UDP to it is \
                 let through; calls can still go through the TURN relay",
            )),
            StunStep::Failed { server, detail, .. } => found.push(Finding::new(
                Verdict::Warn,
                "network_stun_failed",
                format!("STUN at {server} failed: {detail}"),
                "Check the STUN URI the signaling server hands out (--stun-uri) and that server's log",
            )),
            _ => {}
        }
        found.extend(turn_findings(f));
    }
    match f.echo_call.as_ref() {
        EchoCallStep::Failed { stage, detail, .. } => {
            let remedy = match stage {
                EchoStage::Signaling => {
                    "The server's WebSocket (/v1/ws) is not reachable from here: check that a proxy or firewall \
                     lets WebSocket connections through"
                }
                EchoStage::Answer => {
                    "The server's echo bot did not take the call: check the server's log (`calldock call echo` \
                     reproduces it)"
                }
                EchoStage::Media => {
                    "Audio could not flow to the server: check that a firewall lets UDP through, and that the \
                     server hands out a working TURN relay"
                }
            };
            found.push(Finding::new(
                Verdict::Fail,
                "network_echo_call_failed",
                format!("the echo call failed: {detail}"),
                remedy,
            ));
        }
        EchoCallStep::Measured { quality, .. } => {
            let problem =
                |what: &str| format!("the echo call's quality is {what} (MOS {:.2}, {})", quality.mos, quality.quality);
            let remedy = "Calls will sound choppy or late: use a wired connection or a better network, and pause \
                          programs that use it heavily (uploads, streaming, sync)";
            match quality.quality {
                QualityLabel::Bad => {
                    found.push(Finding::new(Verdict::Fail, "network_call_quality_bad", problem("bad"), remedy));
                }
                QualityLabel::Poor | QualityLabel::Fair => found.push(Finding::new(
                    Verdict::Warn,
                    "network_call_quality_low",
                    problem(quality.quality.as_str()),
                    remedy,
                )),
                QualityLabel::Good | QualityLabel::Excellent => {}
            }
        }
        EchoCallStep::Skipped { .. } => {}
    }
    found
}

fn turn_findings(f: &NetworkFigures) -> Vec<Finding> {
    let mut found = Vec::new();
    match f.turn.as_ref() {
        TurnStep::AuthFailed { server, detail, .. } => found.push(Finding::new(
            Verdict::Fail,
            "network_turn_auth_failed",
            format!(
                "TURN authentication failed: the server's TURN secret does not match coturn's (the TURN server \
                 at {server} answered {detail} to the credentials the server handed out)"
            ),
            "Give `calldock serve --turn-secret` the same value as coturn's `static-auth-secret`, and check both \
             machines' clocks (the credentials carry an expiry time)",
        )),
        TurnStep::NoAnswer { server, waited_ms } => found.push(Finding::new(
            Verdict::Fail,
            "network_turn_no_answer",
            format!(
                "the TURN server at {server} sent nothing back within {:.1} s, though STUN answered",
                waited_ms / 1000.0
            ),
            "Check that coturn runs and listens on UDP at the address the server hands out (--turn-uri), and that \
             the firewall lets UDP to it through",
        )),
        TurnStep::Failed { server, detail, .. } => found.push(Finding::new(
            Verdict::Fail,
            "network_turn_failed",
            format!("TURN relay allocation at {server} failed: {detail}"),
            "Check the TURN server's log for this allocation and the --turn-uri the server hands out",
        )),
        TurnStep::NotOverUdp { uris } => found.push(Finding::new(
            Verdict::Warn,
            "network_turn_not_udp",
            format!(
                "the server offers TURN only over TCP/TLS ({}), which Calldock cannot relay over yet",
                uris.join(", ")
            ),
            "Hand out a UDP TURN URI too (--turn-uri turn:HOST:3478?transport=udp): calls that need a relay \
             fail without one",
        )),
        TurnStep::NotOffered if !f.embedded => found.push(Finding::new(
            Verdict::Warn,
            "network_no_turn",
            "the server hands out no TURN relay, so calls between networks behind strict NATs or firewalls \
             will fail"
                .to_string(),
            "Run coturn and start the server with --turn-secret and --turn-uri",
        )),
        TurnStep::Allocated { throughput: Throughput::Measured { received_kbps, offered_kbps, .. }, .. }
            if *received_kbps < WARN_THROUGHPUT_KBPS =>
        {
            found.push(Finding::new(
                Verdict::Warn,
                "network_low_throughput",
                format!(
                    "the path through the TURN relay carried only {received_kbps:.0} of {offered_kbps:.0} kb/s \
                     offered, under {WARN_THROUGHPUT_KBPS:.0} kb/s"
                ),
                "Calls may break up: pause programs that use the network heavily (uploads, streaming, sync), or \
                 move closer to the Wi-Fi access point or use a cable",
            ));
        }
        _ => {}
    }
    found
}

/// The servers that did not answer, e.g. `STUN/TURN at 192.0.2.7:3478` when they share an
/// address.
fn silent_servers(stun: &StunStep, turn: &TurnStep) -> String {
    match (stun, turn) {
        (StunStep::NoAnswer { server: s, .. }, TurnStep::NoAnswer { server: t, .. }) if s == t => {
            format!("STUN/TURN at {s}")
        }
        (StunStep::NoAnswer { server: s, .. }, TurnStep::NoAnswer { server: t, .. }) => {
            format!("STUN at {s} and TURN at {t}")
        }
        (StunStep::NoAnswer { server, .. }, _) => format!("STUN at {server}"),
        (_, TurnStep::NoAnswer { server, .. }) => format!("TURN at {server}"),
        _ => "the STUN/TURN servers".into(),
    }
}

/// Every step's figures in one line; steps that did not run are left out. Empty when the
/// server was not reached: the failure is all there is to say.
fn figures_line(f: &NetworkFigures) -> String {
    let SignalingStep::Reached { rtt_ms, first_request_ms, .. } = &f.signaling else {
        return String::new();
    };
    let mut parts = Vec::new();
    if f.embedded {
        parts.push(format!(
            "only this machine was checked (the embedded server on {}; give --server URL to check the network)",
            f.server.trim_start_matches("http://")
        ));
    }
    parts.push(format!("signaling RTT {rtt_ms:.1} ms (first request {first_request_ms:.0} ms)"));
    match &f.stun {
        StunStep::Gathered { reflexive, took_ms, .. } => {
            parts.push(format!("STUN reflexive address {reflexive} in {took_ms:.0} ms"));
        }
        StunStep::NoAnswer { .. } => parts.push("STUN no answer".into()),
        StunStep::Failed { .. } => parts.push("STUN failed".into()),
        StunStep::NotOffered if !matches!(*f.turn, TurnStep::NotOffered) => parts.push("no STUN offered".into()),
        StunStep::NotOffered | StunStep::Skipped => {}
    }
    match f.turn.as_ref() {
        TurnStep::Allocated { relay, took_ms, throughput, .. } => {
            let through = match throughput {
                Throughput::Measured { received_kbps, offered_kbps, loss_percent, .. } => {
                    format!("{received_kbps:.0} of {offered_kbps:.0} kb/s through it ({loss_percent:.0} % lost)")
                }
                Throughput::NotMeasured { .. } => "throughput not measured".into(),
            };
            parts.push(format!("TURN relay {relay} in {took_ms:.0} ms, {through}"));
        }
        TurnStep::AuthFailed { .. } => parts.push("TURN refused the credentials".into()),
        TurnStep::NoAnswer { .. } => parts.push("TURN no answer".into()),
        TurnStep::Failed { .. } => parts.push("TURN failed".into()),
        TurnStep::NotOverUdp { .. } => parts.push("no UDP TURN offered".into()),
        TurnStep::NotOffered if matches!(f.stun, StunStep::NotOffered) => parts.push("no STUN/TURN offered".into()),
        TurnStep::NotOffered => parts.push("no TURN offered".into()),
        TurnStep::Skipped => {}
    }
    match f.echo_call.as_ref() {
        EchoCallStep::Measured { seconds, setup_ms, quality } => {
            let rtt = quality.rtt_ms.map_or_else(|| "?".to_string(), |r| format!("{r:.1} ms"));
            parts.push(format!(
                "echo call {seconds:.1} s ({}, set up in {setup_ms:.0} ms): RTT {rtt}, jitter {:.1} ms, loss {:.1} %, \
                 {:.0}/{:.0} kb/s sent/received, MOS {:.2} ({})",
                quality.path,
                quality.jitter_ms,
                quality.loss_percent,
                quality.send_kbps,
                quality.receive_kbps,
                quality.mos,
                quality.quality
            ));
        }
        EchoCallStep::Failed { .. } => parts.push("echo call failed".into()),
        EchoCallStep::Skipped { reason } => parts.push(format!("echo call skipped ({reason})")),
    }
    parts.push(format!("{:.1} s in all", f.took_ms / 1000.0));
    parts.join("; ")
}

// ---------------------------------------------------------------------------------------------
// Running the check
// ---------------------------------------------------------------------------------------------

/// Runs the network check. Blocks for about 2.5–3 s on a good network, 1.5 s when UDP is
/// blocked, a moment when the server is not there.
pub fn run(plan: &NetworkPlan) -> CheckResult {
    // A runtime of its own on a thread of its own: the check may be called from a blocking
    // thread of another runtime, and everything it starts (the embedded server, the engine,
    // the echo call's media) ends with this runtime.
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("calldock-doctor-network")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the async runtime: {e}"))?;
                let figures = runtime.block_on(measure(plan));
                runtime.shutdown_timeout(Duration::from_millis(200));
                Ok::<NetworkFigures, String>(figures)
            })
            .join()
            .unwrap_or_else(|_| Err("the network check stopped unexpectedly".into()))
    });
    match outcome {
        Ok(figures) => verdict(figures),
        Err(detail) => CheckResult::problem(
            Check::Network,
            Verdict::Fail,
            "network_check_failed",
            format!("the network check could not run: {detail}"),
            "This machine is short of threads or memory: close some programs and run the check again".into(),
            None,
        ),
    }
}

/// Measures every step against `plan`'s server (or the embedded one).
async fn measure(plan: &NetworkPlan) -> NetworkFigures {
    let started = Instant::now();
    let (server, embedded) = match &plan.server {
        Some(url) => (url.trim().trim_end_matches('/').to_string(), None),
        None => match calldock_server::start(calldock_server::ServerConfig::default()).await {
            Ok(running) => (running.base_url(), Some(running)),
            Err(e) => {
                let detail = format!("the embedded server did not start: {e:#}");
                return NetworkFigures {
                    server: "http://127.0.0.1".into(),
                    embedded: true,
                    signaling: SignalingStep::Unreachable { detail, took_ms: ms(started.elapsed()) },
                    stun: StunStep::Skipped,
                    turn: Box::new(TurnStep::Skipped),
                    echo_call: Box::new(EchoCallStep::Skipped { reason: "no server".into() }),
                    took_ms: ms(started.elapsed()),
                };
            }
        },
    };
    let user = UserId::new(format!("{USER_PREFIX}{:012x}", rand::random::<u64>() >> 16));
    let device = DeviceId::new(format!("doctor-{:08x}", rand::random::<u32>()));
    let (signaling, credentials) = match tokio::time::timeout(SIGNALING_LIMIT, signaling(&server, &user, &device)).await
    {
        Ok(reached) => reached,
        Err(_) => {
            let detail = format!("it answered too slowly (signing in took over {} s)", SIGNALING_LIMIT.as_secs());
            (SignalingStep::Unreachable { detail, took_ms: ms(started.elapsed()) }, None)
        }
    };
    let mut figures = NetworkFigures {
        embedded: embedded.is_some(),
        signaling,
        stun: StunStep::Skipped,
        turn: Box::new(TurnStep::Skipped),
        echo_call: Box::new(EchoCallStep::Skipped { reason: "signaling failed".into() }),
        took_ms: 0.0,
        server,
    };
    if let Some(credentials) = credentials {
        let (stun, turn) = stun_and_turn(&credentials).await;
        *figures.echo_call = if udp_blocked(&stun, &turn) {
            EchoCallStep::Skipped { reason: "UDP is blocked, so audio could not flow".into() }
        } else {
            echo_call(&figures.server, &user, &device).await
        };
        (figures.stun, *figures.turn) = (stun, turn);
    }
    if let Some(running) = embedded {
        let _ = tokio::time::timeout(Duration::from_secs(1), running.shutdown()).await;
    }
    figures.took_ms = ms(started.elapsed());
    figures
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// --- Step 1: signaling --------------------------------------------------------------------------

/// Why a REST request failed.
enum RestFailure {
    /// Nothing (usable) answered.
    Transport(String),
    /// The server answered, not with what the protocol promises.
    Answer(String),
}

/// Reaches the server over HTTP, measures its round-trip time, signs in and fetches the ICE
/// servers. The credentials come back only when the server was reached.
async fn signaling(server: &str, user: &UserId, device: &DeviceId) -> (SignalingStep, Option<TurnCredentials>) {
    let started = Instant::now();
    let took = || ms(started.elapsed());
    let url = match ServerUrl::parse(server) {
        Ok(url) => url,
        Err(e) => return (SignalingStep::Unreachable { detail: e.to_string(), took_ms: took() }, None),
    };
    let client = match reqwest::Client::builder().connect_timeout(SIGNALING_TIMEOUT).timeout(SIGNALING_TIMEOUT).build()
    {
        Ok(client) => client,
        Err(e) => {
            let detail = format!("no HTTP client: {e}");
            return (SignalingStep::Unreachable { detail, took_ms: took() }, None);
        }
    };
    let failed = |failure: RestFailure, took_ms: f64| match failure {
        RestFailure::Transport(detail) => SignalingStep::Unreachable { detail, took_ms },
        RestFailure::Answer(detail) => SignalingStep::Refused { detail, took_ms },
    };
    let info_url = url.http("/v1/info");
    let sent = Instant::now();
    let info = match rest::<ServerInfo>(client.get(&info_url)).await {
        Ok(info) => info,
        Err(e) => return (failed(e, took()), None),
    };
    let first_request_ms = ms(sent.elapsed());
    // Again on the open connection: round trips without the connection's set-up.
    let mut rtts = Vec::with_capacity(RTT_PROBES);
    for _ in 0..RTT_PROBES {
        let sent = Instant::now();
        if let Err(e) = rest::<ServerInfo>(client.get(&info_url)).await {
            return (failed(e, took()), None);
        }
        rtts.push(ms(sent.elapsed()));
    }
    if let Err(mismatch) = ProtocolVersion::check(PROTOCOL_VERSION, info.protocol) {
        return (SignalingStep::Refused { detail: mismatch.to_string(), took_ms: took() }, None);
    }
    let rtt_ms = median(&mut rtts);
    let signing_in = Instant::now();
    let login = LoginRequest {
        user: user.clone(),
        display_name: Some("Calldock doctor".into()),
        device: Some(device.clone()),
        ttl_seconds: Some(300),
    };
    let session = match rest::<Session>(client.post(url.http("/v1/login")).json(&login)).await {
        Ok(session) => session,
        Err(e) => return (failed(e, took()), None),
    };
    let credentials = match rest::<TurnCredentials>(client.get(url.http("/v1/turn")).bearer_auth(&session.token)).await
    {
        Ok(credentials) => credentials,
        Err(e) => return (failed(e, took()), None),
    };
    let step = SignalingStep::Reached {
        agent: info.server,
        first_request_ms,
        rtt_ms,
        sign_in_ms: ms(signing_in.elapsed()),
        took_ms: took(),
    };
    (step, Some(credentials))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Sends a request and decodes the protocol's answer (or its error body).
async fn rest<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, RestFailure> {
    let response = request.send().await.map_err(|e| RestFailure::Transport(transport_detail(&e)))?;
    let status = response.status();
    let path = response.url().path().to_string();
    let body = response.text().await.map_err(|e| RestFailure::Transport(transport_detail(&e)))?;
    if status.is_success() {
        return serde_json::from_str(&body)
            .map_err(|e| RestFailure::Answer(format!("{path} did not answer as the Calldock protocol says: {e}")));
    }
    Err(RestFailure::Answer(match serde_json::from_str::<RestError>(&body) {
        Ok(error) => format!("{path} was refused ({}): {}", error.code, error.message),
        Err(_) => format!("{path} answered HTTP {status}, not as a Calldock server would"),
    }))
}

/// What went wrong on the wire, in the words of the innermost error (reqwest's outer ones only
/// repeat the URL).
fn transport_detail(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", SIGNALING_TIMEOUT.as_secs());
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

// --- Steps 2 and 3: STUN and TURN ---------------------------------------------------------------

/// A STUN or TURN server named by one of the URIs the server hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServerAddress {
    pub uri: String,
    pub host: String,
    pub port: u16,
}

impl IceServerAddress {
    fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the server's URIs offer this client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferedServers {
    /// The first `stun:` URI.
    pub stun: Option<IceServerAddress>,
    /// The first `turn:` URI over UDP: the only kind webrtc 0.21 relays through.
    pub turn: Option<IceServerAddress>,
    /// `turns:` and `?transport=tcp` URIs.
    pub turn_not_udp: Vec<String>,
}

impl OfferedServers {
    /// Sorts URIs (RFC 7064/7065 syntax) by what they offer; unreadable ones are left out.
    pub fn of(uris: &[String]) -> OfferedServers {
        let mut offered = OfferedServers::default();
        for uri in uris {
            let Ok(url) = IceUrl::parse_url(uri.trim()) else { continue };
            let address = IceServerAddress { uri: uri.clone(), host: url.host.clone(), port: url.port };
            match (url.scheme, url.proto) {
                (SchemeType::Stun, _) => {
                    offered.stun.get_or_insert(address);
                }
                (SchemeType::Turn, ProtoType::Udp) => {
                    offered.turn.get_or_insert(address);
                }
                (SchemeType::Turn | SchemeType::Turns, _) => offered.turn_not_udp.push(uri.clone()),
                _ => {}
            }
        }
        offered
    }
}

/// Whether `host` is this machine: media and probes to it bind 127.0.0.1 (webrtc 0.21 skips
/// loopback unless bound there, and nothing needs to leave the machine).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The STUN or TURN error code in an error from the STUN/TURN client, which only gives text:
/// `Allocate error response (error 401: Unauthorized)`.
pub fn stun_error_code(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("(error ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The server's own words in such an error (`401: Unauthorized`), or the whole text.
fn stun_error_words(text: &str) -> &str {
    text.split_once("(error ").and_then(|(_, after)| after.strip_suffix(')')).unwrap_or(text)
}

/// Refusals of credentials: 401 Unauthorized (RFC 5389), 431 Integrity Check Failure and
/// 441 Wrong Credentials (RFC 5766).
fn is_auth_refusal(code: Option<u16>) -> bool {
    matches!(code, Some(401 | 431 | 441))
}

/// A datagram read by one probe's socket.
struct Datagram {
    probe: usize,
    from: SocketAddr,
    at: Instant,
    bytes: BytesMut,
}

/// One UDP socket and the sans-IO STUN/TURN client that speaks through it.
struct Probe {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    client: TurnClient,
    /// Whether the server sent anything back at all.
    heard: bool,
    reader: tokio::task::JoinHandle<()>,
}

/// Probes driven together: their datagrams arrive on one channel, their timers are served in
/// one loop.
struct Probes {
    probes: Vec<Probe>,
    datagrams: mpsc::Receiver<Datagram>,
    sender: mpsc::Sender<Datagram>,
}

impl Drop for Probes {
    fn drop(&mut self) {
        for probe in &self.probes {
            probe.reader.abort();
        }
    }
}

impl Probes {
    fn new() -> Self {
        let (sender, datagrams) = mpsc::channel(1024);
        Self { probes: Vec::new(), datagrams, sender }
    }

    /// Opens a probe towards `server` (a STUN server when `credentials` is `None`, else a TURN
    /// server). Returns its index.
    async fn open(&mut self, server: SocketAddr, credentials: Option<(&str, &str)>) -> Result<usize, String> {
        let ip = match (server.ip().is_loopback(), server.is_ipv4()) {
            (true, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (true, false) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            (false, true) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (false, false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind((ip, 0)).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        let local = socket.local_addr().map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        let (stun_serv_addr, turn_serv_addr, username, password) = match credentials {
            None => (server.to_string(), String::new(), String::new(), String::new()),
            Some((user, password)) => (String::new(), server.to_string(), user.to_string(), password.to_string()),
        };
        let config = TurnClientConfig {
            stun_serv_addr,
            turn_serv_addr,
            local_addr: local,
            transport_protocol: TransportProtocol::UDP,
            username,
            password,
            realm: String::new(),
            software: concat!("calldock-doctor/", env!("CARGO_PKG_VERSION")).into(),
            rto_in_ms: 0,
            allocation_refresh_interval_cap: None,
        };
        let provider = rtc::crypto::default_provider().map_err(|e| format!("no crypto provider: {e}"))?;
        let client = TurnClient::new(config, provider).map_err(|e| format!("cannot start the client: {e}"))?;
        let socket = Arc::new(socket);
        let index = self.probes.len();
        let reader = tokio::spawn(read_datagrams(index, socket.clone(), self.sender.clone()));
        self.probes.push(Probe { socket, local, client, heard: false, reader });
        Ok(index)
    }

    fn client(&mut self, probe: usize) -> &mut TurnClient {
        &mut self.probes[probe].client
    }

    fn heard(&self, probe: usize) -> bool {
        self.probes[probe].heard
    }

    /// Sends what the clients have queued. A send that fails is a datagram lost, which the
    /// client's retransmissions or the deadlines deal with.
    async fn flush(&mut self) {
        for probe in &mut self.probes {
            while let Some(out) = probe.client.poll_write() {
                let _ = probe.socket.send_to(&out.message, out.transport.peer_addr).await;
            }
        }
    }

    /// The next event of any client, feeding them datagrams and timers until one comes;
    /// `None` once `until` has passed.
    async fn next_event(&mut self, until: Instant) -> Option<(usize, TurnEvent, Instant)> {
        loop {
            for (index, probe) in self.probes.iter_mut().enumerate() {
                if let Some(event) = probe.client.poll_event() {
                    return Some((index, event, Instant::now()));
                }
            }
            self.flush().await;
            if Instant::now() >= until {
                return None;
            }
            let wake =
                self.probes.iter_mut().filter_map(|p| p.client.poll_timeout()).fold(until, |soonest, t| soonest.min(t));
            tokio::select! {
                Some(datagram) = self.datagrams.recv() => {
                    let probe = &mut self.probes[datagram.probe];
                    probe.heard = true;
                    let message = TransportMessage {
                        now: datagram.at,
                        transport: TransportContext {
                            local_addr: probe.local,
                            peer_addr: datagram.from,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        message: datagram.bytes,
                    };
                    // A malformed datagram from the network is dropped, as the client asks.
                    let _ = probe.client.handle_read(message);
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
            let now = Instant::now();
            for probe in &mut self.probes {
                let _ = probe.client.handle_timeout(now);
            }
        }
    }
}

async fn read_datagrams(probe: usize, socket: Arc<UdpSocket>, sender: mpsc::Sender<Datagram>) {
    let mut buffer = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((length, from)) => {
                let datagram = Datagram { probe, from, at: Instant::now(), bytes: BytesMut::from(&buffer[..length]) };
                if sender.send(datagram).await.is_err() {
                    return;
                }
            }
            // ICMP errors surface here on some systems: the deadline reports the silence.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Resolves an ICE server's host, IPv4 first.
async fn resolve(server: &IceServerAddress) -> Result<SocketAddr, String> {
    let lookup = tokio::net::lookup_host((server.host.as_str(), server.port));
    let addresses: Vec<SocketAddr> = match tokio::time::timeout(Duration::from_secs(2), lookup).await {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(e)) => return Err(format!("cannot resolve {}: {e}", server.host)),
        Err(_) => return Err(format!("cannot resolve {}: no answer within 2 s", server.host)),
    };
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{} has no address", server.host))
}

/// When a transaction started at `started` is given up: sooner when its server has sent
/// nothing back at all.
fn give_up_at(started: Instant, heard: bool) -> Instant {
    started + if heard { UDP_ANSWER_LIMIT } else { UDP_SILENCE_LIMIT }
}

/// Opens a probe towards a STUN (`login` `None`) or TURN server and starts its transaction: a
/// binding request, or an allocation.
async fn open_probe(
    probes: &mut Probes,
    server: &IceServerAddress,
    login: Option<(&str, &str)>,
) -> Result<usize, String> {
    let address = resolve(server).await?;
    let probe = probes.open(address, login).await?;
    let now = Instant::now();
    let started = match login {
        None => probes.client(probe).send_binding_request(now).map(|_| ()),
        Some(_) => probes.client(probe).allocate(now).map(|_| ()),
    };
    started.map_err(|e| format!("cannot ask it: {e}"))?;
    Ok(probe)
}

/// Steps 2 and 3: a binding request to the STUN server and an allocation on the TURN server,
/// at the same time, then the throughput burst through the relay. The allocations are released
/// at the end.
async fn stun_and_turn(credentials: &TurnCredentials) -> (StunStep, TurnStep) {
    let offered = OfferedServers::of(&credentials.uris);
    let started = Instant::now();
    let mut probes = Probes::new();
    let login = (credentials.username.as_str(), credentials.credential.as_str());

    // Each pending transaction: its probe and its server's label.
    let mut stun_step = StunStep::NotOffered;
    let mut stun_pending: Option<(usize, String)> = None;
    if let Some(server) = &offered.stun {
        match open_probe(&mut probes, server, None).await {
            Ok(probe) => stun_pending = Some((probe, server.label())),
            Err(detail) => {
                let took_ms = ms(started.elapsed());
                stun_step = StunStep::Failed { server: server.label(), detail, answered: false, took_ms };
            }
        }
    }
    let mut turn_step = if offered.turn_not_udp.is_empty() {
        TurnStep::NotOffered
    } else {
        TurnStep::NotOverUdp { uris: offered.turn_not_udp.clone() }
    };
    let mut turn_pending: Option<(usize, String)> = None;
    // A second allocation to send the burst to; its failure only costs the throughput figure.
    let mut spare: Option<usize> = None;
    if let Some(server) = &offered.turn {
        match open_probe(&mut probes, server, Some(login)).await {
            Ok(probe) => {
                turn_pending = Some((probe, server.label()));
                spare = open_probe(&mut probes, server, Some(login)).await.ok();
            }
            Err(detail) => {
                let took_ms = ms(started.elapsed());
                turn_step = TurnStep::Failed { server: server.label(), detail, answered: false, took_ms };
            }
        }
    }
    let mut main_relay: Option<(usize, SocketAddr)> = None;
    let mut spare_relay: Option<SocketAddr> = None;
    let mut spare_problem: Option<String> = spare.is_none().then(|| "the second allocation could not start".into());

    loop {
        let spare_pending = spare.is_some()
            && spare_relay.is_none()
            && spare_problem.is_none()
            && (turn_pending.is_some() || main_relay.is_some());
        let deadlines = [
            stun_pending.as_ref().map(|(p, _)| give_up_at(started, probes.heard(*p))),
            turn_pending.as_ref().map(|(p, _)| give_up_at(started, probes.heard(*p))),
            spare_pending.then_some(started + UDP_ANSWER_LIMIT),
        ];
        let Some(until) = deadlines.into_iter().flatten().min() else { break };
        let Some((probe, event, at)) = probes.next_event(until).await else {
            // A deadline passed: what is still pending then has its answer.
            let now = Instant::now();
            let unfinished = format!("it answered, but did not finish within {} s", UDP_ANSWER_LIMIT.as_secs());
            if let Some((p, server)) = stun_pending.take_if(|(p, _)| now >= give_up_at(started, probes.heard(*p))) {
                let waited_ms = ms(now.duration_since(started));
                stun_step = if probes.heard(p) {
                    StunStep::Failed { server, detail: unfinished.clone(), answered: true, took_ms: waited_ms }
                } else {
                    StunStep::NoAnswer { server, waited_ms }
                };
            }
            if let Some((p, server)) = turn_pending.take_if(|(p, _)| now >= give_up_at(started, probes.heard(*p))) {
                let waited_ms = ms(now.duration_since(started));
                turn_step = if probes.heard(p) {
                    TurnStep::Failed { server, detail: unfinished, answered: true, took_ms: waited_ms }
                } else {
                    TurnStep::NoAnswer { server, waited_ms }
                };
            }
            if spare_pending && now >= started + UDP_ANSWER_LIMIT {
                spare_problem = Some("the second allocation did not finish in time".into());
            }
            continue;
        };
        let took_ms = ms(at.duration_since(started));
        if let Some((_, server)) = stun_pending.take_if(|(p, _)| *p == probe) {
            stun_step = match event {
                TurnEvent::BindingResponse(_, reflexive) => {
                    StunStep::Gathered { server, reflexive: reflexive.to_string(), took_ms }
                }
                TurnEvent::BindingError(_, e) => {
                    let detail = stun_error_words(&e.to_string()).to_string();
                    StunStep::Failed { server, detail, answered: true, took_ms }
                }
                TurnEvent::TransactionTimeout(_) => StunStep::NoAnswer { server, waited_ms: took_ms },
                _ => {
                    stun_pending = Some((probe, server));
                    continue;
                }
            };
        } else if let Some((_, server)) = turn_pending.take_if(|(p, _)| *p == probe) {
            turn_step = match event {
                TurnEvent::AllocateResponse(_, relay) => {
                    main_relay = Some((probe, relay));
                    let throughput = Throughput::NotMeasured { detail: "not measured".into() };
                    TurnStep::Allocated { server, relay: relay.to_string(), took_ms, throughput }
                }
                TurnEvent::AllocateError(_, e) => {
                    let text = e.to_string();
                    let detail = stun_error_words(&text).to_string();
                    if is_auth_refusal(stun_error_code(&text)) {
                        TurnStep::AuthFailed { server, detail, took_ms }
                    } else {
                        TurnStep::Failed { server, detail, answered: true, took_ms }
                    }
                }
                TurnEvent::TransactionTimeout(_) if !probes.heard(probe) => {
                    TurnStep::NoAnswer { server, waited_ms: took_ms }
                }
                TurnEvent::TransactionTimeout(_) => {
                    let detail = "the allocation went unanswered".into();
                    TurnStep::Failed { server, detail, answered: true, took_ms }
                }
                _ => {
                    turn_pending = Some((probe, server));
                    continue;
                }
            };
        } else if Some(probe) == spare {
            match event {
                TurnEvent::AllocateResponse(_, relay) => spare_relay = Some(relay),
                TurnEvent::AllocateError(_, e) => spare_problem = Some(e.to_string()),
                TurnEvent::TransactionTimeout(_) => spare_problem = Some("no answer".into()),
                _ => {}
            }
        }
    }

    if let (TurnStep::Allocated { throughput, .. }, Some((main, relay))) = (&mut turn_step, main_relay) {
        *throughput = match (spare, spare_relay) {
            (Some(spare), Some(spare_relay)) => {
                let measured = burst(&mut probes, (main, relay), (spare, spare_relay)).await;
                release(&mut probes, spare, spare_relay);
                measured
            }
            _ => Throughput::NotMeasured {
                detail: format!(
                    "no second relay to send to: {}",
                    spare_problem.as_deref().unwrap_or("it was not allocated")
                ),
            },
        };
        release(&mut probes, main, relay);
        probes.flush().await;
    }
    (stun_step, turn_step)
}

/// Releases an allocation (a refresh with lifetime 0), so coturn frees it at once; the answer
/// is not awaited.
fn release(probes: &mut Probes, probe: usize, relay: SocketAddr) {
    if let Ok(mut allocation) = probes.client(probe).relay(relay) {
        let _ = allocation.close(Instant::now());
    }
}

/// Permissions between the two relays, then a paced burst from the first to the second.
async fn burst(probes: &mut Probes, from: (usize, SocketAddr), to: (usize, SocketAddr)) -> Throughput {
    let not_measured = |detail: String| Throughput::NotMeasured { detail };
    let now = Instant::now();
    // The sender needs a permission to send to the other relay; the receiving relay one to
    // let the sender's relay in.
    let mut awaited = Vec::new();
    for ((probe, own), peer) in [(from, to.1), (to, from.1)] {
        match probes.client(probe).relay(own).and_then(|mut r| r.create_permission(now, peer)) {
            Ok(Some(_)) => awaited.push(probe),
            Ok(None) => {}
            Err(e) => return not_measured(format!("cannot ask for a permission: {e}")),
        }
    }
    let permitted_by = now + PERMISSION_LIMIT;
    while !awaited.is_empty() {
        match probes.next_event(permitted_by).await {
            Some((probe, TurnEvent::CreatePermissionResponse(..), _)) => awaited.retain(|p| *p != probe),
            Some((_, TurnEvent::CreatePermissionError(_, e), _)) => {
                return not_measured(format!("the TURN server refused a permission between its relays: {e}"));
            }
            Some(_) => {}
            None => return not_measured("the TURN server did not grant permissions in time".into()),
        }
    }

    let started = Instant::now();
    let mut payload = vec![0x5a; BURST_PAYLOAD];
    let mut sent = 0usize;
    let mut arrivals = Vec::with_capacity(BURST_PACKETS);
    let mut next_send = started;
    loop {
        let now = Instant::now();
        if sent < BURST_PACKETS && now >= next_send {
            payload[..4].copy_from_slice(&(sent as u32).to_be_bytes());
            if let Err(e) = probes.client(from.0).relay(from.1).and_then(|mut r| r.send_to(now, &payload, to.1)) {
                return not_measured(format!("cannot send through the relay: {e}"));
            }
            sent += 1;
            next_send += BURST_INTERVAL;
            continue;
        }
        if sent == BURST_PACKETS && arrivals.len() >= BURST_PACKETS {
            break;
        }
        let until = if sent < BURST_PACKETS { next_send } else { next_send + BURST_DRAIN };
        match probes.next_event(until).await {
            Some((probe, TurnEvent::DataIndicationOrChannelData(_, peer, _), at))
                if probe == to.0 && peer == from.1 =>
            {
                arrivals.push(at.duration_since(started));
            }
            Some(_) => {}
            None if sent == BURST_PACKETS => break,
            None => {}
        }
    }
    Throughput::measure(sent, BURST_PAYLOAD, BURST_INTERVAL, &arrivals)
}

// --- Step 4: the echo call -----------------------------------------------------------------------

/// Writes the echo call's microphone: a few seconds of speech-like sound, so the call carries
/// audio the whole time (silence would be DTX, and say little about loss).
fn write_voice(path: &Path) -> Result<(), String> {
    let seconds = (ECHO_CONNECT_LIMIT + ECHO_MEASURE_LIMIT).as_secs_f32();
    let voice = calldock_audio::pipeline::test_signal::speech_like(seconds);
    let mut wav = calldock_audio::wav::WavSpeaker::create(path).map_err(|e| e.to_string())?;
    wav.write(&voice).map_err(|e| e.to_string())?;
    wav.finish().map_err(|e| e.to_string())
}

/// A ~2 s audio call to the echo bot through the engine, with the engine's statistics.
async fn echo_call(server: &str, user: &UserId, device: &DeviceId) -> EchoCallStep {
    let started = Instant::now();
    let failed = |stage, detail: String| EchoCallStep::Failed { stage, detail, took_ms: ms(started.elapsed()) };
    let voice = match tempfile::Builder::new().prefix("calldock-doctor-").suffix(".wav").tempfile() {
        Ok(file) => file,
        Err(e) => return failed(EchoStage::Media, format!("cannot write the call's test sound: {e}")),
    };
    if let Err(e) = write_voice(voice.path()) {
        return failed(EchoStage::Media, format!("cannot write the call's test sound: {e}"));
    }
    // Calls to this machine bind 127.0.0.1: webrtc 0.21 gathers no loopback candidates on a
    // wildcard address, and nothing needs to leave the machine.
    let host = ServerUrl::parse(server).ok().and_then(|u| url_host(u.as_str()));
    let peer =
        if host.as_deref().is_some_and(is_loopback_host) { PeerSettings::loopback() } else { PeerSettings::default() };
    let mut config = EngineConfig::new(server, user.clone());
    config.display_name = Some("Calldock doctor".into());
    config.device = Some(device.clone());
    config.media = MediaConfig::Audio {
        microphone: Microphone::Wav(voice.path().to_path_buf()),
        speaker: Speaker::Null,
        peer,
        processing: ProcessingSwitches::OFF,
        // The echo call is audio only.
        camera: calldock_engine::media::CameraSource::Pattern,
    };
    let connecting = Engine::connect(config);
    let (engine, mut events) = match tokio::time::timeout(ECHO_CONNECT_LIMIT, connecting).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => return failed(EchoStage::Signaling, format!("{e} [{}]", e.code())),
        Err(_) => {
            let detail = format!("signing in over the WebSocket took over {} s", ECHO_CONNECT_LIMIT.as_secs());
            return failed(EchoStage::Signaling, detail);
        }
    };
    let step = match engine.call(UserId::new(ECHO_USER), Media::Audio).await {
        Ok(call_id) => follow_echo_call(&engine, &mut events, call_id, started).await,
        Err(e) => failed(EchoStage::Answer, format!("{e} [{}]", e.code())),
    };
    // Closing waits for the WebSocket's closing handshake, which a stuck connection never ends.
    let _ = tokio::time::timeout(Duration::from_secs(1), engine.close()).await;
    step
}

/// Follows the call until enough statistics are in, then hangs up.
async fn follow_echo_call(
    engine: &Engine,
    events: &mut mpsc::Receiver<EngineEvent>,
    mut call_id: CallId,
    started: Instant,
) -> EchoCallStep {
    let failed = |stage, detail: String| EchoCallStep::Failed { stage, detail, took_ms: ms(started.elapsed()) };
    let mut connected_at: Option<Instant> = None;
    let mut samples: Vec<CallStats> = Vec::new();
    let mut deadline = started + ECHO_CONNECT_LIMIT;
    loop {
        let event = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), events.recv()).await;
        let event = match event {
            Err(_) => break,
            Ok(None) => return failed(EchoStage::Signaling, "the engine stopped".into()),
            Ok(Some(event)) => event,
        };
        match event {
            EngineEvent::Call(CallEvent::Replaced { old, new }) if old == call_id => call_id = new,
            EngineEvent::Call(CallEvent::StateChanged { call_id: id, state: CallState::Connected })
                if id == call_id && connected_at.is_none() =>
            {
                let now = Instant::now();
                connected_at = Some(now);
                deadline = now + ECHO_MEASURE_LIMIT;
            }
            EngineEvent::Call(CallEvent::Ended { call_id: id, reason, .. }) if id == call_id => {
                let stage = if matches!(reason, EndReason::Failed(_)) || connected_at.is_some() {
                    EchoStage::Media
                } else {
                    EchoStage::Answer
                };
                return failed(stage, format!("the call ended: {}", end_reason_text(reason)));
            }
            EngineEvent::Stats { call_id: id, stats } if id == call_id => {
                samples.push(stats);
                if samples.len() >= ECHO_SAMPLES {
                    break;
                }
            }
            EngineEvent::Signaling(SignalingState::Failed(e)) => {
                return failed(EchoStage::Signaling, format!("{e} [{}]", e.code()));
            }
            _ => {}
        }
    }
    let Some(connected_at) = connected_at else {
        let detail = format!(
            "media did not connect within {} s of dialing (is UDP to the server blocked?)",
            ECHO_CONNECT_LIMIT.as_secs()
        );
        let _ = engine.hangup(call_id).await;
        return failed(EchoStage::Media, detail);
    };
    let seconds = connected_at.elapsed().as_secs_f64();
    let setup_ms = ms(connected_at.duration_since(started));
    // Hang up and wait (briefly) for the end, so the server records a finished call.
    if engine.hangup(call_id.clone()).await.is_ok() {
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(event)) = tokio::time::timeout_at(until, events.recv()).await {
            if matches!(event, EngineEvent::Call(CallEvent::Ended { call_id: ref id, .. }) if *id == call_id) {
                break;
            }
        }
    }
    match CallQuality::from_samples(&samples) {
        Some(quality) => EchoCallStep::Measured { setup_ms, seconds, quality },
        None => failed(EchoStage::Media, format!("the engine gave no statistics in {seconds:.1} s of call")),
    }
}

fn end_reason_text(reason: EndReason) -> String {
    match reason {
        EndReason::Failed(kind) => format!("failed ({kind:?})").to_lowercase(),
        EndReason::Missed => "the echo bot did not answer".into(),
        EndReason::Busy => "the echo bot is busy".into(),
        EndReason::Declined => "the echo bot declined".into(),
        other => format!("{other:?}"),
    }
}

/// The host of a base URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    Some(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached() -> SignalingStep {
        SignalingStep::Reached {
            agent: "calldock-server/0.1.0".into(),
            first_request_ms: 1.2,
            rtt_ms: 0.4,
            sign_in_ms: 0.8,
            took_ms: 3.0,
        }
    }

    fn quality(mos: f64) -> CallQuality {
        CallQuality {
            samples: 2,
            rtt_ms: Some(0.5),
            jitter_ms: 0.7,
            loss_percent: 0.0,
            send_kbps: 34.0,
            receive_kbps: 33.0,
            mos,
            quality: QualityLabel::of(mos),
            path: "host→host".into(),
        }
    }

    fn measured_call(mos: f64) -> EchoCallStep {
        EchoCallStep::Measured { setup_ms: 300.0, seconds: 2.0, quality: quality(mos) }
    }

    fn throughput(received_kbps: f64) -> Throughput {
        Throughput::Measured { offered_kbps: 400.0, received_kbps, loss_percent: 0.0, took_ms: 391.0 }
    }

    fn allocated(through: Throughput) -> TurnStep {
        TurnStep::Allocated {
            server: "127.0.0.1:3478".into(),
            relay: "127.0.0.1:20010".into(),
            took_ms: 3.0,
            throughput: through,
        }
    }

    fn gathered() -> StunStep {
        StunStep::Gathered { server: "127.0.0.1:3478".into(), reflexive: "127.0.0.1:40001".into(), took_ms: 1.0 }
    }

    /// Every step fine, against a `--server`.
    fn healthy() -> NetworkFigures {
        NetworkFigures {
            server: "http://127.0.0.1:7878".into(),
            embedded: false,
            signaling: reached(),
            stun: gathered(),
            turn: Box::new(allocated(throughput(398.0))),
            echo_call: Box::new(measured_call(4.4)),
            took_ms: 2800.0,
        }
    }

    fn judged(change: impl FnOnce(&mut NetworkFigures)) -> CheckResult {
        let mut figures = healthy();
        change(&mut figures);
        verdict(figures)
    }

    fn silent(server: &str) -> (StunStep, TurnStep) {
        (
            StunStep::NoAnswer { server: server.into(), waited_ms: 1500.0 },
            TurnStep::NoAnswer { server: server.into(), waited_ms: 1500.0 },
        )
    }

    #[test]
    fn a_healthy_network_passes_and_the_summary_carries_every_steps_figures() {
        let result = verdict(healthy());
        assert_eq!((result.verdict, result.code, result.remedy.as_deref()), (Verdict::Pass, None, None));
        for figure in [
            "signaling RTT 0.4 ms",
            "STUN reflexive address 127.0.0.1:40001",
            "TURN relay 127.0.0.1:20010",
            "398 of 400 kb/s",
            "echo call 2.0 s",
            "MOS 4.40 (excellent)",
            "2.8 s in all",
        ] {
            assert!(result.summary.contains(figure), "{figure:?} missing: {}", result.summary);
        }
        assert!(!result.summary.contains("only this machine"), "{}", result.summary);
        assert!(matches!(result.figures, Some(Figures::Network(_))));
    }

    #[test]
    fn the_embedded_server_passes_without_stun_or_turn_and_says_only_this_machine_was_checked() {
        let result = judged(|f| {
            f.embedded = true;
            f.stun = StunStep::NotOffered;
            *f.turn = TurnStep::NotOffered;
        });
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        assert!(result.summary.starts_with("only this machine was checked"), "{}", result.summary);
        assert!(result.summary.contains("no STUN/TURN offered"), "{}", result.summary);
    }

    #[test]
    fn an_unreachable_server_fails_with_its_address_and_nothing_else() {
        let result = judged(|f| {
            f.signaling =
                SignalingStep::Unreachable { detail: "Connection refused (os error 111)".into(), took_ms: 1.0 };
            f.stun = StunStep::Skipped;
            *f.turn = TurnStep::Skipped;
            *f.echo_call = EchoCallStep::Skipped { reason: "signaling failed".into() };
        });
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_server_unreachable")));
        assert_eq!(
            result.summary,
            "cannot reach the server at http://127.0.0.1:7878: Connection refused (os error 111); check the address \
             or your network"
        );
        assert!(result.remedy.unwrap().contains("--server address"));
    }

    #[test]
    fn a_server_that_answers_otherwise_is_refused() {
        let result = judged(|f| {
            let detail = "/v1/info answered HTTP 404 Not Found, not as a Calldock server would".into();
            f.signaling = SignalingStep::Refused { detail, took_ms: 2.0 };
            f.stun = StunStep::Skipped;
            *f.turn = TurnStep::Skipped;
        });
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_server_refused")));
        assert!(result.summary.contains("answered, but /v1/info answered HTTP 404"), "{}", result.summary);
    }

    #[test]
    fn silence_from_stun_and_turn_while_signaling_works_is_udp_blocked() {
        let result = judged(|f| {
            (f.stun, *f.turn) = silent("192.0.2.7:3478");
            *f.echo_call = EchoCallStep::Skipped { reason: "UDP is blocked".into() };
        });
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_udp_blocked")));
        assert!(result.summary.starts_with("UDP looks blocked: STUN/TURN at 192.0.2.7:3478 sent nothing back"));
        assert!(result.summary.contains("cannot relay over TCP/TLS yet"), "{}", result.summary);
        assert!(result.summary.contains("signaling RTT 0.4 ms"), "the TCP side's figures: {}", result.summary);
        assert!(result.remedy.unwrap().contains("cannot relay calls over TCP/TLS yet"));

        // One server silent and the other not offered: still nothing came back over UDP.
        let stun_only = judged(|f| {
            f.stun = StunStep::NoAnswer { server: "192.0.2.7:3478".into(), waited_ms: 1500.0 };
            *f.turn = TurnStep::NotOffered;
        });
        assert_eq!(stun_only.code, Some("network_udp_blocked"));
        let turn_only = judged(|f| {
            f.stun = StunStep::NotOffered;
            *f.turn = TurnStep::NoAnswer { server: "192.0.2.8:3478".into(), waited_ms: 1500.0 };
        });
        assert!(turn_only.summary.starts_with("UDP looks blocked: TURN at 192.0.2.8:3478"), "{}", turn_only.summary);
    }

    #[test]
    fn any_answer_over_udp_means_udp_is_not_blocked() {
        let (_, silent_turn) = silent("192.0.2.7:3478");
        assert!(!udp_blocked(&gathered(), &silent_turn));
        let refused =
            StunStep::Failed { server: "x".into(), detail: "400: Bad Request".into(), answered: true, took_ms: 1.0 };
        assert!(!udp_blocked(&refused, &silent_turn));
        let auth = TurnStep::AuthFailed { server: "x".into(), detail: "401: Unauthorized".into(), took_ms: 2.0 };
        assert!(!udp_blocked(&StunStep::NoAnswer { server: "x".into(), waited_ms: 1500.0 }, &auth));
        assert!(!udp_blocked(&StunStep::NotOffered, &TurnStep::NotOffered));
        // A STUN server that could not even be asked (unknown host) is no answer over UDP.
        let unresolved =
            StunStep::Failed { server: "x".into(), detail: "cannot resolve x".into(), answered: false, took_ms: 1.0 };
        assert!(udp_blocked(&unresolved, &silent_turn));
        assert!(!udp_blocked(&StunStep::Skipped, &TurnStep::Skipped));
    }

    #[test]
    fn refused_turn_credentials_fail_with_the_secret_message() {
        let result = judged(|f| {
            let detail = "401: Unauthorized".into();
            *f.turn = TurnStep::AuthFailed { server: "127.0.0.1:3478".into(), detail, took_ms: 2.0 };
        });
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_turn_auth_failed")));
        assert!(
            result.summary.starts_with(
                "TURN authentication failed: the server's TURN secret does not match coturn's (the TURN server at \
                 127.0.0.1:3478 answered 401: Unauthorized"
            ),
            "{}",
            result.summary
        );
        assert!(result.remedy.unwrap().contains("static-auth-secret"));
    }

    #[test]
    fn a_silent_turn_server_while_stun_answers_is_a_turn_problem() {
        let result = judged(|f| *f.turn = silent("127.0.0.1:3479").1);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_turn_no_answer")));
        assert!(result.summary.contains("though STUN answered"), "{}", result.summary);
        let failed = judged(|f| {
            let detail = "486: Allocation Quota Reached".into();
            *f.turn = TurnStep::Failed { server: "127.0.0.1:3478".into(), detail, answered: true, took_ms: 2.0 };
        });
        assert_eq!((failed.verdict, failed.code), (Verdict::Fail, Some("network_turn_failed")));
        assert!(failed.summary.contains("486: Allocation Quota Reached"), "{}", failed.summary);
    }

    #[test]
    fn missing_or_unusable_turn_warns_on_a_real_server_only() {
        let none = judged(|f| *f.turn = TurnStep::NotOffered);
        assert_eq!((none.verdict, none.code), (Verdict::Warn, Some("network_no_turn")));
        assert!(none.remedy.unwrap().contains("--turn-secret"));
        let embedded = judged(|f| {
            f.embedded = true;
            *f.turn = TurnStep::NotOffered;
        });
        assert_eq!(embedded.verdict, Verdict::Pass);
        let tcp = judged(|f| *f.turn = TurnStep::NotOverUdp { uris: vec!["turns:turn.example:5349".into()] });
        assert_eq!((tcp.verdict, tcp.code), (Verdict::Warn, Some("network_turn_not_udp")));
        assert!(tcp.summary.contains("only over TCP/TLS (turns:turn.example:5349)"), "{}", tcp.summary);
    }

    #[test]
    fn stun_trouble_warns_when_turn_works() {
        let silent_stun =
            judged(|f| f.stun = StunStep::NoAnswer { server: "127.0.0.1:3479".into(), waited_ms: 1500.0 });
        assert_eq!((silent_stun.verdict, silent_stun.code), (Verdict::Warn, Some("network_stun_no_answer")));
        let failed = judged(|f| {
            let detail = "cannot resolve stun.example".into();
            f.stun = StunStep::Failed { server: "stun.example:3478".into(), detail, answered: false, took_ms: 1.0 };
        });
        assert_eq!((failed.verdict, failed.code), (Verdict::Warn, Some("network_stun_failed")));
    }

    #[test]
    fn throughput_under_100_kbps_warns() {
        let low = judged(|f| *f.turn = allocated(throughput(64.0)));
        assert_eq!((low.verdict, low.code), (Verdict::Warn, Some("network_low_throughput")));
        assert!(
            low.summary.starts_with("the path through the TURN relay carried only 64 of 400 kb/s"),
            "{}",
            low.summary
        );
        assert_eq!(judged(|f| *f.turn = allocated(throughput(100.0))).verdict, Verdict::Pass, "exactly 100 passes");
        let unmeasured = judged(|f| *f.turn = allocated(Throughput::NotMeasured { detail: "no second relay".into() }));
        assert_eq!(unmeasured.verdict, Verdict::Pass);
        assert!(unmeasured.summary.contains("throughput not measured"), "{}", unmeasured.summary);
    }

    #[test]
    fn the_mos_label_decides_the_echo_calls_verdict() {
        for (mos, expected, code) in [
            (4.4, Verdict::Pass, None),
            (4.1, Verdict::Pass, None),
            (3.8, Verdict::Warn, Some("network_call_quality_low")),
            (3.2, Verdict::Warn, Some("network_call_quality_low")),
            (2.5, Verdict::Fail, Some("network_call_quality_bad")),
        ] {
            let result = judged(|f| *f.echo_call = measured_call(mos));
            assert_eq!((result.verdict, result.code), (expected, code), "MOS {mos}: {}", result.summary);
            assert!(
                result.summary.contains(&format!("MOS {mos:.2} ({})", QualityLabel::of(mos))),
                "{}",
                result.summary
            );
        }
    }

    #[test]
    fn a_failed_echo_call_fails_with_a_remedy_for_where_it_failed() {
        for (stage, remedy) in
            [(EchoStage::Signaling, "WebSocket"), (EchoStage::Answer, "echo bot"), (EchoStage::Media, "UDP")]
        {
            let result = judged(|f| {
                *f.echo_call =
                    EchoCallStep::Failed { stage, detail: "the call ended: failed (ice)".into(), took_ms: 4000.0 };
            });
            assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_echo_call_failed")));
            assert!(result.summary.starts_with("the echo call failed: the call ended: failed (ice)"));
            assert!(result.remedy.unwrap().contains(remedy), "{stage:?}");
        }
    }

    #[test]
    fn the_worst_step_decides_and_the_earliest_of_equals_leads() {
        // A failure outranks an earlier warning.
        let result = judged(|f| {
            f.stun = StunStep::NoAnswer { server: "127.0.0.1:3479".into(), waited_ms: 1500.0 };
            *f.echo_call = measured_call(2.0);
        });
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("network_call_quality_bad")));
        // Two failures: the earlier step's is named.
        let result = judged(|f| {
            let detail = "401: Unauthorized".into();
            *f.turn = TurnStep::AuthFailed { server: "127.0.0.1:3478".into(), detail, took_ms: 2.0 };
            *f.echo_call = measured_call(2.0);
        });
        assert_eq!(result.code, Some("network_turn_auth_failed"));
        assert!(result.summary.contains("MOS 2.00 (bad)"), "later steps' figures stay: {}", result.summary);
        // Two warnings: STUN (step 2) before throughput (step 3) before the call (step 4).
        let result = judged(|f| {
            f.stun = StunStep::NoAnswer { server: "127.0.0.1:3479".into(), waited_ms: 1500.0 };
            *f.turn = allocated(throughput(50.0));
            *f.echo_call = measured_call(3.5);
        });
        assert_eq!((result.verdict, result.code), (Verdict::Warn, Some("network_stun_no_answer")));
    }

    #[test]
    fn json_figures_carry_each_steps_outcome_and_timings() {
        let json = serde_json::to_value(verdict(healthy())).unwrap();
        let figures = &json["figures"];
        assert_eq!(figures["server"], "http://127.0.0.1:7878");
        assert_eq!(figures["signaling"]["outcome"], "reached");
        assert_eq!(figures["signaling"]["rtt_ms"], 0.4);
        assert_eq!(figures["stun"]["outcome"], "gathered");
        assert_eq!(figures["stun"]["took_ms"], 1.0);
        assert_eq!(figures["turn"]["outcome"], "allocated");
        assert_eq!(figures["turn"]["throughput"]["outcome"], "measured");
        assert_eq!(figures["turn"]["throughput"]["received_kbps"], 398.0);
        assert_eq!(figures["echo_call"]["outcome"], "measured");
        assert_eq!(figures["echo_call"]["quality"], "excellent");
        assert_eq!(figures["echo_call"]["mos"], 4.4);
        assert_eq!(figures["echo_call"]["setup_ms"], 300.0);
        assert_eq!(figures["took_ms"], 2800.0);
        let failed = EchoCallStep::Failed { stage: EchoStage::Media, detail: "x".into(), took_ms: 1.0 };
        assert_eq!(serde_json::to_value(failed).unwrap()["stage"], "media");
    }

    #[test]
    fn throughput_is_the_dispersion_of_arrivals_capped_at_the_offered_rate() {
        let interval = Duration::from_millis(10);
        let at = |ms: f64| Duration::from_secs_f64(ms / 1000.0);
        // Every packet, on schedule, 2 ms later: the path carried what was offered.
        let on_time: Vec<_> = (0..40).map(|i| at(2.0 + 10.0 * f64::from(i))).collect();
        let Throughput::Measured { offered_kbps, received_kbps, loss_percent, took_ms } =
            Throughput::measure(40, 500, interval, &on_time)
        else {
            panic!("measured")
        };
        assert_eq!((offered_kbps, received_kbps, loss_percent), (400.0, 400.0, 0.0));
        assert!((took_ms - 392.0).abs() < 1e-9, "{took_ms}");
        // A 100 kb/s bottleneck: packets leave it every 40 ms.
        let squeezed: Vec<_> = (0..40).map(|i| at(2.0 + 40.0 * f64::from(i))).collect();
        let Throughput::Measured { received_kbps, .. } = Throughput::measure(40, 500, interval, &squeezed) else {
            panic!()
        };
        assert!((received_kbps - 100.0).abs() < 1e-9, "{received_kbps}");
        // Half lost, the rest on schedule: half the rate, 50 % lost.
        let halved: Vec<_> = (0..20).map(|i| at(2.0 + 20.0 * f64::from(i))).collect();
        let Throughput::Measured { received_kbps, loss_percent, .. } = Throughput::measure(40, 500, interval, &halved)
        else {
            panic!()
        };
        assert!((received_kbps - 200.0).abs() < 1e-9 && loss_percent == 50.0, "{received_kbps} {loss_percent}");
        // All at once (a late sender): capped at what was offered, never divided by zero.
        let Throughput::Measured { received_kbps, .. } = Throughput::measure(40, 500, interval, &vec![at(5.0); 40])
        else {
            panic!()
        };
        assert_eq!(received_kbps, 400.0);
        // Nothing, or one packet.
        let Throughput::Measured { received_kbps, loss_percent, .. } = Throughput::measure(40, 500, interval, &[])
        else {
            panic!()
        };
        assert_eq!((received_kbps, loss_percent), (0.0, 100.0));
        let Throughput::Measured { received_kbps, .. } = Throughput::measure(40, 500, interval, &[at(3.0)]) else {
            panic!()
        };
        assert!((received_kbps - 10.0).abs() < 1e-9, "{received_kbps}");
    }

    fn sample(mos: f64, send_kbps: f64, rtt_ms: Option<f64>) -> CallStats {
        CallStats {
            rtt_ms,
            jitter_ms: 1.0,
            loss_percent: 2.0,
            send_kbps,
            receive_kbps: send_kbps - 1.0,
            codec: Some("audio/opus".into()),
            local_candidate: Some("relay".into()),
            remote_candidate: Some("host".into()),
            audio_level_dbfs: -20.0,
            jitter_buffer_delay_ms: 20,
            concealed_samples: 0,
            sent_loss_percent: Some(0.0),
            fec_percent: 0,
            mos,
            quality: QualityLabel::of(mos),
            video: None,
        }
    }

    #[test]
    fn call_quality_takes_the_engines_worst_second_and_steady_bitrates() {
        assert_eq!(CallQuality::from_samples(&[]), None);
        let q = CallQuality::from_samples(&[
            sample(4.4, 40.0, Some(1.0)),
            sample(3.7, 30.0, None),
            sample(4.3, 34.0, Some(3.0)),
        ])
        .unwrap();
        assert_eq!(q.samples, 3);
        assert_eq!((q.mos, q.quality), (3.7, QualityLabel::Fair), "the worst second, as the engine labelled it");
        assert_eq!(q.rtt_ms, Some(2.0), "the mean of the seconds that had one");
        assert_eq!((q.send_kbps, q.receive_kbps), (32.0, 31.0), "without the first second");
        assert_eq!((q.jitter_ms, q.loss_percent), (1.0, 2.0));
        assert_eq!(q.path, "relay→host");
        let one = CallQuality::from_samples(&[sample(4.4, 40.0, None)]).unwrap();
        assert_eq!((one.send_kbps, one.rtt_ms), (40.0, None));
    }

    #[test]
    fn offered_servers_are_sorted_by_what_calldock_can_use() {
        let uris = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let offered = OfferedServers::of(&uris(&[
            "not a uri",
            "turns:turn.example:5349",
            "turn:turn.example:3478?transport=tcp",
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3479",
            "stun:127.0.0.1:3478",
            "stun:[::1]:3480",
        ]));
        let turn = offered.turn.unwrap();
        assert_eq!((turn.host.as_str(), turn.port, turn.label()), ("127.0.0.1", 3478, "127.0.0.1:3478".to_string()));
        assert_eq!(offered.stun.unwrap().uri, "stun:127.0.0.1:3478");
        assert_eq!(offered.turn_not_udp, ["turns:turn.example:5349", "turn:turn.example:3478?transport=tcp"]);
        let v6 = OfferedServers::of(&uris(&["stun:[::1]:3480", "turn:example.org"])); // port 3478 by default
        assert_eq!(v6.stun.unwrap().label(), "[::1]:3480");
        assert_eq!(v6.turn.unwrap().port, 3478);
        assert_eq!(OfferedServers::of(&[]), OfferedServers::default());
    }

    #[test]
    fn small_parsers_handle_what_servers_and_users_give() {
        assert_eq!(stun_error_code("Allocate error response (error 401: Unauthorized)"), Some(401));
        assert_eq!(stun_error_words("Allocate error response (error 401: Unauthorized)"), "401: Unauthorized");
        assert_eq!(stun_error_code("transaction timed out"), None);
        assert_eq!(stun_error_words("transaction timed out"), "transaction timed out");
        assert_eq!(stun_error_code("(error x)"), None);
        assert!(is_auth_refusal(Some(441)) && !is_auth_refusal(Some(486)) && !is_auth_refusal(None));
        for host in ["127.0.0.1", "localhost", "LOCALHOST", "::1", "[::1]", "127.3.2.1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["10.0.0.1", "calls.example", "", "::"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert_eq!(url_host("http://127.0.0.1:7878").as_deref(), Some("127.0.0.1"));
        assert_eq!(url_host("https://calls.example").as_deref(), Some("calls.example"));
        assert_eq!(url_host("http://[::1]:7878/").as_deref(), Some("::1"));
        assert_eq!(url_host("no scheme"), None);
        let mut rtts = [3.0, 1.0, 2.0, 10.0];
        assert_eq!(median(&mut rtts), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
