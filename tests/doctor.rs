//! `calldock doctor` as QA runs it: the real binary, WAV files standing in for microphones
//! (speech from espeak-ng, silence, clipped and too quiet versions of it), and a real device on
//! a private PulseAudio server. Verdicts and exit codes (0 pass, 1 warn, 2 fail) are checked
//! from the `--json` report.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use calldock_audio::wav::WavSpeaker;
use serde_json::Value;
use support::calldock;
use support::pulse::VirtualPulse;

const RATE: u32 = 48_000;

/// About 12 s of English from espeak-ng: the WAV it wrote (22,050 Hz), and the same at 48 kHz
/// for making louder and quieter versions. Long enough to keep talking while a PulseAudio
/// recording stream takes its first seconds to start.
fn speech(dir: &Path) -> (PathBuf, Vec<f32>) {
    support::speak(
        dir,
        "speech-22k.wav",
        "Hello, this is a microphone test before a call. The quick brown fox jumps over the lazy dog. \
         Please keep talking while the doctor listens, so it can measure the level of your voice.",
    )
}

fn write_wav(dir: &Path, name: &str, samples: &[f32]) -> PathBuf {
    let path = dir.join(name);
    let mut wav = WavSpeaker::create(&path).unwrap();
    wav.write(samples).unwrap();
    wav.finish().unwrap();
    path
}

/// Runs `calldock doctor --only mic,codec --mic MIC --json`; returns the report and exit code.
fn doctor(mic: &str, pulse: Option<&VirtualPulse>) -> (Value, i32) {
    let mut command = calldock();
    command.args(["doctor", "--only", "mic,codec", "--mic", mic, "--json"]);
    if let Some(pulse) = pulse {
        pulse.apply(&mut command);
    }
    let out = command.output().expect("calldock runs");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not a JSON report ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    });
    (report, out.status.code().expect("exited"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("{report:#}"))
}

/// The codec check's verdict depends on how busy this machine is; the exit code is the worst
/// of the microphone's verdict and the codec's.
fn expected_exit(mic_verdict: &str, report: &Value) -> i32 {
    let codec = check(report, "codec");
    let rank = |v: &str| match v {
        "pass" => 0,
        "warn" => 1,
        _ => 2,
    };
    let rtf = codec["figures"]["real_time_factor"].as_f64().unwrap();
    assert!(rtf >= 1.0, "Opus runs faster than real time here: {codec:#}");
    assert_eq!(codec["verdict"], if rtf >= 10.0 { "pass" } else { "warn" }, "{codec:#}");
    rank(mic_verdict).max(rank(codec["verdict"].as_str().unwrap()))
}

#[test]
fn speech_passes() {
    let dir = tempfile::tempdir().unwrap();
    // espeak's own 22,050 Hz file: the check takes any rate.
    let (wav, _) = speech(dir.path());
    let (report, code) = doctor(wav.to_str().unwrap(), None);
    let mic = check(&report, "mic");
    assert_eq!(mic["verdict"], "pass", "{report:#}");
    assert_eq!(mic["remedy"], Value::Null);
    assert_eq!(mic["figures"]["sample_rate"], 22_050);
    assert!(mic["figures"]["sound_seconds"].as_f64().unwrap() >= 2.0, "{mic:#}");
    let level = mic["figures"]["level_dbfs"].as_f64().unwrap();
    assert!((-40.0..-6.0).contains(&level), "{mic:#}");
    assert_eq!(code, expected_exit("pass", &report), "{report:#}");
    assert_eq!(report["exit_code"], code);
    assert_eq!(report["checks"].as_array().unwrap().len(), 2);
}

#[test]
fn a_silent_microphone_fails_with_a_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let wav = write_wav(dir.path(), "silence.wav", &vec![0.0; RATE as usize * 5]);
    let (report, code) = doctor(wav.to_str().unwrap(), None);
    let mic = check(&report, "mic");
    assert_eq!((&mic["verdict"], &mic["code"]), (&Value::from("fail"), &Value::from("mic_silent")), "{mic:#}");
    assert!(mic["remedy"].as_str().unwrap().contains("unmute the microphone"), "{mic:#}");
    assert!(mic["summary"].as_str().unwrap().contains("no sound from the microphone"), "{mic:#}");
    assert_eq!(code, 2);
    assert_eq!(report["verdict"], "fail");
}

