//! The ringtone (SPEC §7) on a real (virtual) device: `calldock ring` plays into a PulseAudio
//! null sink, and what plays there is recorded from the sink's monitor by PulseAudio's own
//! `parec`, outside calldock (tests/support/pulse.rs).

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::lines::LineProcess;
use support::pulse::{VirtualPulse, level_between};
use support::{ServerProcess, calldock};

/// Seconds from the start of a recording to `at`.
fn offset(start: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(start).as_secs_f64()
}

/// What one `calldock ring` run sounded like on the sink's monitor.
struct Rang {
    /// dBFS from 0.3 s to 1.5 s after calldock said it rings: the first burst, the gap after
    /// it and the start of the second, whatever the device's start-up delay.
    during: f64,
    /// dBFS over the whole time the process said it rang.
    whole: f64,
    /// dBFS from 0.2 s to 1.0 s after the process exited.
    after: f64,
    /// The end of the last 10 ms block above -60 dBFS, relative to calldock saying "stopped"
    /// (printed once the ringer is stopped), seconds.
    sound_ended: Option<f64>,
    /// From "ringing on" to the process exit, seconds.
    rang_for: f64,
}

fn ring(pulse: &VirtualPulse, seconds: &str, volume: &str) -> Rang {
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = pulse.record("ring", &dir.path().join("ring.raw"));
    // parec takes a moment to start delivering.
    std::thread::sleep(Duration::from_millis(300));

    let mut command = calldock();
    pulse.apply(&mut command);
    command.args(["ring", "--device", "pulseaudio:ring", "--seconds", seconds, "--volume", volume]);
    let mut ring = LineProcess::start("calldock ring", command);
    let (ringing_at, first) = ring.wait_for_timed("ringing on", Duration::from_secs(10));
    assert!(first.starts_with("ringing on pulseaudio:ring"), "{first}");
    // Printed once the ringer is stopped, just before the process exits.
    let (stopped_at, _) = ring.wait_for_timed("stopped", Duration::from_secs(10));
    let (code, _) = ring.finish(Duration::from_secs(10));
    let exited_at = Instant::now();
    assert_eq!(code, 0, "calldock ring exits 0");

    // Silence after the process is gone, for long enough to tell.
    std::thread::sleep(Duration::from_millis(1200));
    let heard = recording.stop();
    let recorded = heard.samples.len() as f64 / 48_000.0;
    let ringing = offset(heard.start, ringing_at);
    let exited = offset(heard.start, exited_at);
    let stopped = offset(heard.start, stopped_at);
    assert!(recorded > exited + 1.0, "the recording ({recorded:.2} s) goes on past the exit ({exited:.2} s)");
    let last_sound = (0..heard.samples.len() / 480)
        .rev()
        .find(|&block| level_between(&heard.samples, block as f64 * 0.01, (block + 1) as f64 * 0.01) > -60.0)
        .map(|block| (block + 1) as f64 * 0.01);
    let rang = Rang {
        during: level_between(&heard.samples, ringing + 0.3, ringing + 1.5),
        whole: level_between(&heard.samples, ringing, exited),
        after: level_between(&heard.samples, exited + 0.2, exited + 1.0),
        sound_ended: last_sound.map(|end| end - stopped),
        rang_for: exited_at.duration_since(ringing_at).as_secs_f64(),
    };
    eprintln!(
        "ringtone on pulseaudio:ring at volume {volume}: {:.1} dBFS while ringing (0.3-1.5 s), {:.1} dBFS over the \
         whole ring, {:.1} dBFS after exit; sound ended {} relative to \"stopped\"; rang {:.2} s",
        rang.during,
        rang.whole,
        rang.after,
        rang.sound_ended.map_or("never".into(), |end| format!("{:+.0} ms", end * 1000.0)),
        rang.rang_for,
    );
    rang
}

#[test]
fn the_ringtone_sounds_on_the_chosen_sink_and_stops_when_told() {
    let pulse = VirtualPulse::start(&["ring"]);
    let rang = ring(&pulse, "2", "1.0");
    assert!((1.9..3.5).contains(&rang.rang_for), "rang for {:.2} s, asked for 2 s", rang.rang_for);
    // assets/ringtone.wav: bursts at -12 dBFS RMS.
    assert!(rang.during > -40.0, "the ringtone is heard on the sink's monitor: {:.1} dBFS", rang.during);
    assert!(rang.after < -70.0, "silence once ringing stopped: {:.1} dBFS", rang.after);
    let end = rang.sound_ended.expect("some sound was heard");
    assert!(end <= 0.08, "the sound stopped when calldock stopped ringing (it ended {end:+.2} s from then)");
}

