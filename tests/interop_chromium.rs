//! Interop with a foreign WebRTC stack: headless Chromium runs `interop/chromium/peer.html`, a
//! small Calldock protocol client in the browser, and holds an audio call with the `calldock`
//! binary through the reference server. Speech goes both ways and must arrive (envelope NCC ≥
//! 0.8). How to run it, the Chromium flags and what was found: `docs/interop.md`.
//!
//! The test serves the page itself on a loopback port and the page posts back what it heard;
//! Chromium's fake microphone plays an espeak-ng WAV once.

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::overload::up_to_two_tries;
use support::{Running, ServerProcess, calldock, chromium};

const PAGE: &str = include_str!("../interop/chromium/peer.html");
const SCRIPT: &str = include_str!("../interop/chromium/peer.js");

/// A quiet tone (440 Hz, −34 dBFS) before the speech in each microphone file. Both
/// microphones start when media connects, and Chromium's jitter buffer (NetEq) then grows to
/// its target (80 ms, set by the page) by stretching what it plays, ~70 ms per second: speech
/// played meanwhile comes out warped by tens of ms, which costs envelope correlation. The tone
/// gives NetEq something to stretch first; digital silence would not, since calldock's Opus
/// sends it as DTX, which NetEq does not stretch (docs/interop.md).
const LEAD_IN_MS: usize = 1500;
const LEAD_IN_AMPLITUDE: f32 = 0.02;

/// How long each call is held once connected: the lead-in and the ~3.6 s utterances, plus
/// setup and delay.
const HOLD_SECONDS: &str = "6";

/// The longest delay searched when aligning what was said with what was heard. It covers the
/// connection setup: a `calldock` speaker file starts before media connects.
const MAX_DELAY_MS: u32 = 3000;

/// calldock's log: warnings, and its media session's "media connected" and "media session
/// ends" lines (packets sent, jitter buffer counters), which say what a failed run's calldock
/// side went through.
const CALLDOCK_LOG: &str = "warn,calldock_engine::media=info";

/// Two browsers and four calldock processes at once on a small CI machine make audio glitchy:
/// the tests of this file take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What the page posts back.
enum FromPage {
    Log(String),
    Ready,
    Pcm(Vec<f32>),
    Result(Value),
}

/// The test's own web server (tests/support/chromium.rs): serves the page and receives its
/// reports.
struct PageServer {
    server: chromium::PageServer,
    ready: bool,
    pcm: Option<Vec<f32>>,
    result: Option<Value>,
}

const PAGE_FILES: &[chromium::PageFile] = &[
    chromium::PageFile { path: "/peer.html", content_type: "text/html; charset=utf-8", body: PAGE.as_bytes() },
    chromium::PageFile { path: "/peer.js", content_type: "text/javascript; charset=utf-8", body: SCRIPT.as_bytes() },
];

impl PageServer {
    fn start() -> Self {
        Self { server: chromium::PageServer::start(PAGE_FILES), ready: false, pcm: None, result: None }
    }

    /// What a POST from the page means.
    fn message(posted: chromium::Posted) -> FromPage {
        match posted.path.as_str() {
            "/ready" => FromPage::Ready,
            "/pcm" => FromPage::Pcm(
                posted.body.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("chunks of 4"))).collect(),
            ),
            "/result" => {
                FromPage::Result(serde_json::from_slice(&posted.body).unwrap_or_else(
                    |e| serde_json::json!({"ok": false, "error": format!("the result is not JSON: {e}")}),
                ))
            }
            _ => FromPage::Log(String::from_utf8_lossy(&posted.body).into_owned()),
        }
    }

    fn url(&self, server: &ServerProcess, user: &str, role: &str, peer: Option<&str>) -> String {
        let mut url = format!(
            "http://127.0.0.1:{}/peer.html?server={}&user={user}&role={role}&duration={HOLD_SECONDS}",
            self.server.port, server.base
        );
        if let Some(peer) = peer {
            url.push_str(&format!("&peer={peer}"));
        }
        url
    }

    /// Handles what the page sends until `done` holds; fails at once when the page reports a
    /// failure, and after `within`.
    fn wait(&mut self, what: &str, within: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(result) = &self.result
                && result["ok"] != true
            {
                panic!("the Chromium page failed: {}\n{}", result["error"], page_details(result));
            }
            if done(self) {
                return;
            }
            match self.server.next(deadline.saturating_duration_since(Instant::now())).map(Self::message) {
                Some(FromPage::Log(line)) => println!("  chromium | {line}"),
                Some(FromPage::Ready) => self.ready = true,
                Some(FromPage::Pcm(pcm)) => self.pcm = Some(pcm),
                Some(FromPage::Result(result)) => self.result = Some(result),
                None => panic!("timed out after {within:?} waiting for {what}"),
            }
        }
    }

    fn wait_for_result(&mut self, within: Duration) -> (Value, Vec<f32>) {
        self.wait("the page's result", within, |p| p.result.is_some());
        let pcm = self.pcm.take().expect("the page posts its recording before its result");
        (self.result.take().expect("waited for it"), pcm)
    }
}