#[test]
fn a_clipping_microphone_warns() {
    let dir = tempfile::tempdir().unwrap();
    let clipped: Vec<f32> = speech(dir.path()).1.iter().map(|s| (s * 6.0).clamp(-1.0, 1.0)).collect();
    let wav = write_wav(dir.path(), "clipped.wav", &clipped);
    let (report, code) = doctor(wav.to_str().unwrap(), None);
    let mic = check(&report, "mic");
    assert_eq!((&mic["verdict"], &mic["code"]), (&Value::from("warn"), &Value::from("mic_clipping")), "{mic:#}");
    assert!(mic["figures"]["longest_full_scale_run"].as_u64().unwrap() > 6, "{mic:#}");
    assert!(mic["remedy"].as_str().unwrap().contains("lower its input volume"), "{mic:#}");
    assert_eq!(code, expected_exit("warn", &report));
    assert_eq!(code, 1);
}

#[test]
fn speech_at_minus_62_dbfs_is_too_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let speech = speech(dir.path()).1;
    let level = calldock_doctor::microphone::analyse(&speech, RATE).level_dbfs;
    let gain = 10f32.powf(((-62.0 - level) / 20.0) as f32);
    let quiet: Vec<f32> = speech.iter().map(|s| s * gain).collect();
    let wav = write_wav(dir.path(), "quiet.wav", &quiet);
    let (report, code) = doctor(wav.to_str().unwrap(), None);
    let mic = check(&report, "mic");
    assert_eq!((&mic["verdict"], &mic["code"]), (&Value::from("warn"), &Value::from("mic_too_quiet")), "{mic:#}");
    let measured = mic["figures"]["level_dbfs"].as_f64().unwrap();
    assert!((measured + 62.0).abs() < 1.0, "{mic:#}");
    assert!(mic["remedy"].as_str().unwrap().contains("input volume"), "{mic:#}");
    assert_eq!(code, 1);
}

#[test]
fn the_table_shows_verdicts_and_remedies() {
    let dir = tempfile::tempdir().unwrap();
    let wav = write_wav(dir.path(), "silence.wav", &vec![0.0; RATE as usize * 3]);
    let out = calldock().args(["doctor", "--only", "mic", "--mic"]).arg(&wav).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    let mic_line = text.lines().find(|l| l.starts_with("mic ")).unwrap_or_else(|| panic!("{text}"));
    assert!(mic_line.contains("FAIL") && mic_line.contains("silence.wav"), "{text}");
    assert!(text.contains("remedy: Nothing was heard"), "{text}");
    assert!(text.contains("0 passed, 0 warned, 1 failed"), "{text}");
    assert!(!text.contains("codec"), "--only mic runs the microphone check alone: {text}");
}

