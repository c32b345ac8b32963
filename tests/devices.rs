//! Calls through real sound devices: cpal on a private PulseAudio server with null sinks
//! (tests/support/pulse.rs). Audio is played into the sinks a microphone listens to and
//! recorded from the sinks a speaker plays into, outside calldock, by PulseAudio's own tools.

mod support;

use std::time::{Duration, Instant};

use support::lines::LineProcess;
use support::pulse::{Recording, VirtualPulse, level_between};

/// The calls here run in real time on real (virtual) devices: one at a time, so that on a
/// 2-core machine they do not starve each other's 10 ms deadlines.
static ONE_CALL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_call_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
use support::{ServerProcess, calldock, speak};

/// One `calldock` process on the private PulseAudio server, talking to the test server.
fn party(name: &str, pulse: &VirtualPulse, server: &ServerProcess, args: &[&str]) -> LineProcess {
    let mut command = calldock();
    pulse.apply(&mut command);
    if let Ok(filter) = std::env::var("CALLDOCK_TEST_LOG") {
        command.env("CALLDOCK_LOG", filter);
    }
    command.args(args).args(["--server", &server.base]);
    LineProcess::start(name, command)
}

/// Seconds from the start of a recording to an instant.
fn at(recording_started: Instant, instant: Instant) -> f64 {
    instant.saturating_duration_since(recording_started).as_secs_f64()
}

/// Two processes in a call, each with a real (PulseAudio) microphone and speaker. Speech is
/// played into each microphone's sink; what each speaker plays is recorded and compared with
/// what the other side's microphone heard, recorded at the same time, which also gives the
/// mouth-to-ear delay through devices, pipeline and network.
#[test]
fn speech_crosses_a_call_between_real_devices() {
    let _alone = one_call_at_a_time();
    let pulse = VirtualPulse::start(&["alice_mic", "alice_spk", "bob_mic", "bob_spk"]);
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let (alice_says, _) = speak(dir.path(), "alice.wav", "Hello Bob, this is Alice on a real microphone.");
    let (bob_says, _) = speak(dir.path(), "bob.wav", "Hi Alice, your voice comes through my speaker clearly.");
    let record = |sink: &str| pulse.record(sink, &dir.path().join(format!("{sink}.raw")));
    let (alice_mouth, bob_ear, bob_mouth, alice_ear) =
        (record("alice_mic"), record("bob_spk"), record("bob_mic"), record("alice_spk"));

    let device = |d: &str| format!("pulseaudio:{d}");
    let (bob_mic, bob_spk, alice_mic, alice_spk) =
        (device("bob_mic.monitor"), device("bob_spk"), device("alice_mic.monitor"), device("alice_spk"));
    let mut bob = party(
        "bob",
        &pulse,
        &server,
        &[
            "answer",
            "--user",
            "bob",
            "--mic",
            &bob_mic,
            "--speaker",
            &bob_spk,
            "--bind",
            "127.0.0.1:0",
            "--no-processing",
        ],
    );
    bob.wait_for("waiting for calls", Duration::from_secs(10));
    let mut alice = party(
        "alice",
        &pulse,
        &server,
        &[
            "call",
            "bob",
            "--user",
            "alice",
            "--mic",
            &alice_mic,
            "--speaker",
            &alice_spk,
            "--bind",
            "127.0.0.1:0",
            "--duration",
            "6",
            "--no-processing",
        ],
    );
    alice.wait_for("connected", Duration::from_secs(10));
    bob.wait_for("connected", Duration::from_secs(5));
    // Speech starts once both sides' PulseAudio streams run: played at "connected", the first
    // half second correlated at 0.66–0.86 against 0.95–1.0 for the rest.
    std::thread::sleep(Duration::from_secs(1));
    let mut players = [pulse.play("alice_mic", &alice_says), pulse.play("bob_mic", &bob_says)];
    let (alice_code, alice_log) = alice.finish(Duration::from_secs(15));
    let (bob_code, bob_log) = bob.finish(Duration::from_secs(10));
    assert_eq!(alice_code, 0, "{alice_log:#?}");
    assert_eq!(bob_code, 0, "{bob_log:#?}");
    for p in &mut players {
        let _ = p.wait();
    }

    let compare = |mouth: Recording, ear: Recording, who: &str| {
        let (said, heard) = (mouth.stop(), ear.stop());
        let ear_late_ms = heard.start.saturating_duration_since(said.start).as_secs_f64() * 1000.0
            - said.start.saturating_duration_since(heard.start).as_secs_f64() * 1000.0;
        let (mut said, mut heard) = (said.samples, heard.samples);
        // Compared up to 1 s after the last speech: after that the microphone is silent and the
        // speaker plays the call-ended tone, which is not speech that crossed the call and only
        // dilutes the correlation (measured ~0.87 with it, and 0.77 once on a loaded machine).
        let ten_ms = calldock_audio::FRAME_10MS;
        let last_speech = said.chunks(ten_ms).rposition(|c| calldock_media::level::rms_dbfs(c) > -50.0).unwrap_or(0);
        let end = ((last_speech + 1) * ten_ms + 48_000).min(said.len());
        said.truncate(end);
        heard.truncate(end);
        let profile = |v: &[f32]| {
            v.chunks(24_000).map(|c| format!("{:.0}", calldock_media::level::rms_dbfs(c))).collect::<Vec<_>>().join(" ")
        };
        println!("{who}: microphone dBFS per 0.5 s: {}", profile(&said));
        println!("{who}: speaker dBFS per 0.5 s:    {}", profile(&heard));
        if let Ok(dir) = std::env::var("CALLDOCK_KEEP_AUDIO") {
            let bytes = |v: &[f32]| v.iter().flat_map(|s| ((s * 32767.0) as i16).to_le_bytes()).collect::<Vec<u8>>();
            std::fs::write(format!("{dir}/{who}-mouth.raw"), bytes(&said)).unwrap();
            std::fs::write(format!("{dir}/{who}-ear.raw"), bytes(&heard)).unwrap();
        }
        assert!(level_between(&said, 0.0, 60.0) > -40.0, "{who}: nothing was played into the microphone");
        let (delay, _) = calldock_media::analysis::delay_ms(&said, &heard, 48_000, 1000).expect("audio to compare");
        // The delay through real devices moves during the call (the jitter buffer adapts,
        // PulseAudio's latency settles) by up to ~50 ms: each half second is compared at its own
        // delay, within 100 ms of the whole call's.
        let ncc =
            calldock_media::analysis::drifting_ncc(&said, &heard, 48_000, delay, 500, 100).expect("speech to compare");
        let mouth_to_ear = delay + ear_late_ms;
        println!("{who}: ncc {ncc:.3}, mouth-to-ear {mouth_to_ear:.0} ms through real devices");
        assert!(ncc >= 0.8, "{who}: ncc {ncc}");
        assert!((0.0..500.0).contains(&mouth_to_ear), "{who}: mouth-to-ear {mouth_to_ear} ms");
    };
    compare(alice_mouth, bob_ear, "alice → bob");
    compare(bob_mouth, alice_ear, "bob → alice");
}