#[test]
fn the_ringer_has_its_own_volume() {
    let pulse = VirtualPulse::start(&["ring"]);
    // 2.5 s: the stop falls in the middle of a burst (0.5 s into the second pass).
    let rang = ring(&pulse, "2.5", "0.25");
    // Stopping cuts the sound off mid-burst: it lasts up to the stop, not a moment beyond.
    let end = rang.sound_ended.expect("some sound was heard");
    assert!((-0.3..=0.08).contains(&end), "the sound ends when the ringer stops ({end:+.3} s from \"stopped\")");
    // A quarter of the amplitude: 12 dB below the -12.9 dBFS heard at full volume.
    assert!((-28.0..-22.0).contains(&rang.during), "at volume 0.25: {:.1} dBFS", rang.during);
    assert!(rang.after < -70.0, "silence once ringing stopped: {:.1} dBFS", rang.after);
}

#[test]
fn a_device_that_is_not_present_is_a_usage_error_pointing_to_calldock_devices() {
    let pulse = VirtualPulse::start(&["ring"]);
    for device in ["pulseaudio:nosuch", "not-a-device"] {
        let mut command = calldock();
        pulse.apply(&mut command);
        let out = command
            .args(["ring", "--device", device, "--seconds", "1"])
            .stdin(Stdio::null())
            .output()
            .expect("calldock runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{device}: {stderr}");
        assert!(stderr.contains(device) && stderr.contains("calldock devices"), "{device}: {stderr}");
    }
}

/// An incoming call rings on the ringer device until it is answered, and the call's own cues
/// play on its speaker: a join sound when it connects and a leave sound when it ends. Both
/// sinks are recorded from their monitors by parec, outside calldock.
#[test]
fn an_incoming_call_rings_until_answered_and_cues_mark_join_and_leave() {
    let pulse = VirtualPulse::start(&["ring", "bob_spk"]);
    let server = ServerProcess::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ringer = pulse.record("ring", &dir.path().join("ring.raw"));
    let speaker = pulse.record("bob_spk", &dir.path().join("speaker.raw"));
    std::thread::sleep(Duration::from_millis(300));

    let mut command = calldock();
    pulse.apply(&mut command);
    command.args(["answer", "--server", &server.base, "--user", "bob", "--json", "--ring-for", "2"]);
    command.args(["--ringer", "pulseaudio:ring", "--mic", "silence", "--speaker", "pulseaudio:bob_spk"]);
    command.args(["--duration", "1.5", "--bind", "127.0.0.1:0"]);
    let mut bob = LineProcess::start("bob", command);
    bob.wait_for("\"ready\"", Duration::from_secs(10));
    let mut command = calldock();
    pulse.apply(&mut command);
    command.args(["call", "bob", "--server", &server.base, "--user", "alice", "--mic", "silence"]);
    command.args(["--speaker", "null", "--bind", "127.0.0.1:0"]);
    let alice = LineProcess::start("alice", command);

    let (incoming_at, _) = bob.wait_for_timed("\"incoming\"", Duration::from_secs(10));
    let (connected_at, _) = bob.wait_for_timed("\"connected\"", Duration::from_secs(10));
    let (ended_at, _) = bob.wait_for_timed("\"ended\"", Duration::from_secs(10));
    let (code, _) = bob.finish(Duration::from_secs(5));
    assert_eq!(code, 0);
    drop(alice);
    std::thread::sleep(Duration::from_millis(800));
    let rang = ringer.stop();
    let heard = speaker.stop();

    let ring_at = |at: Instant| offset(rang.start, at);
    let (incoming, connected) = (ring_at(incoming_at), ring_at(connected_at));
    let ringing = level_between(&rang.samples, incoming + 0.3, incoming + 1.5);
    let after = level_between(&rang.samples, connected + 0.3, rang.samples.len() as f64 / 48_000.0);
    eprintln!(
        "ringer: {ringing:.1} dBFS while the call rang ({:.2} s), {after:.1} dBFS once answered",
        connected - incoming
    );
    assert!(connected - incoming >= 1.9, "bob let it ring 2 s: {:.2} s", connected - incoming);
    assert!(ringing > -40.0, "the ringtone is heard while the call rings: {ringing:.1} dBFS");
    assert!(after < -70.0, "the ringing stops once the call is answered: {after:.1} dBFS");

    let speaker_at = |at: Instant| offset(heard.start, at);
    let (connected, ended) = (speaker_at(connected_at), speaker_at(ended_at));
    let before = level_between(&heard.samples, 0.0, connected - 0.1);
    let join = level_between(&heard.samples, connected - 0.05, connected + 0.5);
    let middle = level_between(&heard.samples, connected + 0.6, ended - 0.1);
    let leave = level_between(&heard.samples, ended - 0.05, ended + 0.6);
    eprintln!(
        "speaker: {before:.1} dBFS before the call, {join:.1} at the join, {middle:.1} in the (silent) call, {leave:.1} at the leave"
    );
    assert!(before < -70.0, "nothing plays on the speaker before the call: {before:.1} dBFS");
    assert!(join > -40.0, "the join sound plays when the call connects: {join:.1} dBFS");
    assert!(middle < -60.0, "the caller sends silence: {middle:.1} dBFS");
    assert!(leave > -40.0, "the leave sound plays when the call ends: {leave:.1} dBFS");
}