fn page_details(result: &Value) -> String {
    let field = |name: &str| result[name].as_str().unwrap_or("(none)").to_owned();
    let log: Vec<&str> = result["log"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    format!(
        "page log:\n  {}\npage's local SDP:\n{}\npage's remote SDP:\n{}",
        log.join("\n  "),
        field("local_sdp"),
        field("remote_sdp")
    )
}

/// Real speech from espeak-ng (installed by scripts/test) after [`LEAD_IN_MS`] of a quiet
/// tone, as a 48 kHz 16-bit mono WAV: both sides' microphone file (Chromium's fake capture
/// reads it as it is). Returns the file and its samples, the reference for what is heard.
fn speak(dir: &Path, name: &str, text: &str) -> (PathBuf, Vec<f32>) {
    let raw = dir.join(format!("espeak-{name}"));
    let status = Command::new("espeak-ng")
        .args(["-w", raw.to_str().expect("UTF-8 temp path"), text])
        .status()
        .expect("espeak-ng is installed (scripts/test installs it)");
    assert!(status.success());
    let (samples, rate) = calldock_audio::wav::read_mono(&raw).expect("espeak-ng wrote a WAV");
    let mut resampler = calldock_audio::resample::Resampler::new(rate).expect("a supported rate");
    let tone = |i: usize| (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin();
    let mut said: Vec<f32> = (0..48 * LEAD_IN_MS).map(|i| LEAD_IN_AMPLITUDE * tone(i)).collect();
    resampler.push(&samples, |f| said.extend_from_slice(f)).expect("resampling works");
    let path = dir.join(name);
    let mut file = calldock_audio::wav::WavSpeaker::create(&path).expect("a microphone file");
    file.write(&said).expect("writing the microphone file");
    file.finish().expect("writing the microphone file");
    let (said, _) = calldock_audio::wav::read_mono(&path).expect("the microphone file reads back");
    (path, said)
}

/// calldock's media flags: WAV files as microphone and speaker, loopback only, no processing
/// (a WAV microphone has no acoustic echo to cancel).
fn media(mic: &Path, speaker: &Path) -> Vec<String> {
    let s = |p: &Path| p.to_str().expect("UTF-8 temp path").to_owned();
    ["--mic", &s(mic), "--speaker", &s(speaker), "--bind", "127.0.0.1:0", "--no-processing"]
        .iter()
        .map(|a| a.to_string())
        .collect()
}

/// The bar of every audio call test: what each side said arrives at the other with envelope
/// NCC ≥ 0.8. Both directions are measured and printed before either may fail. With
/// `CALLDOCK_INTEROP_KEEP=DIR`, the audio is kept there as 48 kHz WAV files to listen to.
fn heard_both_ways(test: &str, directions: [(&str, &[f32], &[f32]); 2]) -> Result<(), String> {
    let mut failures = Vec::new();
    for (direction, said, heard) in directions {
        if let Some(dir) = std::env::var_os("CALLDOCK_INTEROP_KEEP") {
            let name = format!("{test}-{}", direction.replace(" → ", "-to-"));
            for (suffix, samples) in [("said", said), ("heard", heard)] {
                let path = Path::new(&dir).join(format!("{name}-{suffix}.wav"));
                let mut file =
                    calldock_audio::wav::WavSpeaker::create(&path).expect("CALLDOCK_INTEROP_KEEP is writable");
                file.write(samples).expect("writing a kept recording");
                file.finish().expect("writing a kept recording");
            }
        }
        let seconds = heard.len() as f64 / 48_000.0;
        match calldock_media::analysis::delay_ms(said, heard, 48_000, MAX_DELAY_MS) {
            Some((delay, ncc)) => {
                println!("{direction}: ncc {ncc:.3}, heard {delay:.0} ms into the recording ({seconds:.1} s recorded)");
                if ncc < 0.8 {
                    failures.push(format!("{direction}: the speech did not arrive (ncc {ncc:.3} < 0.8)"));
                }
            }
            None => failures.push(format!("{direction}: nothing arrived ({seconds:.1} s of silence recorded)")),
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
}

/// Prints Chromium's own figures (getStats); with `CALLDOCK_INTEROP_KEEP=DIR`, keeps the page's
/// whole result (log, stats, both SDPs) there too.
fn print_page_stats(test: &str, result: &Value) {
    println!("chromium's view: {}", result["stats"]);
    if let Some(dir) = std::env::var_os("CALLDOCK_INTEROP_KEEP") {
        let path = Path::new(&dir).join(format!("{test}-chromium-result.json"));
        std::fs::write(path, serde_json::to_string_pretty(result).expect("JSON"))
            .expect("CALLDOCK_INTEROP_KEEP is writable");
    }
}

/// `calldock call bob --stats` with `args` (media, video), against the page answering as bob:
/// calldock's exit code and standard output, and the page (still running: its result follows)
/// with its browser.
fn calldock_calls_the_page(
    dir: &Path,
    server: &ServerProcess,
    chromium_mic: &Path,
    video: bool,
    args: &[String],
) -> (i32, String, PageServer, chromium::Browser) {
    let mut page = PageServer::start();
    let mut url = page.url(server, "bob", "answer", None);
    if video {
        url.push_str("&video=1");
    }
    let browser = chromium::Browser::launch(&url, chromium_mic, dir);
    page.wait("the page to sign in", Duration::from_secs(15), |p| p.ready);
    let out_path = dir.join("calldock.out");
    let mut alice = Running(
        calldock()
            .env("CALLDOCK_LOG", CALLDOCK_LOG)
            .args(["call", "bob", "--server", &server.base, "--user", "alice", "--duration", HOLD_SECONDS, "--stats"])
            .args(args)
            .stdout(File::create(&out_path).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("calldock call starts"),
    );
    let code = alice.wait(Duration::from_secs(20));
    (code, std::fs::read_to_string(&out_path).unwrap_or_default(), page, browser)
}

/// calldock places the call; the page answers it.
#[test]
fn calldock_calls_chromium_and_each_hears_the_other() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    up_to_two_tries("calldock → chromium call", calldock_calls_chromium);
}

fn calldock_calls_chromium() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&[]);
    let (calldock_mic, calldock_says) =
        speak(dir.path(), "calldock.wav", "Hello Chromium, this is Calldock calling to test the line.");
    let (chromium_mic, chromium_says) =
        speak(dir.path(), "chromium.wav", "Hi Calldock, I can hear you clearly. How are you today?");
    let calldock_ear = dir.path().join("calldock-heard.wav");

    let (code, out, mut page, _browser) =
        calldock_calls_the_page(dir.path(), &server, &chromium_mic, false, &media(&calldock_mic, &calldock_ear));
    assert_eq!(code, 0, "calldock call:\n{out}");
    assert!(out.contains("connected"), "calldock call:\n{out}");
    // Chromium's RTCP reports on the audio it receives reach Calldock's stats (calldock-peer's
    // reception_reports; webrtc 0.21's own remote-inbound figures stay at zero), so Calldock
    // knows the loss of what it sends once the first report is in.
    let reported = out.lines().filter(|l| l.starts_with("stats:") && !l.contains("of what we sent: -")).count();
    assert!(reported >= 2, "Chromium's reception reports reach Calldock's stats:\n{out}");

    let (result, heard_by_chromium) = page.wait_for_result(Duration::from_secs(10));
    print_page_stats("calldock-calls", &result);
    let (heard_by_calldock, _) = calldock_audio::wav::read_mono(&calldock_ear).expect("speaker file written");
    heard_both_ways(
        "calldock-calls",
        [
            ("calldock → chromium", &calldock_says, &heard_by_chromium),
            ("chromium → calldock", &chromium_says, &heard_by_calldock),
        ],
    )
}

/// A video call between Calldock and Chromium: Calldock's camera is a Y4M file of numbered
/// pictures, Chromium's its fake camera. Chromium decodes Calldock's VP8 at its size; Calldock
/// decodes Chromium's (written out with `--video-out`) and the pictures move.
#[test]
fn calldock_and_chromium_hold_a_video_call() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    up_to_two_tries("calldock → chromium video call", calldock_and_chromium_video);
}

fn calldock_and_chromium_video() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&[]);
    let (calldock_mic, _) = speak(dir.path(), "calldock.wav", "Video from Calldock.");
    let (chromium_mic, _) = speak(dir.path(), "chromium.wav", "Video from Chromium.");
    let calldock_ear = dir.path().join("calldock-heard.wav");
    let camera = support::pattern_y4m(dir.path(), "camera.y4m", 90);
    let received = dir.path().join("from-chromium.y4m");

    let mut args = media(&calldock_mic, &calldock_ear);
    args.extend(
        ["--video", "--camera", camera.to_str().unwrap(), "--video-out", received.to_str().unwrap()].map(String::from),
    );
    let (code, out, mut page, _browser) = calldock_calls_the_page(dir.path(), &server, &chromium_mic, true, &args);
    assert_eq!(code, 0, "calldock call:\n{out}");
    let (result, _) = page.wait_for_result(Duration::from_secs(10));
    let stats = &result["stats"];
    println!("chromium's video stats: {stats}");
    println!("calldock's last stats: {}", out.lines().rev().find(|l| l.starts_with("stats:")).unwrap_or("-"));

    // Chromium decoded Calldock's pictures, at their size, steadily.
    let decoded = stats["video_frames_decoded"].as_u64().unwrap_or(0);
    if decoded < 90 {
        return Err(format!("Chromium decoded {decoded} of Calldock's frames in {HOLD_SECONDS} s: {stats}\n{out}"));
    }
    assert_eq!((stats["video_frame_width"].as_u64(), stats["video_frame_height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(stats["video_codec"], "video/VP8", "{stats}");

    // Calldock decoded Chromium's: many pictures, and they change (the fake camera's clock).
    let (width, height, pictures) = support::read_y4m(&received);
    let frames: Vec<&[u8]> = pictures.iter().map(|p| p.luma()).collect();
    println!("calldock received {} pictures of {width}×{height} from Chromium", frames.len());
    if frames.len() < 60 {
        return Err(format!("Calldock decoded {} of Chromium's frames: {out}", frames.len()));
    }
    assert!(width >= 320 && height >= 240, "{width}×{height}");
    let moving = frames.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        moving * 2 > frames.len(),
        "Chromium's pictures move: {moving} of {} differ from the one before",
        frames.len()
    );
    let undecodable: Vec<&str> =
        out.lines().filter(|l| l.contains("undecodable") && !l.contains(" 0 undecodable")).collect();
    assert!(undecodable.is_empty(), "every frame from Chromium decodes: {undecodable:?}");
    Ok(())
}

/// The page places the call; `calldock answer` answers it.
#[test]
fn chromium_calls_calldock_and_each_hears_the_other() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    up_to_two_tries("chromium → calldock call", chromium_calls_calldock);
}

