//! The reference server as a real process on loopback, driven by real WebSocket clients.

mod support;

use std::time::{Duration, Instant};

use calldock_protocol::{
    CallId, CallPhase, ClientMessage, DeclineReason, EndReason, ErrorCode, History, Media, ParticipantState,
    ServerMessage,
};
use serde_json::json;
use support::{Frame, RawClient, ServerProcess, WAIT, random_call_id};
use tokio_tungstenite::tungstenite::Message;

async fn client(server: &ServerProcess, user: &str, device: &str) -> RawClient {
    RawClient::connect_as(&server.base, user, device).await.expect("sign in")
}

async fn invite(from: &mut RawClient, to: &str) -> CallId {
    let id = random_call_id();
    let reply = from
        .request(ClientMessage::CallInvite {
            call_id: id.clone(),
            to: to.into(),
            media: Media::Audio,
            conversation: None,
        })
        .await
        .expect("invite answered");
    assert!(
        matches!(&reply, ServerMessage::CallCreated { call, existing: false, .. } if call.call_id == id),
        "{reply:?}"
    );
    id
}

async fn invited(client: &mut RawClient) -> CallId {
    client
        .event_where(WAIT, |e| match e {
            ServerMessage::CallInvite { call } => Some(call.call_id.clone()),
            _ => None,
        })
        .await
        .expect("invite arrives")
}

async fn ended(client: &mut RawClient) -> (EndReason, Option<String>) {
    client
        .event_where(WAIT, |e| match e {
            ServerMessage::CallEnded { reason, by_name, .. } => Some((*reason, by_name.clone())),
            _ => None,
        })
        .await
        .expect("call.ended arrives")
}

