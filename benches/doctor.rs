//! `cargo bench --bench doctor`: how long a whole `calldock doctor` takes with every check on,
//! on virtual devices (issue 4's benchmark; SPEC §6 asks for under 10 s).
//!
//! The devices: a private PulseAudio server with two null sinks (tests/support/pulse.rs); the
//! microphone is the monitor of one sink that speech is played into, the speaker is the other
//! sink (whose monitor nobody listens to, so no echo path is measured), the camera is the moving
//! test pattern, and the network check runs against the embedded reference server on loopback.
//! A second run takes the microphone from a WAV file (support's replay of a customer's
//! recording), which skips the PulseAudio stream start-up.
//!
//! Each run prints the total and every check's share. For scale (not run here: both need the
//! internet and a real browser): test.webrtc.org takes over a minute, Twilio's network and device
//! diagnostics 10–25 s.

// The bench uses part of the tests' PulseAudio fixture.
#[allow(dead_code)]
#[path = "../tests/support/pulse.rs"]
mod pulse;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pulse::VirtualPulse;

fn calldock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calldock"))
}

fn speech(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("speech.wav");
    let mut file = calldock_audio::wav::WavSpeaker::create(&path).expect("a WAV file");
    file.write(&calldock_audio::pipeline::test_signal::speech_like(15.0)).expect("written");
    file.finish().expect("finished");
    path
}

fn run(label: &str, pulse: &VirtualPulse, mic: &str) {
    let mut command = calldock();
    pulse.apply(&mut command);
    command.args(["doctor", "--json", "--mic", mic, "--speaker", "pulseaudio:vspk", "--camera", "pattern"]);
    let started = Instant::now();
    let out = command.output().expect("calldock doctor runs");
    let wall = started.elapsed().as_secs_f64();
    let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(report) => report,
        Err(e) => panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)),
    };
    println!("\n{label}");
    println!("   {:<8} {:<7} summary", "check", "verdict");
    for check in report["checks"].as_array().into_iter().flatten() {
        let summary = check["summary"].as_str().unwrap_or_default();
        let short: String = summary.chars().take(100).collect();
        println!(
            "   {:<8} {:<7} {short}",
            check["check"].as_str().unwrap_or("?"),
            check["verdict"].as_str().unwrap_or("?")
        );
    }
    let reported = report["duration_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    println!(
        "   total: {reported:.2} s by the report, {wall:.2} s for the whole process (goal: under 10 s); exit code {}",
        out.status.code().unwrap_or(-1)
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let speech = speech(dir.path());
    let pulse = VirtualPulse::start(&["vmic", "vspk"]);
    println!("calldock doctor, every check, virtual devices on this machine");
    let mut player = pulse.play("vmic", &speech);
    run("1. microphone: PulseAudio null sink monitor hearing speech", &pulse, "pulseaudio:vmic.monitor");
    let _ = player.kill();
    let _ = player.wait();
    run("2. microphone: the same speech from a WAV file", &pulse, speech.to_str().expect("UTF-8 path"));
}