/// A caller who gives up while the call rings: the ringing stops at once, the callee says the
/// call was canceled, and the local call log keeps it as a canceled incoming call.
#[test]
fn a_call_canceled_while_ringing_stops_the_ringing_and_is_logged() {
    let pulse = VirtualPulse::start(&["ring"]);
    let server = ServerProcess::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("bob-data");
    let ringer = pulse.record("ring", &dir.path().join("ring.raw"));
    std::thread::sleep(Duration::from_millis(300));

    let mut command = calldock();
    pulse.apply(&mut command);
    command.env("CALLDOCK_DATA_DIR", &data);
    command.args(["answer", "--server", &server.base, "--user", "bob", "--json", "--ring-for", "20"]);
    command.args(["--ringer", "pulseaudio:ring", "--mic", "silence", "--speaker", "null"]);
    let mut bob = LineProcess::start("bob", command);
    bob.wait_for("\"ready\"", Duration::from_secs(10));
    let mut command = calldock();
    command.args(["call", "bob", "--server", &server.base, "--user", "alice", "--mic", "silence", "--speaker", "null"]);
    let _alice = LineProcess::start("alice", command);
    let (incoming_at, _) = bob.wait_for_timed("\"incoming\"", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));

    let hangup = calldock().args(["hangup", "--server", &server.base, "--user", "alice"]).output().unwrap();
    assert!(hangup.status.success(), "{}", String::from_utf8_lossy(&hangup.stderr));
    let (ended_at, ended) = bob.wait_for_timed("\"ended\"", Duration::from_secs(5));
    assert!(ended.contains("\"canceled\""), "{ended}");
    let (code, _) = bob.finish(Duration::from_secs(5));
    assert_eq!(code, 1, "the one call bob waited for was not answered");
    std::thread::sleep(Duration::from_millis(800));
    let rang = ringer.stop();

    let (incoming, ended) = (offset(rang.start, incoming_at), offset(rang.start, ended_at));
    let ringing = level_between(&rang.samples, incoming + 0.3, ended - 0.1);
    let after = level_between(&rang.samples, ended + 0.3, rang.samples.len() as f64 / 48_000.0);
    eprintln!("ringer: {ringing:.1} dBFS while ringing, {after:.1} dBFS after the caller canceled");
    assert!(ringing > -40.0, "{ringing:.1} dBFS");
    assert!(after < -70.0, "the ringing stops when the caller cancels: {after:.1} dBFS");

    let log = std::fs::read_to_string(data.join("calls.jsonl")).expect("bob's call log");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!((&lines[0]["peer"], &lines[0]["end_reason"]), (&"alice".into(), &"canceled".into()), "{log}");
    assert_eq!(lines[0]["direction"], "incoming", "{log}");
}