#[test]
fn unknown_checks_and_microphones_are_usage_errors_that_say_what_exists() {
    let out = calldock().args(["doctor", "--only", "mic,webcam"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the checks are mic, speaker, camera, network, codec"), "{}", stderr(&out));
    let out = calldock().args(["doctor", "--mic", "loudest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("calldock devices"), "{}", stderr(&out));
    let help = calldock().args(["doctor", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for check in ["mic (", "speaker (", "camera (", "network (", "codec ("] {
        assert!(help.contains(check), "the help explains {check}: {help}");
    }
}

/// No sound server and an ALSA with no devices (an empty configuration): what a headless box
/// without audio looks like, on any Linux machine.
#[cfg(target_os = "linux")]
#[test]
fn without_a_sound_system_the_microphone_fails_with_a_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let out = calldock()
        .args(["doctor", "--only", "mic", "--json"])
        .env("PULSE_SERVER", format!("unix:{}", dir.path().join("no-such-socket").display()))
        .env("ALSA_CONFIG_PATH", "/dev/null")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let mic = check(&report, "mic");
    assert_eq!((&mic["verdict"], &mic["code"]), (&Value::from("fail"), &Value::from("no_default_device")), "{mic:#}");
    assert!(mic["remedy"].as_str().unwrap().contains("connect one"), "{mic:#}");
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_real_device_hears_speech_and_a_missing_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let speech = write_wav(dir.path(), "speech.wav", &speech(dir.path()).1);
    let pulse = VirtualPulse::start(&["vmic"]);

    let mut player = pulse.play("vmic", &speech);
    let started = Instant::now();
    let (report, code) = doctor("pulseaudio:vmic.monitor", Some(&pulse));
    let took = started.elapsed();
    let _ = player.kill();
    let _ = player.wait();
    let mic = check(&report, "mic");
    assert_eq!(mic["verdict"], "pass", "{report:#}");
    assert_eq!(mic["figures"]["source"], "pulseaudio:vmic.monitor");
    assert!(mic["figures"]["sound_seconds"].as_f64().unwrap() >= 2.0, "{mic:#}");
    assert_eq!(code, expected_exit("pass", &report), "{report:#}");
    assert!(took < Duration::from_secs(10), "a doctor run takes under 10 s: {took:?}");
    assert!(report["duration_ms"].as_u64().unwrap() < 10_000, "{report:#}");

    let (report, code) = doctor("pulseaudio:unplugged.monitor", Some(&pulse));
    let mic = check(&report, "mic");
    assert_eq!((&mic["verdict"], &mic["code"]), (&Value::from("fail"), &Value::from("device_not_found")), "{mic:#}");
    assert!(mic["remedy"].as_str().unwrap().contains("calldock devices"), "{mic:#}");
    assert_eq!(code, 2);
}

/// The speaker check on real devices: the chirp played into a null sink comes back through the
/// sink's monitor (what a laptop's speaker and microphone do through the air), and the echo
/// path's delay and level are measured and printed. A microphone that cannot hear the speaker
/// (headphones) is reported, not failed.
#[test]
fn the_speaker_check_hears_its_chirp_through_the_monitor_and_measures_the_echo_path() {
    let pulse = VirtualPulse::start(&["vspk", "vmic"]);
    let doctor_speaker = |speaker: &str, mic: &str| {
        let mut command = calldock();
        command.args(["doctor", "--only", "speaker", "--speaker", speaker, "--mic", mic, "--json"]);
        pulse.apply(&mut command);
        let out = command.output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (report, out.status.code().unwrap())
    };

    let (report, code) = doctor_speaker("pulseaudio:vspk", "pulseaudio:vspk.monitor");
    let speaker = check(&report, "speaker");
    assert_eq!((&speaker["verdict"], code), (&Value::from("pass"), 0), "{report:#}");
    let echo = &speaker["figures"]["echo"];
    let delay = echo["delay_ms"].as_f64().unwrap_or_else(|| panic!("the monitor hears the chirp: {report:#}"));
    let level = echo["level_dbfs"].as_f64().unwrap();
    println!(
        "echo path through a PulseAudio null sink: {delay:.1} ms, {level:.1} dBFS, correlation {}",
        echo["correlation"]
    );
    assert!(delay > 0.0 && delay < 1000.0, "{report:#}");
    // The chirp's RMS is -15 dBFS and the monitor is a lossless copy.
    assert!((level - -15.0).abs() < 3.0, "{report:#}");
    assert!(speaker["summary"].as_str().unwrap().contains("echo path"), "{report:#}");

    let (report, code) = doctor_speaker("pulseaudio:vspk", "pulseaudio:vmic.monitor");
    let speaker = check(&report, "speaker");
    assert_eq!((&speaker["verdict"], code), (&Value::from("pass"), 0), "{report:#}");
    assert_eq!(speaker["figures"]["echo"], Value::Null, "another sink's monitor cannot hear it: {report:#}");
    assert!(speaker["summary"].as_str().unwrap().contains("did not hear it"), "{report:#}");

    let (report, code) = doctor_speaker("pulseaudio:unplugged", "pulseaudio:vspk.monitor");
    let speaker = check(&report, "speaker");
    assert_eq!((&speaker["verdict"], &speaker["code"]), (&Value::from("fail"), &Value::from("device_not_found")));
    assert!(speaker["remedy"].as_str().unwrap().contains("calldock devices"), "{report:#}");
    assert_eq!(code, 2);
}
