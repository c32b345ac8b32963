//! The engine against a real reference server in this process, on loopback: token refresh,
//! reconnect after a restart, resync of calls, and the errors a person sees.

use std::net::SocketAddr;
use std::time::Duration;

use calldock_engine::call::{CallEvent, CallState, EndReason};
use calldock_engine::{Engine, EngineConfig, EngineError, EngineEvent, SignalingState};
use calldock_protocol::{Media, ServerMessage};
use calldock_server::{RunningServer, ServerConfig};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn start(config: ServerConfig) -> RunningServer {
    calldock_server::start(config).await.expect("server starts")
}

fn engine_config(server: &str, user: &str) -> EngineConfig {
    let mut config = EngineConfig::new(server, user);
    config.device = Some(format!("{user}-test").as_str().into());
    config.reconnect_initial = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(400);
    config
}

/// Waits for the first event `pick` accepts, failing after [`WAIT`].
async fn until<T>(events: &mut mpsc::Receiver<EngineEvent>, mut pick: impl FnMut(&EngineEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the expected event arrives in time")
            .expect("the engine is running");
        if let Some(t) = pick(&event) {
            return t;
        }
    }
}

async fn restart_on(addr: SocketAddr, config: ServerConfig) -> RunningServer {
    let mut last = None;
    for _ in 0..50 {
        match calldock_server::start(ServerConfig { listen: addr, ..config.clone() }).await {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not restart on {addr}: {last:?}");
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires_and_the_session_lives_on() {
    let server = start(ServerConfig { token_ttl_ms: 1500, ..ServerConfig::default() }).await;
    let (engine, mut events) = Engine::connect(engine_config(&server.base_url(), "alice")).await.unwrap();
    let first = until(&mut events, |e| match e {
        EngineEvent::Signaling(SignalingState::Connected { expires_at, .. }) => Some(*expires_at),
        _ => None,
    })
    .await;
    let renewed = until(&mut events, |e| match e {
        EngineEvent::TokenRefreshed { expires_at } => Some(*expires_at),
        _ => None,
    })
    .await;
    assert!(renewed > first, "the refreshed token lives longer");
    // Past the first token's expiry, the same connection still carries calls.
    tokio::time::sleep(Duration::from_millis(first.0.saturating_sub(now_ms()) + 500)).await;
    let call = engine.call("echo".into(), Media::Audio).await.unwrap();
    until(&mut events, |e| match e {
        EngineEvent::Call(CallEvent::StateChanged { call_id, state: CallState::Connected }) if *call_id == call => {
            Some(())
        }
        EngineEvent::Signaling(SignalingState::Reconnecting { reason, .. }) => panic!("connection dropped: {reason}"),
        _ => None,
    })
    .await;
    server.shutdown().await;
}

/// Waits until the server has stored the call: the engine reports a call ringing out as soon
/// as it sends the invite, and a test that restarts the server must not race that invite.
async fn until_stored(base: &str, user: &str, call: &calldock_protocol::CallId) {
    let session = calldock_conformance::raw::login(base, user, "observer").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let history: calldock_protocol::History = reqwest::Client::new()
            .get(format!("{base}/v1/history"))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if history.calls.iter().any(|e| &e.call.call_id == call) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the server never stored call {call}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// alice calls bob and bob answers as soon as it rings; returns the call.
async fn call_and_answer(
    alice: &Engine,
    bob: &Engine,
    bob_events: &mut mpsc::Receiver<EngineEvent>,
) -> calldock_protocol::CallId {
    let call = alice.call("bob".into(), Media::Audio).await.unwrap();
    let incoming = until(bob_events, |e| match e {
        EngineEvent::Call(CallEvent::Incoming { call_id, .. }) => Some(call_id.clone()),
        _ => None,
    })
    .await;
    bob.accept(incoming, Media::Audio).await.unwrap();
    call
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn reconnects_after_a_server_restart_and_the_ringing_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { db: Some(dir.path().join("calls.db")), ..ServerConfig::default() };
    let server = start(config.clone()).await;
    let addr = server.addr;
    let base = server.base_url();
    // bob exists, but is offline while alice calls.
    calldock_conformance::raw::login(&base, "bob", "bob-phone").await.unwrap();
    let (alice, mut events) = Engine::connect(engine_config(&base, "alice")).await.unwrap();
    let call = alice.call("bob".into(), Media::Audio).await.unwrap();
    until_stored(&base, "alice", &call).await;

    server.shutdown().await;
    until(&mut events, |e| matches!(e, EngineEvent::Signaling(SignalingState::Reconnecting { .. })).then_some(()))
        .await;
    let server = restart_on(addr, config).await;
    until(&mut events, |e| matches!(e, EngineEvent::Signaling(SignalingState::Connected { .. })).then_some(())).await;

    let mut bob = calldock_conformance::RawClient::connect_as(&base, "bob", "bob-phone").await.unwrap();
    let invited = bob
        .event_where(WAIT, |e| match e {
            ServerMessage::CallInvite { call } => Some(call.call_id.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(invited, call, "the call rings on after the restart");
    bob.request(calldock_protocol::ClientMessage::CallAccept { call_id: call.clone(), media: Media::Audio })
        .await
        .unwrap();
    until(&mut events, |e| match e {
        EngineEvent::Call(CallEvent::StateChanged { call_id, state: CallState::Connected }) if *call_id == call => {
            Some(())
        }
        EngineEvent::Call(CallEvent::Ended { reason, .. }) => panic!("call ended: {reason:?}"),
        _ => None,
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn call_that_ended_during_the_outage_ends_with_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        ServerConfig { db: Some(dir.path().join("calls.db")), ring_timeout_ms: 800, ..ServerConfig::default() };
    let server = start(config.clone()).await;
    let addr = server.addr;
    let base = server.base_url();
    calldock_conformance::raw::login(&base, "bob", "bob-phone").await.unwrap();
    let (alice, mut events) = Engine::connect(engine_config(&base, "alice")).await.unwrap();
    let call = alice.call("bob".into(), Media::Audio).await.unwrap();
    until_stored(&base, "alice", &call).await;
    server.shutdown().await;
    // The ring timeout passes while the server is down.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let server = restart_on(addr, config).await;
    let reason = until(&mut events, |e| match e {
        EngineEvent::Call(CallEvent::Ended { call_id, reason, .. }) if *call_id == call => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Missed, "resync tells the real reason instead of leaving a ghost");
    let calls = alice.calls().await.unwrap();
    assert!(calls.iter().all(|c| c.state.is_ended()), "no ghost calls: {calls:?}");
    server.shutdown().await;
}

/// A server of a future major version: login works, the WebSocket refuses our hello.
async fn future_server() -> SocketAddr {
    use axum::Json;
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/v1/login",
            post(|| async {
                Json(serde_json::json!({"token": "t", "user": "alice", "display_name": "Alice", "device": "d", "expires_at": u64::MAX / 2}))
            }),
        )
        .route("/v1/info", get(|| async { Json(serde_json::json!({"protocol": "2.3", "server": "future/9"})) }))
        .route(
            "/v1/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    if let Some(Ok(Message::Text(_hello))) = socket.recv().await {
                        let reply = serde_json::json!({"type": "error", "re": "e-hello", "code": "version_mismatch",
                            "message": "the server speaks Calldock protocol 2.3", "retryable": false});
                        let _ = socket.send(Message::Text(reply.to_string().into())).await;
                    }
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn version_mismatch_names_both_versions() {
    let addr = future_server().await;
    let err = Engine::connect(engine_config(&format!("http://{addr}"), "alice")).await.err().expect("connect fails");
    assert_eq!(err.code(), "version_mismatch");
    let text = err.to_string();
    assert!(text.contains("server speaks Calldock protocol 2.3") && text.contains("client speaks 1.0"), "{text}");
    assert!(!err.transient(), "reconnecting cannot fix a version mismatch");
}

#[tokio::test]
async fn unreachable_server_is_reported_with_what_to_check() {
    let err = Engine::connect(engine_config("http://127.0.0.1:9", "alice")).await.err().expect("connect fails");
    assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("check the address and that the server is running"), "{err}");
    assert!(err.transient());
}

#[tokio::test]
async fn glare_through_the_server_ends_in_one_connected_call() {
    let server = start(ServerConfig::default()).await;
    let base = server.base_url();
    let (alice, mut alice_events) = Engine::connect(engine_config(&base, "alice")).await.unwrap();
    let (bob, mut bob_events) = Engine::connect(engine_config(&base, "bob")).await.unwrap();
    // Both press call at the same moment.
    let (a, b) = tokio::join!(alice.call("bob".into(), Media::Audio), bob.call("alice".into(), Media::Audio));
    let (a, b) = (a.unwrap(), b.unwrap());
    let winner = calldock_protocol::glare_winner(&a, &b).clone();
    for events in [&mut alice_events, &mut bob_events] {
        let connected = until(events, |e| match e {
            EngineEvent::Call(CallEvent::StateChanged { call_id, state: CallState::Connected }) => {
                Some(call_id.clone())
            }
            EngineEvent::Call(CallEvent::Ended { call_id, reason, .. }) if *call_id == winner => {
                panic!("winner ended: {reason:?}")
            }
            _ => None,
        })
        .await;
        assert_eq!(connected, winner, "both ends connect in the call with the smaller id");
    }
    for engine in [&alice, &bob] {
        let live: Vec<_> = engine.calls().await.unwrap().into_iter().filter(|c| !c.state.is_ended()).collect();
        assert_eq!(live.len(), 1, "exactly one live call each: {live:?}");
    }
    server.shutdown().await;
}

/// Two engines with real media: WAV files as microphones and speakers, webrtc peers on
/// loopback, the reference server relaying SDP and ICE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_from_each_microphone_reaches_the_other_speaker() {
    use calldock_audio::pipeline::test_signal;
    use calldock_audio::wav::{WavSpeaker, read_mono};
    use calldock_engine::media::{MediaConfig, Microphone, Speaker};

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, samples: &[f32]| {
        let path = dir.path().join(name);
        let mut w = WavSpeaker::create(&path).unwrap();
        w.write(samples).unwrap();
        w.finish().unwrap();
        path
    };
    let alice_says = test_signal::speech_like(3.0);
    let bob_says: Vec<f32> = test_signal::speech_like(5.0)[96_000..].to_vec();
    let alice_mic = write("alice-mic.wav", &alice_says);
    let bob_mic = write("bob-mic.wav", &bob_says);
    let alice_ear = dir.path().join("alice-speaker.wav");
    let bob_ear = dir.path().join("bob-speaker.wav");
    let media = |mic: &std::path::Path, ear: &std::path::Path| MediaConfig::Audio {
        microphone: Microphone::Wav(mic.to_owned()),
        speaker: Speaker::Wav(ear.to_owned()),
        peer: calldock_peer::PeerSettings::loopback(),
        processing: calldock_audio::processing::ProcessingSwitches::OFF,
        camera: calldock_engine::media::CameraSource::Pattern,
    };

    let server = start(ServerConfig::default()).await;
    let base = server.base_url();
    let mut alice_config = engine_config(&base, "alice");
    alice_config.media = media(&alice_mic, &alice_ear);
    let mut bob_config = engine_config(&base, "bob");
    bob_config.media = media(&bob_mic, &bob_ear);
    let (alice, mut alice_events) = Engine::connect(alice_config).await.unwrap();
    let (bob, mut bob_events) = Engine::connect(bob_config).await.unwrap();

    let call = call_and_answer(&alice, &bob, &mut bob_events).await;
    for events in [&mut alice_events, &mut bob_events] {
        until(events, |e| match e {
            EngineEvent::Call(CallEvent::StateChanged { state: CallState::Connected, .. }) => Some(()),
            EngineEvent::Call(CallEvent::Ended { reason, .. }) => panic!("call ended: {reason:?}"),
            _ => None,
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(3600)).await;
    alice.hangup(call).await.unwrap();
    for events in [&mut alice_events, &mut bob_events] {
        until(events, |e| matches!(e, EngineEvent::Call(CallEvent::Ended { .. })).then_some(())).await;
    }
    // The sessions finish their files as they stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (said, heard, who) in [(&alice_says, &bob_ear, "alice → bob"), (&bob_says, &alice_ear, "bob → alice")] {
        let (samples, rate) = read_mono(heard).unwrap();
        assert_eq!(rate, 48_000);
        let (delay, ncc) = calldock_media::analysis::delay_ms(said, &samples, 48_000, 2000).expect("audio to compare");
        println!("{who}: ncc {ncc:.3}, speaker file lags the microphone file by {delay:.0} ms");
        assert!(ncc >= 0.8, "{who}: ncc {ncc}");
    }
    server.shutdown().await;
}

/// Muting keeps the call and the track: the other side hears a stretch of silence, then the
/// speech again after unmuting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_sends_silence_and_unmute_brings_speech_back() {
    use calldock_audio::pipeline::test_signal;
    use calldock_audio::wav::{WavSpeaker, read_mono};
    use calldock_engine::media::{MediaConfig, Microphone, Speaker};

    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("alice.wav");
    let mut w = WavSpeaker::create(&mic).unwrap();
    w.write(&test_signal::speech_like(8.0)).unwrap();
    w.finish().unwrap();
    let ear = dir.path().join("bob-heard.wav");
    let media = |microphone, speaker| MediaConfig::Audio {
        microphone,
        speaker,
        peer: calldock_peer::PeerSettings::loopback(),
        processing: calldock_audio::processing::ProcessingSwitches::OFF,
        camera: calldock_engine::media::CameraSource::Pattern,
    };
    let server = start(ServerConfig::default()).await;
    let base = server.base_url();
    let mut alice_config = engine_config(&base, "alice");
    alice_config.media = media(Microphone::Wav(mic.clone()), Speaker::Null);
    let mut bob_config = engine_config(&base, "bob");
    bob_config.media = media(Microphone::Silence, Speaker::Wav(ear.clone()));
    let (alice, mut alice_events) = Engine::connect(alice_config).await.unwrap();
    let (bob, mut bob_events) = Engine::connect(bob_config).await.unwrap();
    let call = call_and_answer(&alice, &bob, &mut bob_events).await;
    until(&mut alice_events, |e| {
        matches!(e, EngineEvent::Call(CallEvent::StateChanged { state: CallState::Connected, .. })).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alice.set_muted(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    alice.set_muted(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let still = alice.calls().await.unwrap();
    assert!(still.iter().any(|c| c.id == call && c.state == CallState::Connected), "the call went on: {still:?}");
    alice.hangup(call).await.unwrap();
    until(&mut bob_events, |e| matches!(e, EngineEvent::Call(CallEvent::Ended { .. })).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (heard, _) = read_mono(&ear).unwrap();
    // Levels per 100 ms.
    let levels: Vec<f64> = heard.chunks(4800).map(calldock_media::level::rms_dbfs).collect();
    let first_speech = levels.iter().position(|&l| l > -40.0).expect("speech arrived before muting");
    let mut longest_silence = (0, 0); // (length, start)
    let mut run = 0;
    for (i, &l) in levels.iter().enumerate().skip(first_speech) {
        run = if l < -55.0 { run + 1 } else { 0 };
        if run > longest_silence.0 {
            longest_silence = (run, i + 1 - run);
        }
    }
    println!("levels (dBFS per 100 ms): {:?}", levels.iter().map(|l| *l as i32).collect::<Vec<_>>());
    assert!(longest_silence.0 >= 13, "a muted stretch of ≥ 1.3 s: longest {:?}", longest_silence);
    let after = longest_silence.1 + longest_silence.0;
    assert!(levels[after..].iter().any(|&l| l > -40.0), "speech again after unmuting");
    server.shutdown().await;
}

#[tokio::test]
async fn a_saved_token_resumes_the_session_and_a_bad_one_falls_back_to_signing_in() {
    let server = start(ServerConfig::default()).await;
    let (first, _events) = Engine::connect(engine_config(&server.base_url(), "alice")).await.unwrap();
    let saved = first.session_token();
    first.close().await;

    let mut resume = engine_config(&server.base_url(), "alice");
    resume.saved_token = Some(saved.clone());
    let (resumed, mut events) = Engine::connect(resume).await.unwrap();
    assert_eq!(resumed.user().as_str(), "alice");
    assert_ne!(resumed.session_token(), saved, "the saved token was renewed, not reused");
    let call = resumed.call("echo".into(), Media::Audio).await.unwrap();
    until(&mut events, |e| match e {
        EngineEvent::Call(CallEvent::StateChanged { call_id, state: CallState::Connected }) if *call_id == call => {
            Some(())
        }
        _ => None,
    })
    .await;
    resumed.close().await;

    // A token for another user, and one that is not a token at all: both sign in afresh.
    for token in [saved, "not-a-token".to_string()] {
        let mut config = engine_config(&server.base_url(), "bob");
        config.saved_token = Some(token);
        let (engine, _events) = Engine::connect(config).await.expect("signs in afresh");
        assert_eq!(engine.user().as_str(), "bob");
        engine.close().await;
    }
    server.shutdown().await;
}

/// The next presence event for `user`.
async fn presence_of(events: &mut mpsc::Receiver<EngineEvent>, user: &str) -> calldock_protocol::PresenceStatus {
    until(events, |e| match e {
        EngineEvent::Presence { user: u, status } if u.as_str() == user => Some(*status),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn watched_presence_arrives_at_once_follows_changes_and_survives_a_reconnect() {
    use calldock_protocol::PresenceStatus::{Busy, Offline, Online};
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { db: Some(dir.path().join("calls.db")), ..ServerConfig::default() };
    let server = start(config.clone()).await;
    let (addr, base) = (server.addr, server.base_url());
    calldock_conformance::raw::login(&base, "bob", "bob-phone").await.unwrap();
    let (alice, mut events) = Engine::connect(engine_config(&base, "alice")).await.unwrap();

    alice.watch_presence(vec!["bob".into()]).await.unwrap();
    assert_eq!(presence_of(&mut events, "bob").await, Offline, "the status when the watch starts");
    let mut bob = calldock_conformance::RawClient::connect_as(&base, "bob", "bob-phone").await.unwrap();
    assert_eq!(presence_of(&mut events, "bob").await, Online);
    // Watching again asks nothing new: the next event is a real change.
    alice.watch_presence(vec!["bob".into()]).await.unwrap();
    let (carol, _carol_events) = Engine::connect(engine_config(&base, "carol")).await.unwrap();
    let call = carol.call("bob".into(), Media::Audio).await.unwrap();
    bob.request(calldock_protocol::ClientMessage::CallAccept { call_id: call, media: Media::Audio }).await.unwrap();
    assert_eq!(presence_of(&mut events, "bob").await, Busy, "in a call");

    // After a restart the engine watches again by itself, and hears the status anew.
    server.shutdown().await;
    drop(bob);
    until(&mut events, |e| matches!(e, EngineEvent::Signaling(SignalingState::Reconnecting { .. })).then_some(()))
        .await;
    let server = restart_on(addr, config).await;
    until(&mut events, |e| matches!(e, EngineEvent::Signaling(SignalingState::Connected { .. })).then_some(())).await;
    let status = presence_of(&mut events, "bob").await;
    assert!(matches!(status, Offline | Online), "bob's status after the restart: {status:?}");
    server.shutdown().await;
}
