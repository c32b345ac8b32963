//! Interop with a foreign WebRTC stack: aiortc (Python) runs `interop/aiortc/peer.py`, a small
//! Calldock protocol client, and holds an audio call with the `calldock` binary through the
//! reference server, once as the callee and once as the caller. Different speech goes each way
//! and must arrive (envelope NCC ≥ 0.8) in both directions. How to run it and what was found:
//! `docs/interop.md`.
//!
//! aiortc lives in a venv that `scripts/setup-aiortc` makes (`scripts/test` runs it and sets
//! `CALLDOCK_AIORTC_PYTHON`). Without it these tests fail, saying so: they never pass silently.
//! A call whose audio comparison fails while the machine is overloaded is held once more
//! ([`up_to_two_tries`]); nothing else is retried.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::overload::up_to_two_tries;
use support::{ServerProcess, calldock, speak};

/// How long each call is held once connected: the ~3 s utterances, plus setup and delay.
const HOLD_SECONDS: &str = "5";

/// Two calls at once (two calldock debug builds, two Python peers) on a 2-core CI machine
/// starve the Python peer's sender now and then; the tests of this file take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The venv's python: `CALLDOCK_AIORTC_PYTHON`, else where `scripts/setup-aiortc` puts it.
fn aiortc_python() -> PathBuf {
    let python = match std::env::var_os("CALLDOCK_AIORTC_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let cache = std::env::var_os("CALLDOCK_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/calldock"));
            cache.join("aiortc-venv/bin/python")
        }
    };
    assert!(
        python.is_file(),
        "aiortc is not installed: {} does not exist. Run scripts/setup-aiortc (scripts/test does), or set \
         CALLDOCK_AIORTC_PYTHON to a python with interop/aiortc/requirements.txt installed",
        python.display()
    );
    python
}

fn aiortc_peer(server: &ServerProcess, args: &[&str]) -> Command {
    // Read when run (cargo sets it), not when built: with one target dir shared by two clones,
    // cargo may reuse this binary for the other clone, and the built-in path is the first one's.
    let script = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
        .join("interop/aiortc/peer.py");
    let mut command = Command::new(aiortc_python());
    command.arg(script).args(["--server", &server.base]).args(args);
    command
}

