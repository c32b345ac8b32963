//! `calldock conformance --server URL`: checks that a signaling server speaks the Calldock
//! protocol (docs/protocol.md). Each check logs in fresh users with random names, so it can run
//! against a shared server, and reports one pass/fail line.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure};
use calldock_protocol::{
    CallId, ClientMessage, DeclineReason, ECHO_USER, EndReason, ErrorCode, Media, PROTOCOL_VERSION, ProtocolVersion,
    SdpKind, ServerInfo, ServerMessage,
};
use serde_json::json;

pub mod raw;

pub use raw::{Frame, RawClient};

const WAIT: Duration = Duration::from_secs(5);

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub passed: bool,
    /// What was seen: a figure on success, the discrepancy on failure.
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }
}

type CheckFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<String>> + Send + 'a>>;
type Check = for<'a> fn(&'a Context) -> CheckFuture<'a>;

/// What every check knows: the server and a name prefix unique to this run.
pub struct Context {
    pub base: String,
    prefix: String,
}

impl Context {
    fn user(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn client(&self, name: &str, device: &str) -> anyhow::Result<RawClient> {
        RawClient::connect_as(&self.base, &self.user(name), device).await
    }
}

/// Every check, in the order they run.
pub const CHECKS: &[(&str, Check)] = &[
    ("info endpoint reports a compatible protocol", |c| Box::pin(info(c))),
    ("hello is answered with welcome", |c| Box::pin(hello(c))),
    ("a different major version is refused, naming both versions", |c| Box::pin(version_mismatch(c))),
    ("requests before auth are refused", |c| Box::pin(needs_auth(c))),
    ("login and auth succeed", |c| Box::pin(auth_ok(c))),
    ("an invalid token is refused with token_invalid", |c| Box::pin(token_invalid(c))),
    ("an expired token is refused with token_expired", |c| Box::pin(token_expired(c))),
    ("ping is answered with pong", |c| Box::pin(ping(c))),
    ("malformed JSON gets bad_json and the connection stays usable", |c| Box::pin(bad_json(c))),
    ("a frame without an id gets bad_request", |c| Box::pin(missing_id(c))),
    ("an unknown type gets unknown_type as a reply", |c| Box::pin(unknown_type(c))),
    ("a frame over 64 KiB is refused", |c| Box::pin(oversized(c))),
    ("call flow: invite, ringing, accept, SDP and ICE relay, hangup", |c| Box::pin(call_accept(c))),
    ("call flow: decline reaches the caller with the decliner's name", |c| Box::pin(call_decline(c))),
    ("call flow: cancel stops the callee ringing", |c| Box::pin(call_cancel(c))),
    ("call flow: a second start in the conversation returns the active call", |c| Box::pin(idempotent_start(c))),
    ("call flow: every device rings and the first accept wins", |c| Box::pin(multi_device(c))),
    ("a user outside a call cannot act on it", |c| Box::pin(outsider(c))),
    ("calling an unknown user gets user_not_found", |c| Box::pin(unknown_user(c))),
    ("the echo bot answers", |c| Box::pin(echo(c))),
];

/// Runs every check against `base` (`http://host:port`), telling `progress` each result as it
/// comes, so a person watching sees which check is slow.
pub async fn run(base: &str, mut progress: impl FnMut(&CheckResult)) -> Report {
    let prefix = format!("cf{:06x}-", rand::random::<u32>() & 0xff_ffff);
    let context = Context { base: base.trim_end_matches('/').to_owned(), prefix };
    let mut report = Report::default();
    for (name, check) in CHECKS {
        let outcome = tokio::time::timeout(Duration::from_secs(20), check(&context)).await;
        let (passed, detail) = match outcome {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(e)) => (false, format!("{e:#}")),
            Err(_) => (false, "no answer within 20 s".into()),
        };
        let result = CheckResult { name, passed, detail };
        progress(&result);
        report.checks.push(result);
    }
    report
}