/// One call, steered from standard input as support would: the speaker switched mid-call,
/// the far end muted and unmuted, the speaker unplugged (the call falls back to the default
/// speaker and says so) and plugged back in (the call returns to it), and the far end's
/// microphone switched from a file to a device. The call never drops.
#[test]
fn speaker_switch_mute_unplug_and_replug_keep_the_call() {
    let _alone = one_call_at_a_time();
    let mut pulse = VirtualPulse::start(&["spk_a", "spk_b", "talk"]);
    pulse.pactl(&["set-default-sink", "spk_a"]);
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    // Alice talks the whole call: speech-like audio from a file, no processing to keep its level.
    let talk = dir.path().join("talk.wav");
    let mut file = calldock_audio::wav::WavSpeaker::create(&talk).unwrap();
    file.write(&calldock_audio::pipeline::test_signal::speech_like(40.0)).unwrap();
    file.finish().unwrap();
    let spk_a = pulse.record("spk_a", &dir.path().join("a.raw"));
    let spk_b = pulse.record("spk_b", &dir.path().join("b.raw"));

    let mut bob = party(
        "bob",
        &pulse,
        &server,
        &["answer", "--user", "bob", "--mic", "silence", "--speaker", "pulseaudio:spk_a", "--bind", "127.0.0.1:0"],
    );
    bob.wait_for("waiting for calls", Duration::from_secs(10));
    let mut alice = party(
        "alice",
        &pulse,
        &server,
        &["call", "bob", "--user", "alice", "--mic", talk.to_str().unwrap(), "--speaker", "null"]
            .into_iter()
            .chain(["--bind", "127.0.0.1:0", "--no-processing"])
            .collect::<Vec<_>>(),
    );
    alice.wait_for("connected", Duration::from_secs(10));
    bob.wait_for("connected", Duration::from_secs(5));
    let connected = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));

    let switched = Instant::now();
    bob.send("speaker pulseaudio:spk_b");
    bob.wait_for("speaker: pulseaudio:spk_b", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));

    let muted = Instant::now();
    alice.send("mute");
    alice.wait_for("microphone muted", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let unmuted = Instant::now();
    alice.send("unmute");
    alice.wait_for("microphone on", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));

    let mic_switched = Instant::now();
    alice.send("mic pulseaudio:talk.monitor");
    alice.wait_for("microphone: pulseaudio:talk.monitor", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1200));
    let talking = Instant::now();
    // From now on alice talks into the device: the rest of the test hears this.
    let mut player = pulse.play("talk", &talk);
    std::thread::sleep(Duration::from_millis(1500));

    let unplugged = Instant::now();
    pulse.remove_sink("spk_b");
    let fallback = bob.wait_for("now using the default", Duration::from_secs(5));
    let fell_back = Instant::now();
    assert!(fallback.contains("pulseaudio:spk_b") && fallback.contains("default, pulseaudio:spk_a"), "{fallback}");
    std::thread::sleep(Duration::from_millis(1500));

    let replugged = Instant::now();
    let b = spk_b.stop(); // its sink is gone; record the new one
    pulse.add_sink("spk_b");
    let spk_b_again = pulse.record("spk_b", &dir.path().join("b2.raw"));
    let back = bob.wait_for("is back", Duration::from_secs(6));
    let returned = Instant::now();
    assert!(back.contains("pulseaudio:spk_b"), "{back}");
    std::thread::sleep(Duration::from_millis(2000));
    let end = Instant::now();
    alice.send("hangup");
    let (alice_code, alice_log) = alice.finish(Duration::from_secs(10));
    let (bob_code, bob_log) = bob.finish(Duration::from_secs(10));
    let _ = player.kill();
    let _ = player.wait();
    assert_eq!(alice_code, 0, "{alice_log:#?}");
    assert_eq!(bob_code, 0, "{bob_log:#?}");
    assert_eq!(bob_log.iter().filter(|l| l.starts_with("ended")).count(), 1, "one call, never dropped: {bob_log:#?}");

    let (a, b_again) = (spk_a.stop(), spk_b_again.stop());
    let (a_started, b_started) = (a.start, b.start);
    let (a, b, b_again) = (a.samples, b.samples, b_again.samples);
    let loud = -45.0;
    let quiet = -70.0;
    let window = |samples: &[f32], started: Instant, from: Instant, to: Instant| {
        level_between(samples, at(started, from) + 0.5, at(started, to) - 0.1)
    };
    // A new sink's recording starts unreliably (PulseAudio warms it up): only its last second,
    // well after the call came back to it, is judged.
    let last_second = |samples: &[f32]| level_between(samples, samples.len() as f64 / 48_000.0 - 1.0, 1e9);
    let phases = [
        ("before the switch, on A", window(&a, a_started, connected, switched), true),
        ("after the switch, A", window(&a, a_started, switched, muted), false),
        ("after the switch, on B", window(&b, b_started, switched, muted), true),
        ("alice muted, B", window(&b, b_started, muted, unmuted), false),
        ("alice unmuted, on B", window(&b, b_started, unmuted, mic_switched), true),
        ("alice on a silent device microphone, B", window(&b, b_started, mic_switched, talking), false),
        ("alice talking into the device microphone, on B", window(&b, b_started, talking, unplugged), true),
        ("B unplugged, back on A", window(&a, a_started, fell_back, replugged), true),
        ("B plugged back in, A", window(&a, a_started, returned, end), false),
        ("B plugged back in, on B", last_second(&b_again), true),
    ];
    for (phase, level, should_hear) in phases {
        println!("{phase}: {level:.1} dBFS");
        if should_hear {
            assert!(level > loud, "{phase}: {level:.1} dBFS, expected speech");
        } else {
            assert!(level < quiet, "{phase}: {level:.1} dBFS, expected silence");
        }
    }
}

