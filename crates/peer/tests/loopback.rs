//! Two real webrtc peers on 127.0.0.1, signaling relayed in-process as the server would, with
//! Calldock's audio pipeline on both ends.

use std::time::{Duration, Instant};

use bytes::Bytes;
use calldock_audio::FRAME_20MS;
use calldock_audio::codec::OpusSettings;
use calldock_audio::pipeline::{ReceivePipeline, SendPipeline, test_signal};
use calldock_audio::processing::ProcessingSwitches;
use calldock_media::jitter::JitterConfig;
use calldock_peer::{Peer, PeerEvent, PeerSettings, Signal};
use calldock_protocol::FailureKind;
use tokio::sync::mpsc;

/// Relays signals between the two peers (answering offers) until both are connected or one
/// fails; returns what each side saw, with the time to connect. The answerer's candidates are
/// collected into `answerer_candidates`.
async fn connect(
    offerer: &Peer,
    offerer_events: &mut mpsc::Receiver<PeerEvent>,
    answerer: &Peer,
    answerer_events: &mut mpsc::Receiver<PeerEvent>,
    tamper_answer: bool,
    within: Duration,
    answerer_candidates: &mut Vec<String>,
) -> (Option<PeerEvent>, Option<PeerEvent>, Duration) {
    let started = Instant::now();
    let Signal::Offer(offer) = offerer.offer(false).await.unwrap() else { unreachable!("offer() returns an offer") };
    let Some(Signal::Answer(mut answer)) = answerer.handle_signal(Signal::Offer(offer)).await.unwrap() else {
        panic!("no answer")
    };
    if tamper_answer {
        // Flip one hex digit of the certificate fingerprint.
        let at = answer.find("a=fingerprint:sha-256 ").expect("answer has a fingerprint") + 22;
        let digit = answer.as_bytes()[at];
        let swapped = if digit == b'A' { "B" } else { "A" };
        answer.replace_range(at..at + 1, swapped);
    }
    answerer_candidates.extend(answer.lines().filter_map(|l| l.strip_prefix("a=")).map(str::to_owned));
    offerer.handle_signal(Signal::Answer(answer)).await.unwrap();
    let (mut a, mut b) = (None, None);
    let deadline = tokio::time::Instant::now() + within;
    while a.is_none() || b.is_none() {
        tokio::select! {
            e = offerer_events.recv() => match e {
                Some(PeerEvent::Signal(s)) => { answerer.handle_signal(s).await.unwrap(); }
                Some(e @ (PeerEvent::Connected | PeerEvent::Failed(_))) => { a.get_or_insert(e); }
                _ => {}
            },
            e = answerer_events.recv() => match e {
                Some(PeerEvent::Signal(s)) => {
                    if let Signal::Candidate(c) = &s {
                        answerer_candidates.push(c.candidate.clone());
                    }
                    offerer.handle_signal(s).await.unwrap();
                }
                Some(e @ (PeerEvent::Connected | PeerEvent::Failed(_))) => { b.get_or_insert(e); }
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    (a, b, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_crosses_a_real_peer_connection_both_ways() {
    let settings = PeerSettings::loopback();
    let (alice, mut alice_events) = Peer::new(&settings).await.unwrap();
    let (bob, mut bob_events) = Peer::new(&settings).await.unwrap();
    let (a, b, took) =
        connect(&alice, &mut alice_events, &bob, &mut bob_events, false, Duration::from_secs(10), &mut Vec::new())
            .await;
    assert_eq!((a, b), (Some(PeerEvent::Connected), Some(PeerEvent::Connected)));
    println!("offer → both connected: {:.1} ms", took.as_secs_f64() * 1000.0);

    // Alice speaks (paced in real time, as a microphone would); Bob's side decodes.
    let speech = test_signal::speech_like(3.0);
    let mut send = SendPipeline::new(48_000, ProcessingSwitches::OFF, OpusSettings::default()).unwrap();
    let mut packets = Vec::new();
    send.push_capture(&speech, 0, |p| packets.push(Bytes::copy_from_slice(p))).unwrap();
    let mut receive = ReceivePipeline::new(JitterConfig { min_delay_ms: 60, ..JitterConfig::default() }).unwrap();
    let mut heard = Vec::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0;
    let total_ticks = packets.len() + 20;
    for t in 0..total_ticks {
        tick.tick().await;
        if let Some(p) = packets.get(t) {
            // Bob talks back at the same time, so both directions carry audio.
            alice.send_audio(p.clone()).await.unwrap();
            bob.send_audio(p.clone()).await.unwrap();
            sent += 1;
        }
        while let Ok(e) = bob_events.try_recv() {
            if let PeerEvent::Audio(rtp) = e {
                receive.push_rtp(start.elapsed().as_millis() as u64, rtp.sequence, rtp.timestamp, &rtp.payload);
            }
        }
        heard.extend_from_slice(receive.next_frame());
    }
    let mut alice_heard = 0;
    while let Ok(e) = alice_events.try_recv() {
        if matches!(e, PeerEvent::Audio(_)) {
            alice_heard += 1;
        }
    }
    assert!(alice_heard > sent * 9 / 10, "alice received {alice_heard} of {sent} packets from bob");
    let (delay, ncc) = calldock_media::analysis::delay_ms(&speech, &heard, 48_000, 500).unwrap();
    println!("speech through webrtc: ncc {ncc:.3}, delay {delay:.0} ms (jitter buffer included)");
    assert!(ncc >= 0.8, "ncc {ncc}");
    assert_eq!(heard.len(), total_ticks * FRAME_20MS);

    let stats = alice.stats().await;
    assert!(stats.bytes_sent > 0 && stats.bytes_received > 0, "{stats:?}");
    assert_eq!(stats.local_candidate_type.as_deref(), Some("host"), "{stats:?}");
    assert!(stats.codec.as_deref().is_some_and(|c| c.to_lowercase().contains("opus")), "{stats:?}");
    assert!(stats.rtt_ms.is_some_and(|r| r < 50.0), "{stats:?}");
    // Bob's RTCP reports on what he received from alice, about once a second, none lost.
    assert!(stats.remote.count >= 2, "alice heard bob's reception reports: {stats:?}");
    assert_eq!(stats.remote.fraction_lost, 0.0, "{stats:?}");

    // An ICE restart keeps the call: renegotiate and reconnect.
    let Signal::Offer(offer) = alice.offer(true).await.unwrap() else { unreachable!() };
    let Some(answer) = bob.handle_signal(Signal::Offer(offer)).await.unwrap() else { panic!("no answer") };
    alice.handle_signal(answer).await.unwrap();
    let before = bob.stats().await.packets_received;
    for _ in 0..25 {
        tick.tick().await;
        alice.send_audio(packets[0].clone()).await.unwrap();
        while let Ok(e) = alice_events.try_recv() {
            if let PeerEvent::Signal(s) = e {
                bob.handle_signal(s).await.unwrap();
            }
        }
        while let Ok(e) = bob_events.try_recv() {
            if let PeerEvent::Signal(s) = e {
                alice.handle_signal(s).await.unwrap();
            }
        }
    }
    let after = bob.stats().await.packets_received;
    assert!(after > before + 15, "audio flows after the ICE restart: {before} → {after}");
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_dtls_fingerprint_fails_with_dtls() {
    let settings = PeerSettings { dtls_timeout: Duration::from_secs(2), ..PeerSettings::loopback() };
    let (alice, mut alice_events) = Peer::new(&settings).await.unwrap();
    let (bob, mut bob_events) = Peer::new(&settings).await.unwrap();
    let (a, _, took) =
        connect(&alice, &mut alice_events, &bob, &mut bob_events, true, Duration::from_secs(8), &mut Vec::new()).await;
    assert_eq!(a, Some(PeerEvent::Failed(FailureKind::Dtls)), "never secure with a forged fingerprint");
    assert!(took < Duration::from_secs(5), "detected in {took:?}");
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn garbage_remote_descriptions_are_errors() {
    let (peer, _events) = Peer::new(&PeerSettings::loopback()).await.unwrap();
    assert!(peer.handle_signal(Signal::Offer("not sdp at all".into())).await.is_err());
    assert!(peer.handle_signal(Signal::Answer(String::new())).await.is_err());
    // A junk candidate before any description is buffered, not fatal.
    let junk = calldock_peer::Candidate { candidate: "candidate:garbage".into(), sdp_mid: None, sdp_mline_index: None };
    assert!(peer.handle_signal(Signal::Candidate(junk)).await.is_ok());
    peer.close().await;
}

/// Datagrams from anyone to a connected peer's port — junk, and junk shaped like RTP, STUN and
/// DTLS — are dropped: no panic, the call stays up, and the real audio keeps arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_call() {
    let settings = PeerSettings::loopback();
    let (alice, mut alice_events) = Peer::new(&settings).await.unwrap();
    let (bob, mut bob_events) = Peer::new(&settings).await.unwrap();
    let mut bob_candidates = Vec::new();
    let (a, b, _) =
        connect(&alice, &mut alice_events, &bob, &mut bob_events, false, Duration::from_secs(10), &mut bob_candidates)
            .await;
    assert_eq!((a, b), (Some(PeerEvent::Connected), Some(PeerEvent::Connected)));
    // "candidate:… 1 udp PRIORITY 127.0.0.1 PORT typ host"
    let targets: Vec<std::net::SocketAddr> = bob_candidates
        .iter()
        .filter_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            (f.len() > 5 && f[2].eq_ignore_ascii_case("udp")).then(|| format!("{}:{}", f[4], f[5]).parse().ok())?
        })
        .collect();
    assert!(!targets.is_empty(), "bob's candidates: {bob_candidates:?}");

    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let packet = Bytes::from_static(&[0xfc, 0xff, 0xfe]); // an Opus packet (a silent CELT frame)
    let before = bob.stats().await.packets_received;
    let mut seed = 0x9e37_79b9u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent_junk = 0;
    for _ in 0..50 {
        tick.tick().await;
        alice.send_audio(packet.clone()).await.unwrap();
        for _ in 0..40 {
            let len = 1 + (next() as usize % 1200);
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Look like RTP v2, STUN, DTLS, or nothing in particular.
            datagram[0] = [0x80, 0x00, 0x01, 0x16, 0x17, datagram[0]][next() as usize % 6];
            for target in &targets {
                if junk.send_to(&datagram, target).await.is_ok() {
                    sent_junk += 1;
                }
            }
        }
        while let Ok(e) = bob_events.try_recv() {
            assert!(!matches!(e, PeerEvent::Failed(_) | PeerEvent::Disconnected), "bob: {e:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = bob.stats().await.packets_received - before;
    println!("{sent_junk} junk datagrams sent; bob received {received} of 50 audio packets");
    assert!(received >= 45, "audio kept arriving: {received} of 50");
    while let Ok(e) = bob_events.try_recv() {
        assert!(!matches!(e, PeerEvent::Failed(_) | PeerEvent::Disconnected), "bob: {e:?}");
    }
    alice.close().await;
    bob.close().await;
}

/// Alice and Bob in a video call on loopback, connected; their event channels (to keep open).
async fn connected_video_peers() -> (Peer, mpsc::Receiver<PeerEvent>, Peer, mpsc::Receiver<PeerEvent>) {
    let settings = PeerSettings { video: true, ..PeerSettings::loopback() };
    let (alice, mut alice_events) = Peer::new(&settings).await.unwrap();
    let (bob, mut bob_events) = Peer::new(&settings).await.unwrap();
    let (a, b, _) =
        connect(&alice, &mut alice_events, &bob, &mut bob_events, false, Duration::from_secs(10), &mut Vec::new())
            .await;
    assert_eq!((a, b), (Some(PeerEvent::Connected), Some(PeerEvent::Connected)));
    (alice, alice_events, bob, bob_events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_crosses_a_real_peer_connection_and_key_frames_are_asked_for() {
    use calldock_video::test_pattern::{counter, pattern};
    use calldock_video::{EncoderSettings, Vp8Decoder, Vp8Encoder};

    let (alice, _alice_events, bob, mut bob_events) = connected_video_peers().await;

    // Alice sends two seconds of 640×480 at 30 frames a second, paced in real time.
    let sender = tokio::spawn(async move {
        let mut encoder = Vp8Encoder::new(EncoderSettings::default());
        let mut keyframes = 0;
        let mut ticker = tokio::time::interval(Duration::from_millis(33));
        for index in 0..60 {
            ticker.tick().await;
            if alice.take_keyframe_request() {
                encoder.request_keyframe();
            }
            if let Some(frame) = encoder.encode(&pattern(640, 480, index)).unwrap() {
                keyframes += usize::from(frame.keyframe);
                alice.send_video(Bytes::from(frame.data), Duration::from_millis(33)).await.unwrap();
            }
            if index == 40 {
                // By now Bob has asked for one (below): it must have reached Alice.
                assert!(keyframes >= 2, "Bob's key frame request was not acted on");
            }
        }
        (alice, keyframes)
    });

    let mut decoder = Vp8Decoder::new().unwrap();
    let mut shown = Vec::new();
    let mut asked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while shown.len() < 55 {
        let event = tokio::select! {
            e = bob_events.recv() => e,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let Some(PeerEvent::Video(frame)) = event else { continue };
        assert!(!frame.after_loss, "nothing is lost on loopback");
        let picture = decoder.decode(&frame.data).unwrap().expect("each frame shows");
        let index = counter(&picture);
        // Clearly this frame (a wrong one would be near 10 dB); a requested key frame is coarser.
        assert!(picture.luma_psnr(&pattern(640, 480, index)).unwrap() > 20.0);
        shown.push(index);
        if index == 20 && !asked {
            bob.request_keyframe().await;
            asked = true;
        }
    }
    let (alice, keyframes) = sender.await.unwrap();
    assert!(shown.len() >= 55, "only {} of 60 frames arrived", shown.len());
    assert!(shown.windows(2).all(|w| w[0] < w[1]), "frames out of order: {shown:?}");
    assert!(keyframes >= 2, "the first key frame and the requested one; got {keyframes}");
    let stats = bob.stats().await;
    assert_eq!(stats.codec.as_deref(), Some("audio/opus"), "audio figures stay the audio's: {stats:?}");
    assert!(stats.bytes_received > 100_000, "two seconds of video: {stats:?}");
    alice.close().await;
    bob.close().await;
}

/// A forwarder's limit (REMB) holds the sender's estimate under it, and a later, higher one
/// lets it go back up: the echo bot keeps a caller within what it can send back this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receivers_bitrate_limit_holds_the_senders_estimate_under_it() {
    use calldock_video::test_pattern::pattern;
    use calldock_video::{EncoderSettings, Vp8Encoder};

    let (alice, _alice_events, bob, mut bob_events) = connected_video_peers().await;
    let alice = std::sync::Arc::new(alice);
    let sending = alice.clone();
    let sender = tokio::spawn(async move {
        let mut encoder = Vp8Encoder::new(EncoderSettings::default());
        let mut ticker = tokio::time::interval(Duration::from_millis(33));
        for index in 0..240 {
            ticker.tick().await;
            if let Some(frame) = encoder.encode(&pattern(640, 480, index)).unwrap() {
                sending.send_video(Bytes::from(frame.data), Duration::from_millis(33)).await.unwrap();
            }
        }
    });
    // Bob's events must be drained for the call to go on; his limits go out once Alice's video
    // has arrived (before that he has no stream to name).
    let drain = tokio::spawn(async move {
        while let Some(event) = bob_events.recv().await {
            if matches!(event, PeerEvent::Video(_)) {
                break;
            }
        }
        (bob, bob_events)
    });
    let (bob, mut bob_events) = drain.await.unwrap();
    let drain = tokio::spawn(async move { while bob_events.recv().await.is_some() {} });

    let before = alice.send_estimate_bps().expect("a video call has an estimate");
    assert!(before > 300_000.0, "the estimate starts above the limit to come: {before}");
    bob.limit_incoming(200_000.0).await;
    let estimate_within = |limit: f64, above: bool| {
        let alice = alice.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let estimate = alice.send_estimate_bps().unwrap_or(0.0);
                if (above && estimate > limit) || (!above && estimate <= limit) || Instant::now() > deadline {
                    return estimate;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let held = estimate_within(200_000.0, false).await;
    assert!(held <= 200_000.0, "the estimate stays under Bob's limit: {held}");
    assert_eq!(alice.stats().await.remote.max_bitrate_bps, Some(200_000.0));

    bob.limit_incoming(5_000_000.0).await;
    let freed = estimate_within(200_000.0, true).await;
    assert!(freed > 200_000.0, "a higher limit lets the estimate back up: {freed}");
    assert_eq!(alice.stats().await.remote.max_bitrate_bps, Some(5_000_000.0));

    sender.await.unwrap();
    drain.abort();
    bob.close().await;
    if let Ok(alice) = std::sync::Arc::try_unwrap(alice) {
        alice.close().await;
    }
}