fn error_code(reply: &ServerMessage) -> Option<ErrorCode> {
    match reply {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

fn call_id() -> CallId {
    CallId(format!("{:032x}", rand::random::<u128>()))
}

async fn info(c: &Context) -> anyhow::Result<String> {
    let info: ServerInfo = reqwest::get(format!("{}/v1/info", c.base)).await?.error_for_status()?.json().await?;
    ProtocolVersion::check(PROTOCOL_VERSION, info.protocol)?;
    Ok(format!("{} speaks {}", info.server, info.protocol))
}

async fn hello(c: &Context) -> anyhow::Result<String> {
    let mut client = RawClient::connect(&c.base).await?;
    match client.hello().await? {
        ServerMessage::Welcome { protocol, max_frame_bytes, .. } => {
            ensure!(
                max_frame_bytes >= calldock_protocol::MAX_FRAME_BYTES,
                "max_frame_bytes {max_frame_bytes} is below 64 KiB"
            );
            Ok(format!("protocol {protocol}"))
        }
        _ => unreachable!("hello() checks the reply type"),
    }
}

async fn version_mismatch(c: &Context) -> anyhow::Result<String> {
    let mut client = RawClient::connect(&c.base).await?;
    let reply =
        client.request_json(json!({"id": "v", "type": "hello", "protocol": "99.0", "agent": "conformance"})).await?;
    ensure!(reply["type"] == "error" && reply["code"] == "version_mismatch", "expected version_mismatch, got {reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    ensure!(message.contains("99.0"), "the message does not name the client's version: {message}");
    ensure!(
        message.contains(&format!("{}.", PROTOCOL_VERSION.major)),
        "the message does not name the server's version: {message}"
    );
    Ok(message.to_owned())
}

async fn needs_auth(c: &Context) -> anyhow::Result<String> {
    let mut client = RawClient::connect(&c.base).await?;
    client.hello().await?;
    let reply = client.request(ClientMessage::CallSync {}).await?;
    ensure!(error_code(&reply) == Some(ErrorCode::NotAuthenticated), "expected not_authenticated, got {reply:?}");
    Ok("not_authenticated".into())
}

async fn auth_ok(c: &Context) -> anyhow::Result<String> {
    let client = c.client("auth", "d1").await?;
    let session = client.session.as_ref().ok_or_else(|| anyhow!("no session"))?;
    Ok(format!("token expires at {}", session.expires_at.0))
}

async fn token_invalid(c: &Context) -> anyhow::Result<String> {
    let mut client = RawClient::connect(&c.base).await?;
    client.hello().await?;
    let reply = client.request(ClientMessage::Auth { token: "v1.not-a-token.at-all".into() }).await?;
    ensure!(error_code(&reply) == Some(ErrorCode::TokenInvalid), "expected token_invalid, got {reply:?}");
    Ok("token_invalid".into())
}

async fn token_expired(c: &Context) -> anyhow::Result<String> {
    let session = raw::login_with_ttl(&c.base, &c.user("expired"), "d1", Some(1)).await?;
    let left = session.expires_at.0.saturating_sub(now_ms());
    ensure!(left <= 2_000, "the server ignored ttl_seconds=1 (token lives {left} ms more), cannot check expiry");
    tokio::time::sleep(Duration::from_millis(left + 300)).await;
    let mut client = RawClient::connect(&c.base).await?;
    client.hello().await?;
    let reply = client.request(ClientMessage::Auth { token: session.token }).await?;
    ensure!(error_code(&reply) == Some(ErrorCode::TokenExpired), "expected token_expired, got {reply:?}");
    Ok("token_expired".into())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn ping(c: &Context) -> anyhow::Result<String> {
    let mut client = c.client("ping", "d1").await?;
    let start = std::time::Instant::now();
    let reply = client.request(ClientMessage::Ping {}).await?;
    ensure!(matches!(reply, ServerMessage::Pong { .. }), "expected pong, got {reply:?}");
    Ok(format!("{:.2} ms", start.elapsed().as_secs_f64() * 1000.0))
}

async fn still_usable(client: &mut RawClient) -> anyhow::Result<()> {
    let reply = client.request(ClientMessage::Ping {}).await?;
    ensure!(matches!(reply, ServerMessage::Pong { .. }), "connection unusable after the error: {reply:?}");
    Ok(())
}

async fn bad_json(c: &Context) -> anyhow::Result<String> {
    let mut client = c.client("badjson", "d1").await?;
    client.send_text("{\"id\": \"x\", \"type\": ").await?;
    let reply = client.event(WAIT).await?;
    ensure!(error_code(&reply) == Some(ErrorCode::BadJson), "expected bad_json, got {reply:?}");
    still_usable(&mut client).await?;
    Ok("bad_json".into())
}

async fn missing_id(c: &Context) -> anyhow::Result<String> {
    let mut client = c.client("noid", "d1").await?;
    client.send_text(r#"{"type":"ping"}"#).await?;
    let reply = client.event(WAIT).await?;
    ensure!(error_code(&reply) == Some(ErrorCode::BadRequest), "expected bad_request, got {reply:?}");
    still_usable(&mut client).await?;
    Ok("bad_request".into())
}

async fn unknown_type(c: &Context) -> anyhow::Result<String> {
    let mut client = c.client("unknown", "d1").await?;
    let reply = client.request_json(json!({"id": "u1", "type": "call.teleport", "to": "mars"})).await?;
    ensure!(
        reply["code"] == "unknown_type" && reply["re"] == "u1",
        "expected unknown_type replying to u1, got {reply}"
    );
    still_usable(&mut client).await?;
    Ok("unknown_type".into())
}

async fn oversized(c: &Context) -> anyhow::Result<String> {
    let mut client = c.client("big", "d1").await?;
    let pad = "x".repeat(70 * 1024);
    client.send_text(json!({"id": "big", "type": "ping", "pad": pad}).to_string()).await?;
    match client.frame(WAIT).await? {
        Frame::Json(v) if v["code"] == "frame_too_large" => {
            still_usable(&mut client).await?;
            Ok("frame_too_large".into())
        }
        Frame::Closed(code) if code == 1009 || code == 1008 => Ok(format!("closed with {code}")),
        other => bail!("expected frame_too_large or close 1009, got {other:?}"),
    }
}

/// alice calls bob; returns both clients and the call once bob's device rings.
async fn ring(c: &Context, tag: &str, media: Media) -> anyhow::Result<(RawClient, RawClient, CallId)> {
    let mut alice = c.client(&format!("{tag}a"), "a1").await?;
    let mut bob = c.client(&format!("{tag}b"), "b1").await?;
    let id = call_id();
    let reply = alice
        .request(ClientMessage::CallInvite {
            call_id: id.clone(),
            to: c.user(&format!("{tag}b")).into(),
            media,
            conversation: None,
        })
        .await?;
    ensure!(
        matches!(&reply, ServerMessage::CallCreated { call, existing: false, .. } if call.call_id == id),
        "invite: {reply:?}"
    );
    let invited = bob
        .event_where(WAIT, |e| match e {
            ServerMessage::CallInvite { call } => Some(call.call_id.clone()),
            _ => None,
        })
        .await?;
    ensure!(invited == id, "bob was invited to {invited}, not {id}");
    Ok((alice, bob, id))
}

async fn call_accept(c: &Context) -> anyhow::Result<String> {
    let (mut alice, mut bob, id) = ring(c, "flow", Media::Audio).await?;
    let started = std::time::Instant::now();
    ensure!(matches!(bob.request(ClientMessage::CallRinging { call_id: id.clone() }).await?, ServerMessage::Ok { .. }));
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::CallRinging { .. }).then_some(())).await?;
    ensure!(matches!(
        bob.request(ClientMessage::CallAccept { call_id: id.clone(), media: Media::Audio }).await?,
        ServerMessage::Ok { .. }
    ));
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::CallAccepted { .. }).then_some(())).await?;
    let reply = alice
        .request(ClientMessage::Sdp { call_id: id.clone(), to: None, kind: SdpKind::Offer, sdp: "v=0 offer".into() })
        .await?;
    ensure!(matches!(reply, ServerMessage::Ok { .. }), "sdp relay: {reply:?}");
    let sdp = bob
        .event_where(WAIT, |e| match e {
            ServerMessage::Sdp { sdp, kind: SdpKind::Offer, .. } => Some(sdp.clone()),
            _ => None,
        })
        .await?;
    ensure!(sdp == "v=0 offer", "offer arrived changed: {sdp}");
    bob.request(ClientMessage::Sdp { call_id: id.clone(), to: None, kind: SdpKind::Answer, sdp: "v=0 answer".into() })
        .await?;
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::Sdp { kind: SdpKind::Answer, .. }).then_some(())).await?;
    bob.request(ClientMessage::Ice {
        call_id: id.clone(),
        to: None,
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    })
    .await?;
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::Ice { .. }).then_some(())).await?;
    let setup = started.elapsed();
    alice.request(ClientMessage::CallEnd { call_id: id.clone(), failure: None, reconnect_timeout: false }).await?;
    let reason = bob
        .event_where(WAIT, |e| match e {
            ServerMessage::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .await?;
    ensure!(reason == EndReason::Hangup, "bob saw {reason:?}, expected hangup");
    Ok(format!("setup exchange {:.1} ms", setup.as_secs_f64() * 1000.0))
}

async fn call_decline(c: &Context) -> anyhow::Result<String> {
    let (mut alice, mut bob, id) = ring(c, "decl", Media::Video).await?;
    bob.request(ClientMessage::CallDecline { call_id: id.clone(), reason: DeclineReason::Declined }).await?;
    let (reason, by_name) = alice
        .event_where(WAIT, |e| match e {
            ServerMessage::CallEnded { reason, by_name, .. } => Some((*reason, by_name.clone())),
            _ => None,
        })
        .await?;
    ensure!(reason == EndReason::Declined, "alice saw {reason:?}");
    let by_name = by_name.ok_or_else(|| anyhow!("call.ended has no by_name"))?;
    ensure!(!by_name.is_empty(), "empty by_name");
    Ok(format!("declined by {by_name}"))
}

async fn call_cancel(c: &Context) -> anyhow::Result<String> {
    let (mut alice, mut bob, id) = ring(c, "canc", Media::Audio).await?;
    alice.request(ClientMessage::CallCancel { call_id: id.clone() }).await?;
    let reason = bob
        .event_where(WAIT, |e| match e {
            ServerMessage::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .await?;
    ensure!(reason == EndReason::Canceled, "bob saw {reason:?}");
    Ok("canceled".into())
}

async fn idempotent_start(c: &Context) -> anyhow::Result<String> {
    let (mut alice, _bob, id) = ring(c, "idem", Media::Audio).await?;
    let reply = alice
        .request(ClientMessage::CallInvite {
            call_id: call_id(),
            to: c.user("idemb").into(),
            media: Media::Audio,
            conversation: None,
        })
        .await?;
    match reply {
        ServerMessage::CallCreated { call, existing: true, .. } if call.call_id == id => {
            Ok("existing call returned".into())
        }
        other => bail!("expected the active call {id} with existing=true, got {other:?}"),
    }
}

async fn multi_device(c: &Context) -> anyhow::Result<String> {
    let mut alice = c.client("mda", "a1").await?;
    let mut phone = c.client("mdb", "phone").await?;
    let mut laptop = c.client("mdb", "laptop").await?;
    let id = call_id();
    alice
        .request(ClientMessage::CallInvite {
            call_id: id.clone(),
            to: c.user("mdb").into(),
            media: Media::Audio,
            conversation: None,
        })
        .await?;
    for device in [&mut phone, &mut laptop] {
        device.event_where(WAIT, |e| matches!(e, ServerMessage::CallInvite { .. }).then_some(())).await?;
    }
    let first = phone.request(ClientMessage::CallAccept { call_id: id.clone(), media: Media::Audio }).await?;
    ensure!(matches!(first, ServerMessage::Ok { .. }), "first accept: {first:?}");
    let second = laptop.request(ClientMessage::CallAccept { call_id: id.clone(), media: Media::Audio }).await?;
    ensure!(error_code(&second) == Some(ErrorCode::InvalidState), "second accept should lose, got {second:?}");
    let reason = laptop
        .event_where(WAIT, |e| match e {
            ServerMessage::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .await?;
    ensure!(reason == EndReason::AcceptedElsewhere, "laptop saw {reason:?}");
    Ok("accepted-elsewhere".into())
}

async fn outsider(c: &Context) -> anyhow::Result<String> {
    let (_alice, _bob, id) = ring(c, "out", Media::Audio).await?;
    let mut mallory = c.client("outm", "m1").await?;
    let reply = mallory.request(ClientMessage::CallAccept { call_id: id, media: Media::Audio }).await?;
    let code = error_code(&reply);
    ensure!(
        matches!(code, Some(ErrorCode::NotParticipant | ErrorCode::CallNotFound)),
        "expected not_participant, got {reply:?}"
    );
    Ok(format!("{}", code.unwrap_or(ErrorCode::Internal)))
}

async fn unknown_user(c: &Context) -> anyhow::Result<String> {
    let mut alice = c.client("lonely", "a1").await?;
    let reply = alice
        .request(ClientMessage::CallInvite {
            call_id: call_id(),
            to: c.user("nobody-here").into(),
            media: Media::Audio,
            conversation: None,
        })
        .await?;
    ensure!(error_code(&reply) == Some(ErrorCode::UserNotFound), "expected user_not_found, got {reply:?}");
    Ok("user_not_found".into())
}

async fn echo(c: &Context) -> anyhow::Result<String> {
    let mut alice = c.client("echoer", "a1").await?;
    let id = call_id();
    let started = std::time::Instant::now();
    alice
        .request(ClientMessage::CallInvite {
            call_id: id.clone(),
            to: ECHO_USER.into(),
            media: Media::Audio,
            conversation: None,
        })
        .await?;
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::CallAccepted { .. }).then_some(())).await?;
    let answered = started.elapsed();
    alice.request(ClientMessage::CallEnd { call_id: id, failure: None, reconnect_timeout: false }).await?;
    Ok(format!("answered in {:.1} ms", answered.as_secs_f64() * 1000.0))
}