/// A device that is not there is refused before any call is placed, with what to do.
#[test]
fn a_missing_device_is_a_usage_error_naming_the_fix() {
    let pulse = VirtualPulse::start(&["only_sink"]);
    let mut command = calldock();
    pulse.apply(&mut command);
    let out = command
        .args(["call", "echo", "--user", "alice", "--server", "http://127.0.0.1:9"])
        .args(["--mic", "pulseaudio:no_such_mic.monitor", "--speaker", "null"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no microphone named pulseaudio:no_such_mic.monitor"), "{stderr}");
    assert!(stderr.contains("`calldock devices` lists the ones present"), "{stderr}");

    let mut command = calldock();
    pulse.apply(&mut command);
    let listed = command.args(["devices", "--json"]).output().unwrap();
    let devices: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON device list");
    let ids: Vec<&str> = devices.as_array().unwrap().iter().filter_map(|d| d["id"].as_str()).collect();
    assert!(ids.contains(&"pulseaudio:only_sink") && ids.contains(&"pulseaudio:only_sink.monitor"), "{ids:?}");
}

/// Hot-plug as a person sees it: `calldock devices --watch` on a private PulseAudio server says
/// when a device is plugged in (a null sink and its monitor appear), when the default moves to
/// it, and when it is unplugged again.
#[test]
fn devices_watch_reports_plugging_a_new_default_and_unplugging() {
    let mut pulse = VirtualPulse::start(&["vspk"]);
    let mut command = calldock();
    pulse.apply(&mut command);
    command.args(["devices", "--watch", "--json", "--interval-ms", "200"]);
    let mut watch = LineProcess::start("devices --watch", command);
    // The list comes first, as pretty JSON; the sink already there is in it.
    watch.wait_for("\"pulseaudio:vspk\"", Duration::from_secs(10));
    // Only what changes after the first reading is reported: wait for that reading.
    std::thread::sleep(Duration::from_millis(600));

    pulse.add_sink("hotplug");
    let event = |line: &str| serde_json::from_str::<serde_json::Value>(line).expect("one JSON object per line");
    // Inputs are reported before outputs: the monitor source, then the sink.
    let monitor = event(&watch.wait_for("\"pulseaudio:hotplug.monitor\"", Duration::from_secs(5)));
    assert_eq!((&monitor["event"], &monitor["direction"]), (&"added".into(), &"input".into()), "{monitor}");
    let added = event(&watch.wait_for("\"pulseaudio:hotplug\"", Duration::from_secs(5)));
    assert_eq!((&added["event"], &added["direction"]), (&"added".into(), &"output".into()), "{added}");

    // PulseAudio moves the default source along to the new sink's monitor when the default
    // source was a monitor: both defaults change, inputs reported first.
    pulse.pactl(&["set-default-sink", "hotplug"]);
    let moved = event(&watch.wait_for("default_changed", Duration::from_secs(5)));
    assert_eq!((&moved["direction"], &moved["to"]), (&"input".into(), &"pulseaudio:hotplug.monitor".into()), "{moved}");
    let moved = event(&watch.wait_for("default_changed", Duration::from_secs(5)));
    assert_eq!((&moved["direction"], &moved["to"]), (&"output".into(), &"pulseaudio:hotplug".into()), "{moved}");

    pulse.remove_sink("hotplug");
    let removed = event(&watch.wait_for("\"removed\"", Duration::from_secs(5)));
    assert!(removed["id"].as_str().unwrap().starts_with("pulseaudio:hotplug"), "{removed}");
    // Both defaults leave the unplugged sink and its monitor.
    let back = event(&watch.wait_for("default_changed", Duration::from_secs(5)));
    assert_eq!((&back["direction"], &back["from"]), (&"input".into(), &"pulseaudio:hotplug.monitor".into()), "{back}");
    let back = event(&watch.wait_for("default_changed", Duration::from_secs(5)));
    assert_eq!((&back["direction"], &back["from"]), (&"output".into(), &"pulseaudio:hotplug".into()), "{back}");
    assert_eq!(back["to"], "pulseaudio:vspk", "{back}");
}