fn chromium_calls_calldock() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&[]);
    let (calldock_mic, calldock_says) =
        speak(dir.path(), "calldock.wav", "Good morning Chromium, Calldock here. The weather is fine.");
    let (chromium_mic, chromium_says) =
        speak(dir.path(), "chromium.wav", "Hello Calldock, this is Chromium calling. Can you hear me?");
    let calldock_ear = dir.path().join("calldock-heard.wav");

    let mut bob = calldock()
        .env("CALLDOCK_LOG", CALLDOCK_LOG)
        .args(["answer", "--server", &server.base, "--user", "bob"])
        .args(media(&calldock_mic, &calldock_ear))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("calldock answer starts");
    let stdout = bob.stdout.take().expect("piped");
    let mut bob = Running(bob);
    let (ready_tx, ready) = channel();
    let lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("waiting for calls") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    ready.recv_timeout(Duration::from_secs(10)).expect("calldock answer becomes ready");

    let mut page = PageServer::start();
    let _browser =
        chromium::Browser::launch(&page.url(&server, "alice", "call", Some("bob")), &chromium_mic, dir.path());
    let (result, heard_by_chromium) = page.wait_for_result(Duration::from_secs(25));
    print_page_stats("chromium-calls", &result);
    let code = bob.wait(Duration::from_secs(10));
    let out = lines.join().expect("reader thread");
    assert_eq!(code, 0, "calldock answer:\n{out}");
    assert!(out.contains("connected"), "calldock answer:\n{out}");

    let (heard_by_calldock, _) = calldock_audio::wav::read_mono(&calldock_ear).expect("speaker file written");
    heard_both_ways(
        "chromium-calls",
        [
            ("calldock → chromium", &calldock_says, &heard_by_chromium),
            ("chromium → calldock", &chromium_says, &heard_by_calldock),
        ],
    )
}