/// A child process whose output is collected, killed if the test ends before it exits.
struct Process {
    name: &'static str,
    child: Child,
    ready: Receiver<()>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Process {
    /// Starts `command`; `ready_line` is the stdout line that says it is ready.
    fn start(name: &'static str, mut command: Command, ready_line: &'static str) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let (tx, ready) = channel();
        let out = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains(ready_line) {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Self { name, child, ready, stdout: Some(stdout), stderr: Some(stderr) }
    }

    fn wait_ready(&mut self, within: Duration) {
        if self.ready.recv_timeout(within).is_err() {
            let _ = self.child.kill();
            let (code, output) = self.finish(Duration::from_secs(5));
            panic!("{} did not become ready within {within:?} (exit {code}):\n{output}", self.name);
        }
    }

    /// Waits for the exit (killing it after `within`); returns the exit code and all output.
    fn finish(&mut self, within: Duration) -> (i32, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let output = format!("--- {} stdout\n{stdout}--- {} stderr\n{stderr}", self.name, self.name);
        match status {
            Some(status) => (status.code().unwrap_or(-1), output),
            None => panic!("{} did not exit within {within:?}:\n{output}", self.name),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The speech each side says and the files each side hears into. The files are kept (and
/// their folder named) when a check fails, or always with `CALLDOCK_INTEROP_KEEP=1`.
struct Speech {
    dir: Option<tempfile::TempDir>,
    calldock_mic: PathBuf,
    calldock_says: Vec<f32>,
    calldock_ear: PathBuf,
    aiortc_mic: PathBuf,
    aiortc_says: Vec<f32>,
    aiortc_ear: PathBuf,
}

impl Speech {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (calldock_mic, calldock_says) =
            speak(dir.path(), "calldock.wav", "This is calldock speaking, written in Rust. Can you hear me?");
        let (aiortc_mic, aiortc_says) =
            speak(dir.path(), "aiortc.wav", "Hello from Python. The quick brown fox jumps over the lazy dog.");
        let (calldock_ear, aiortc_ear) = (dir.path().join("calldock-heard.wav"), dir.path().join("aiortc-heard.wav"));
        Self { dir: Some(dir), calldock_mic, calldock_says, calldock_ear, aiortc_mic, aiortc_says, aiortc_ear }
    }

    fn calldock_media(&self) -> Vec<String> {
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        vec![
            "--mic".into(),
            s(&self.calldock_mic),
            "--speaker".into(),
            s(&self.calldock_ear),
            "--bind".into(),
            "127.0.0.1:0".into(),
            // A WAV microphone has no acoustic echo to cancel.
            "--no-processing".into(),
        ]
    }

    fn aiortc_media(&self) -> Vec<String> {
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        vec!["--mic".into(), s(&self.aiortc_mic), "--speaker".into(), s(&self.aiortc_ear)]
    }

    /// Keeps the WAV files for listening; returns where they are.
    fn keep(&mut self) -> String {
        self.dir.take().map(|d| format!("the WAV files are kept in {}", d.keep().display())).unwrap_or_default()
    }

    /// Both directions must carry the speech: what each side said is in the other's speaker.
    /// An error names what did not arrive (and keeps the files).
    fn heard_both_ways(&mut self) -> Result<(), String> {
        if std::env::var_os("CALLDOCK_INTEROP_KEEP").is_some() {
            println!("{}", self.keep());
        }
        let mut failures = Vec::new();
        for (said, heard, who) in [
            (&self.calldock_says, &self.aiortc_ear, "calldock → aiortc"),
            (&self.aiortc_says, &self.calldock_ear, "aiortc → calldock"),
        ] {
            let samples = match calldock_audio::wav::read_mono(heard) {
                Ok((samples, _)) => samples,
                Err(e) => {
                    failures.push(format!("{who}: speaker file {} not written: {e}", heard.display()));
                    continue;
                }
            };
            match calldock_media::analysis::delay_ms(said, &samples, 48_000, 2000) {
                Some((delay, ncc)) => {
                    println!("{who}: ncc {ncc:.3}, speaker file behind microphone file by {delay:.0} ms");
                    if ncc < 0.8 {
                        failures.push(format!("{who}: the speech did not arrive (ncc {ncc:.3} < 0.8)"));
                    }
                }
                None => failures.push(format!("{who}: nothing to compare (silent speaker file)")),
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        Err(format!("{}; {}", failures.join("; "), self.keep()))
    }
}

/// calldock calls, aiortc answers (aiortc gets the offer and trickled candidates).
#[test]
fn calldock_calls_aiortc_and_speech_flows_both_ways() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    up_to_two_tries("calldock → aiortc call", || {
        let mut speech = Speech::new();
        let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
        let mut answer = aiortc_peer(&server, &["--answer", "--user", "bob", "--name", "Bob"]);
        answer.args(speech.aiortc_media());
        let mut aiortc = Process::start("aiortc answer", answer, "waiting for calls");
        aiortc.wait_ready(Duration::from_secs(15));
        let mut call = calldock();
        call.args(["call", "bob", "--server", &server.base, "--user", "alice", "--name", "Alice"])
            .args(["--duration", HOLD_SECONDS])
            .args(speech.calldock_media());
        let mut alice = Process::start("calldock call", call, "connected");
        let (alice_code, alice_out) = alice.finish(Duration::from_secs(20));
        let (bob_code, bob_out) = aiortc.finish(Duration::from_secs(10));
        let context = format!("{alice_out}{bob_out}");
        assert_eq!(alice_code, 0, "calldock call failed:\n{context}");
        assert_eq!(bob_code, 0, "the aiortc peer failed:\n{context}");
        for line in ["incoming audio call from Alice (alice)", "connected", "ended: hung up by Alice"] {
            assert!(bob_out.contains(line), "missing {line:?} from the aiortc peer:\n{context}");
        }
        if let Some(media) = bob_out.lines().find(|l| l.starts_with("media:")) {
            println!("aiortc peer: {media}");
        }
        speech.heard_both_ways().map_err(|e| format!("{e}\n{context}"))
    });
}

/// aiortc calls, calldock answers (calldock gets aiortc's offer, candidates inside the SDP).
#[test]
fn aiortc_calls_calldock_and_speech_flows_both_ways() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    up_to_two_tries("aiortc → calldock call", || {
        let mut speech = Speech::new();
        let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
        let mut answer = calldock();
        answer
            .args(["answer", "--server", &server.base, "--user", "bob", "--name", "Bob"])
            .args(speech.calldock_media());
        let mut bob = Process::start("calldock answer", answer, "waiting for calls");
        bob.wait_ready(Duration::from_secs(10));
        let mut call = aiortc_peer(&server, &["--call", "bob", "--user", "alice", "--name", "Alice"]);
        call.args(["--duration", HOLD_SECONDS]).args(speech.aiortc_media());
        let mut aiortc = Process::start("aiortc call", call, "connected");
        let (alice_code, alice_out) = aiortc.finish(Duration::from_secs(20));
        let (bob_code, bob_out) = bob.finish(Duration::from_secs(10));
        let context = format!("{alice_out}{bob_out}");
        assert_eq!(alice_code, 0, "the aiortc peer failed:\n{context}");
        assert_eq!(bob_code, 0, "calldock answer failed:\n{context}");
        for line in ["incoming audio call from Alice (alice)", "connected", "ended: hung up by Alice"] {
            assert!(bob_out.contains(line), "missing {line:?} from calldock answer:\n{context}");
        }
        if let Some(media) = alice_out.lines().find(|l| l.starts_with("media:")) {
            println!("aiortc peer: {media}");
        }
        speech.heard_both_ways().map_err(|e| format!("{e}\n{context}"))
    });
}

/// A peer whose SDP carries the wrong DTLS certificate fingerprint (what a man in the middle
/// would send): calldock refuses the handshake and the call ends `failed(dtls)`, within a few
/// seconds and with a reason; it never carries media.
#[test]
fn a_tampered_fingerprint_ends_the_call_with_failed_dtls() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let answer =
        aiortc_peer(&server, &["--answer", "--user", "bob", "--tamper-fingerprint", "--connect-timeout", "20"]);
    let mut aiortc = Process::start("aiortc answer", answer, "waiting for calls");
    aiortc.wait_ready(Duration::from_secs(15));
    let mut call = calldock();
    call.args(["call", "bob", "--server", &server.base, "--user", "alice", "--json"]).args([
        "--mic",
        "silence",
        "--speaker",
        "null",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "5",
    ]);
    let started = Instant::now();
    let mut alice = Process::start("calldock call", call, "\"ended\"");
    let (alice_code, alice_out) = alice.finish(Duration::from_secs(20));
    let took = started.elapsed();
    let (_, bob_out) = aiortc.finish(Duration::from_secs(15));
    let context = format!("{alice_out}{bob_out}");
    assert_eq!(alice_code, 1, "the call must not succeed:\n{context}");
    let ended = alice_out.lines().find(|l| l.contains("\"event\":\"ended\"")).unwrap_or_default();
    assert!(ended.contains("\"reason\":\"failed(dtls)\""), "ended {ended:?}:\n{context}");
    assert!(
        !alice_out.lines().any(|l| l.contains("\"state\":\"connected\"")),
        "media never connects with a forged certificate:\n{context}"
    );
    println!("failed(dtls) after {:.1} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(15), "took {took:?}");
}