fn error_code(reply: &ServerMessage) -> Option<ErrorCode> {
    match reply {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

async fn ok(client: &mut RawClient, message: ClientMessage) {
    let reply = client.request(message).await.expect("reply");
    assert!(matches!(reply, ServerMessage::Ok { .. }), "expected ok, got {reply:?}");
}

async fn history(server: &ServerProcess, user: &str) -> History {
    let session = calldock_conformance::raw::login(&server.base, user, "history").await.expect("login");
    reqwest::Client::new()
        .get(format!("{}/v1/history", server.base))
        .bearer_auth(session.token)
        .send()
        .await
        .expect("history answered")
        .json()
        .await
        .expect("history is JSON")
}

#[tokio::test]
async fn accepted_call_relays_media_signaling_and_ends_on_hangup() {
    let server = ServerProcess::start(&[]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut bob = client(&server, "bob", "b1").await;
    let id = invite(&mut alice, "bob").await;
    assert_eq!(invited(&mut bob).await, id);
    ok(&mut bob, ClientMessage::CallRinging { call_id: id.clone() }).await;
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::CallRinging { .. }).then_some(())).await.unwrap();
    ok(&mut bob, ClientMessage::CallAccept { call_id: id.clone(), media: Media::Audio }).await;
    let device = alice
        .event_where(WAIT, |e| match e {
            ServerMessage::CallAccepted { device, .. } => Some(device.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(device.as_str(), "b1");
    ok(
        &mut alice,
        ClientMessage::Sdp {
            call_id: id.clone(),
            to: None,
            kind: calldock_protocol::SdpKind::Offer,
            sdp: "offer".into(),
        },
    )
    .await;
    let (from, sdp) = bob
        .event_where(WAIT, |e| match e {
            ServerMessage::Sdp { from, sdp, .. } => Some((from.clone(), sdp.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!((from.as_str(), sdp.as_str()), ("alice", "offer"));
    ok(&mut bob, ClientMessage::CallEnd { call_id: id, failure: None, reconnect_timeout: false }).await;
    let (reason, by_name) = ended(&mut alice).await;
    assert_eq!(reason, EndReason::Hangup);
    assert_eq!(by_name.as_deref(), Some("Bob"));
}

#[tokio::test]
async fn declined_call_reaches_caller_with_decliner_name() {
    let server = ServerProcess::start(&[]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut bob = client(&server, "bob", "b1").await;
    let id = invite(&mut alice, "bob").await;
    invited(&mut bob).await;
    ok(&mut bob, ClientMessage::CallDecline { call_id: id, reason: DeclineReason::Declined }).await;
    assert_eq!(ended(&mut alice).await, (EndReason::Declined, Some("Bob".into())));
}

#[tokio::test]
async fn canceled_call_stops_ringing_on_every_device() {
    let server = ServerProcess::start(&[]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut phone = client(&server, "bob", "phone").await;
    let mut laptop = client(&server, "bob", "laptop").await;
    let id = invite(&mut alice, "bob").await;
    invited(&mut phone).await;
    invited(&mut laptop).await;
    ok(&mut alice, ClientMessage::CallCancel { call_id: id }).await;
    assert_eq!(ended(&mut phone).await.0, EndReason::Canceled);
    assert_eq!(ended(&mut laptop).await.0, EndReason::Canceled);
    let bob = history(&server, "bob").await;
    assert!(bob.calls[0].missed, "a call canceled before anyone answered shows as missed for the callee");
}

#[tokio::test]
async fn unanswered_call_is_missed_after_the_ring_timeout() {
    let server = ServerProcess::start(&["--ring-timeout-ms", "1200"]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut bob = client(&server, "bob", "b1").await;
    let started = Instant::now();
    invite(&mut alice, "bob").await;
    invited(&mut bob).await;
    assert_eq!(ended(&mut bob).await.0, EndReason::Missed);
    assert_eq!(ended(&mut alice).await.0, EndReason::Missed);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1200), "ended after {waited:?}, before the timeout");
    let entry = &history(&server, "bob").await.calls[0];
    assert!(entry.missed);
    assert_eq!(entry.call.end_reason, Some(EndReason::Missed));
}

#[tokio::test]
async fn busy_callee_gets_a_stacked_call_and_declines_it_as_busy() {
    let server = ServerProcess::start(&[]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut bob = client(&server, "bob", "b1").await;
    let mut carol = client(&server, "carol", "c1").await;
    let first = invite(&mut alice, "bob").await;
    invited(&mut bob).await;
    ok(&mut bob, ClientMessage::CallAccept { call_id: first.clone(), media: Media::Audio }).await;
    let second = invite(&mut carol, "bob").await;
    assert_eq!(invited(&mut bob).await, second, "a busy callee still hears the second call");
    ok(&mut bob, ClientMessage::CallDecline { call_id: second, reason: DeclineReason::Busy }).await;
    assert_eq!(ended(&mut carol).await, (EndReason::Busy, Some("Bob".into())));
    // The first call is untouched.
    ok(
        &mut alice,
        ClientMessage::Sdp { call_id: first, to: None, kind: calldock_protocol::SdpKind::Offer, sdp: "x".into() },
    )
    .await;
}

#[tokio::test]
async fn first_device_to_accept_wins_the_race() {
    let server = ServerProcess::start(&[]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut phone = client(&server, "bob", "phone").await;
    let mut laptop = client(&server, "bob", "laptop").await;
    let id = invite(&mut alice, "bob").await;
    invited(&mut phone).await;
    invited(&mut laptop).await;
    // Both accept at the same moment.
    let accept = || ClientMessage::CallAccept { call_id: id.clone(), media: Media::Audio };
    let (a, b) = tokio::join!(phone.request(accept()), laptop.request(accept()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let winners = [&a, &b].iter().filter(|r| matches!(r, ServerMessage::Ok { .. })).count();
    let losers = [&a, &b].iter().filter(|r| error_code(r) == Some(ErrorCode::InvalidState)).count();
    assert_eq!((winners, losers), (1, 1), "{a:?} / {b:?}");
    let loser = if matches!(a, ServerMessage::Ok { .. }) { &mut laptop } else { &mut phone };
    assert_eq!(ended(loser).await.0, EndReason::AcceptedElsewhere);
    alice.event_where(WAIT, |e| matches!(e, ServerMessage::CallAccepted { .. }).then_some(())).await.unwrap();
    alice.no_call_event(Duration::from_millis(300)).await.expect("exactly one call.accepted reaches the caller");
}

#[tokio::test]
async fn second_start_in_a_conversation_returns_the_active_call() {
    let server = ServerProcess::start(&[]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut bob = client(&server, "bob", "b1").await;
    let id = invite(&mut alice, "bob").await;
    invited(&mut bob).await;
    let again = alice
        .request(ClientMessage::CallInvite {
            call_id: random_call_id(),
            to: "bob".into(),
            media: Media::Audio,
            conversation: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(&again, ServerMessage::CallCreated { call, existing: true, .. } if call.call_id == id),
        "{again:?}"
    );
    bob.no_call_event(Duration::from_millis(300)).await.expect("bob does not ring twice");
    // A retry with the same call id (a lost reply) returns the same call too.
    let retry = alice
        .request(ClientMessage::CallInvite {
            call_id: id.clone(),
            to: "bob".into(),
            media: Media::Audio,
            conversation: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(&retry, ServerMessage::CallCreated { call, existing: true, .. } if call.call_id == id),
        "{retry:?}"
    );
}

#[tokio::test]
async fn ringing_call_survives_an_orderly_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::db_path(dir.path());
    let mut server = ServerProcess::start(&["--db", db.to_str().unwrap()]);
    let mut alice = client(&server, "alice", "a1").await;
    let _bob = client(&server, "bob", "b1").await;
    let id = invite(&mut alice, "bob").await;
    server.terminate();
    server.restart();
    let mut bob = client(&server, "bob", "b1").await;
    assert_eq!(invited(&mut bob).await, id, "a reconnecting callee rings again for the restored call");
    let mut alice = client(&server, "alice", "a1").await;
    ok(&mut bob, ClientMessage::CallAccept { call_id: id.clone(), media: Media::Audio }).await;
    let accepted = alice
        .event_where(WAIT, |e| match e {
            ServerMessage::CallAccepted { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(accepted, id);
}

#[tokio::test]
async fn kill_9_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::db_path(dir.path());
    let mut server = ServerProcess::start(&["--db", db.to_str().unwrap()]);
    let mut alice = client(&server, "alice", "a1").await;
    let mut bob = client(&server, "bob", "b1").await;
    let mut canceled = Vec::new();
    for _ in 0..10 {
        let id = invite(&mut alice, "bob").await;
        ok(&mut alice, ClientMessage::CallCancel { call_id: id.clone() }).await;
        canceled.push(id);
    }
    let answered = invite(&mut alice, "bob").await;
    ok(&mut bob, ClientMessage::CallAccept { call_id: answered.clone(), media: Media::Audio }).await;
    server.kill9();
    server.restart();
    let calls = history(&server, "alice").await.calls;
    for id in &canceled {
        let entry = calls.iter().find(|e| &e.call.call_id == id).expect("every acknowledged call is stored");
        assert_eq!(entry.call.end_reason, Some(EndReason::Canceled));
    }
    let entry = calls.iter().find(|e| e.call.call_id == answered).expect("the answered call is stored");
    assert_eq!(entry.call.phase, CallPhase::Active);
    assert_eq!(entry.call.participants[0].state, ParticipantState::Joined);
    assert!(entry.call.answered_at.is_some());
}

#[tokio::test]
async fn expired_token_is_refused_and_expiry_closes_the_socket() {
    let server = ServerProcess::start(&[]);
    let session = calldock_conformance::raw::login_with_ttl(&server.base, "alice", "a1", Some(1)).await.unwrap();
    let mut live = RawClient::connect(&server.base).await.unwrap();
    live.hello().await.unwrap();
    live.auth(&session.token).await.unwrap();
    // Attached with a token that runs out: the server says why, then closes with 4001.
    let said = live.frame(Duration::from_secs(3)).await.unwrap();
    assert!(matches!(&said, Frame::Json(v) if v["code"] == "token_expired"), "{said:?}");
    assert_eq!(live.frame(WAIT).await.unwrap(), Frame::Closed(4001));
    // The same token on a new connection is refused with a code the client can act on.
    let mut late = RawClient::connect(&server.base).await.unwrap();
    late.hello().await.unwrap();
    let reply = late.request(ClientMessage::Auth { token: session.token }).await.unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::TokenExpired));
    let ServerMessage::Error { message, .. } = reply else { unreachable!() };
    assert!(message.contains("log in again"), "{message}");
}

#[tokio::test]
async fn version_mismatch_names_both_versions_and_closes() {
    let server = ServerProcess::start(&[]);
    let mut client = RawClient::connect(&server.base).await.unwrap();
    let reply =
        client.request_json(json!({"id": "h", "type": "hello", "protocol": "2.0", "agent": "future"})).await.unwrap();
    assert_eq!(reply["code"], "version_mismatch");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.contains("server speaks Calldock protocol 1.0") && message.contains("client speaks 2.0"),
        "{message}"
    );
    assert_eq!(client.frame(WAIT).await.unwrap(), Frame::Closed(4002));
}

/// A bystander pair in a call keeps working while another client sends everything wrong.
#[tokio::test]
async fn bad_input_gets_errors_and_never_hurts_a_bystander() {
    let server = ServerProcess::start(&[]);
    let mut carol = client(&server, "carol", "c1").await;
    let mut dave = client(&server, "dave", "d1").await;
    let call = invite(&mut carol, "dave").await;
    invited(&mut dave).await;
    ok(&mut dave, ClientMessage::CallAccept { call_id: call.clone(), media: Media::Audio }).await;

    async fn bystander_still_works(carol: &mut RawClient, dave: &mut RawClient, call: &CallId) {
        ok(
            carol,
            ClientMessage::Ice {
                call_id: call.clone(),
                to: None,
                candidate: "c".into(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
        )
        .await;
        dave.event_where(WAIT, |e| matches!(e, ServerMessage::Ice { .. }).then_some(()))
            .await
            .expect("relay still works");
    }

    let mut mallory = client(&server, "mallory", "m1").await;
    let cases: [(&str, String); 4] = [
        ("bad_json", "{\"id\":\"1\",".into()),
        ("unknown_type", json!({"id": "2", "type": "call.hijack", "call_id": call.as_str()}).to_string()),
        ("bad_request", json!({"id": "3", "type": "call.accept", "call_id": 7}).to_string()),
        ("frame_too_large", json!({"id": "4", "type": "ping", "pad": "x".repeat(70 * 1024)}).to_string()),
    ];
    for (code, text) in cases {
        mallory.send_text(text).await.unwrap();
        let reply = mallory.frame(WAIT).await.unwrap();
        assert!(matches!(&reply, Frame::Json(v) if v["code"] == code), "{code}: {reply:?}");
        bystander_still_works(&mut carol, &mut dave, &call).await;
    }
    let reply =
        mallory.request(ClientMessage::CallAccept { call_id: call.clone(), media: Media::Audio }).await.unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::CallNotFound), "a call one is not in looks like no call at all");
    let reply = mallory
        .request(ClientMessage::CallEnd { call_id: call.clone(), failure: None, reconnect_timeout: false })
        .await
        .unwrap();
    assert_eq!(error_code(&reply), Some(ErrorCode::CallNotFound));
    mallory.send_message(Message::Binary(vec![0u8; 16].into())).await.unwrap();
    let reply = mallory.frame(WAIT).await.unwrap();
    assert!(matches!(&reply, Frame::Json(v) if v["code"] == "bad_json"), "{reply:?}");
    bystander_still_works(&mut carol, &mut dave, &call).await;

    // A frame far over the limit closes only that connection.
    let mut big = client(&server, "mallory", "m2").await;
    big.send_text("x".repeat(300 * 1024)).await.unwrap();
    assert_eq!(big.frame(WAIT).await.unwrap(), Frame::Closed(1009));
    bystander_still_works(&mut carol, &mut dave, &call).await;

    // A flood: rate-limited, then disconnected; the bystander's pings stay fast meanwhile.
    let mut flood = client(&server, "mallory", "m3").await;
    let flooding = tokio::spawn(async move {
        let mut rate_limited = 0;
        for i in 0..3000 {
            if flood.send_text(json!({"id": format!("f{i}"), "type": "ping"}).to_string()).await.is_err() {
                break;
            }
        }
        let closed = loop {
            match flood.frame(WAIT).await {
                Ok(Frame::Json(v)) if v["code"] == "rate_limited" => rate_limited += 1,
                Ok(Frame::Json(_)) => {}
                Ok(Frame::Closed(code)) => break Some(code),
                Err(_) => break None,
            }
        };
        (rate_limited, closed)
    });
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let start = Instant::now();
        let reply = carol.request(ClientMessage::Ping {}).await.unwrap();
        assert!(matches!(reply, ServerMessage::Pong { .. }));
        worst = worst.max(start.elapsed());
    }
    let (rate_limited, closed) = flooding.await.unwrap();
    println!("flood: {rate_limited} rate_limited replies, closed with {closed:?}; bystander worst ping {worst:?}");
    assert!(rate_limited > 0, "the flood was never rate-limited");
    assert_eq!(closed, Some(1008), "a client that keeps flooding is disconnected");
    bystander_still_works(&mut carol, &mut dave, &call).await;
}

#[tokio::test]
async fn turn_credentials_follow_the_turn_rest_scheme() {
    let server = ServerProcess::start(&[
        "--turn-secret",
        "s3cret",
        "--turn-uri",
        "turn:127.0.0.1:3478",
        "--stun-uri",
        "stun:127.0.0.1:3478",
    ]);
    let session = calldock_conformance::raw::login(&server.base, "alice", "a1").await.unwrap();
    let http = reqwest::Client::new();
    let creds: calldock_protocol::TurnCredentials = http
        .get(format!("{}/v1/turn", server.base))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (expiry, user) = creds.username.split_once(':').expect("username is expiry:user");
    assert_eq!(user, "alice");
    let expiry: u64 = expiry.parse().expect("expiry is Unix seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(expiry > now && expiry <= now + creds.ttl_seconds + 5, "expiry {expiry} vs now {now}");
    assert_eq!(creds.credential, calldock_server::turn::password("s3cret", &creds.username));
    assert_eq!(creds.uris, ["turn:127.0.0.1:3478", "stun:127.0.0.1:3478"]);
    // Without a valid bearer token: refused with a code.
    let refused = http.get(format!("{}/v1/turn", server.base)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: calldock_protocol::RestError = refused.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::TokenInvalid);
}
