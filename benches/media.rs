//! Media benchmark: `cargo bench --bench media` (docs/benchmarks.md has the figures).
//!
//! Calldock and Chromium side by side, in the same run on the same machine, printing figures
//! and the ratio, never asserting on them:
//!
//! 1. **Call setup** on loopback: offer → connected → first RTP packet received, 20 times after
//!    a warm-up. Calldock: two `calldock-peer` peers in one process, signaling relayed in
//!    memory. Chromium: two `RTCPeerConnection`s in one headless page, the same way
//!    (interop/chromium/bench.html).
//! 2. **CPU of a 1:1 audio call**, both ends, echo cancellation, noise suppression and gain
//!    control on (Chromium: getUserMedia's defaults). Calldock: `calldock call` and
//!    `calldock answer` through a reference server, WAV files as microphones. Chromium: one
//!    page, both ends, each with a fake capture device of its own reading the same speech (the
//!    bench counts Chromium's audio processing threads to show two pipelines run, as in
//!    Calldock's two processes). CPU is read from /proc
//!    over the middle of the call (the process trees: the browser with its renderers and
//!    utility processes), as a share of one core.
//! 3. **Mouth-to-ear delay** with virtual devices: an echo test call with a WAV microphone and
//!    a WAV speaker on one timeline (round trip through the echo bot).
//!
//! Arguments after `--` pick parts: `setup`, `cpu`, `delay` (default all).
//! `CALLDOCK_BENCH_SECONDS` sets the call length of part 2 (default 30), `CALLDOCK_BENCH_ROUNDS`
//! how many times it alternates Calldock and Chromium (default 3; the median ratio is the figure).

#[path = "../tests/support/chromium.rs"]
mod chromium;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use calldock_peer::{Peer, PeerEvent, PeerSettings};
use chromium::{Browser, PageFile, PageServer};

const PAGE: &[PageFile] = &[PageFile {
    path: "/bench.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../interop/chromium/bench.html"),
}];
const SETUP_RUNS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let dir = tempfile::tempdir().expect("temp dir");
    let speech = dir.path().join("speech.wav");
    write_speech(&speech, 40.0);
    println!("media benchmark: Calldock vs Chromium ({}) on this machine", chromium_version());
    if want("setup") {
        setup(dir.path(), &speech);
    }
    if want("cpu") {
        let seconds: u64 = std::env::var("CALLDOCK_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
        let rounds: usize =
            std::env::var("CALLDOCK_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
        cpu(dir.path(), &speech, seconds, rounds);
    }
    if want("delay") {
        delay(dir.path(), &speech);
    }
}

fn chromium_version() -> String {
    Command::new(chromium::CHROMIUM)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "not installed".into())
}

/// Speech-like audio (calldock-audio's test signal) as a 48 kHz 16-bit WAV.
fn write_speech(path: &Path, seconds: f32) {
    let mut file = calldock_audio::wav::WavSpeaker::create(path).expect("a WAV file");
    file.write(&calldock_audio::pipeline::test_signal::speech_like(seconds)).expect("written");
    file.finish().expect("finished");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// 1. Call setup

/// One Calldock setup: offer → offerer connected, and → first RTP at the answerer (the offerer
/// sends a packet every 20 ms from the moment it is connected, as a call does).
async fn calldock_setup_once(settings: &PeerSettings) -> (f64, f64) {
    let (a, mut a_events) = Peer::new(settings).await.expect("a peer");
    let (b, mut b_events) = Peer::new(settings).await.expect("a peer");
    let t0 = Instant::now();
    let offer = a.offer(false).await.expect("an offer");
    if let Some(answer) = b.handle_signal(offer).await.expect("the offer applies") {
        a.handle_signal(answer).await.expect("the answer applies");
    }
    let packet = Bytes::from_static(&[0xfc, 0xff, 0xfe]);
    let (mut connected, mut first_rtp) = (None, None);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while first_rtp.is_none() {
        tokio::select! {
            e = a_events.recv() => match e {
                Some(PeerEvent::Signal(s)) => { let _ = b.handle_signal(s).await; }
                Some(PeerEvent::Connected) => {
                    connected.get_or_insert(t0.elapsed());
                    let _ = a.send_audio(packet.clone()).await;
                }
                _ => {}
            },
            e = b_events.recv() => match e {
                Some(PeerEvent::Signal(s)) => { let _ = a.handle_signal(s).await; }
                Some(PeerEvent::Audio(_)) => first_rtp = Some(t0.elapsed()),
                _ => {}
            },
            _ = tick.tick(), if connected.is_some() => { let _ = a.send_audio(packet.clone()).await; }
            _ = tokio::time::sleep_until(deadline) => panic!("calldock peers did not connect within 10 s"),
        }
    }
    a.close().await;
    b.close().await;
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    (ms(connected), ms(first_rtp))
}

fn setup(dir: &Path, speech: &Path) {
    println!("\n1. call setup on loopback, median (p90) of {SETUP_RUNS} runs after a warm-up");
    let page = PageServer::start(PAGE);
    let url = format!("http://127.0.0.1:{}/bench.html?mode=setup&runs={SETUP_RUNS}", page.port);
    let browser = Browser::launch(&url, speech, dir);
    let result = page_result(&page, Duration::from_secs(120));
    drop(browser);
    let runs = result["runs"].as_array().cloned().unwrap_or_default();
    let field = |name: &str| runs.iter().filter_map(|r| r[name].as_f64()).collect::<Vec<f64>>();
    let (c_connected, c_rtp) = (field("connected_ms"), field("first_rtp_ms"));
    println!(
        "   Chromium                                  connected {:5.1} ms ({:5.1})   first RTP {:5.1} ms ({:5.1})",
        median(c_connected.clone()),
        percentile(c_connected.clone(), 0.9),
        median(c_rtp.clone()),
        percentile(c_rtp.clone(), 0.9)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let pacings = [
        ("Calldock, same-machine pacing (5 ms)", PeerSettings::loopback()),
        (
            "Calldock, network pacing (10 ms)",
            PeerSettings { udp_bind: vec!["127.0.0.1:0".into()], ..PeerSettings::default() },
        ),
    ];
    for (name, settings) in pacings {
        let (mut connected, mut first_rtp) = (Vec::new(), Vec::new());
        runtime.block_on(async {
            calldock_setup_once(&settings).await;
            for _ in 0..SETUP_RUNS {
                let (c, r) = calldock_setup_once(&settings).await;
                connected.push(c);
                first_rtp.push(r);
            }
        });
        let slow = connected.iter().filter(|c| **c > 500.0).count();
        println!(
            "   {name:<41} connected {:5.1} ms ({:5.1})   first RTP {:5.1} ms ({:5.1})   ratio {:.2}× / {:.2}×   \
             ({slow} of {SETUP_RUNS} over 500 ms)",
            median(connected.clone()),
            percentile(connected.clone(), 0.9),
            median(first_rtp.clone()),
            percentile(first_rtp.clone(), 0.9),
            median(connected.clone()) / median(c_connected.clone()),
            median(first_rtp.clone()) / median(c_rtp.clone()),
        );
    }
}

/// Reads what the page posts until its result; prints its log lines.
fn page_result(page: &PageServer, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let posted = page.next(left).unwrap_or_else(|| panic!("the Chromium page gave no result within {within:?}"));
        match posted.path.as_str() {
            "/result" => {
                let result: serde_json::Value = serde_json::from_slice(&posted.body).expect("JSON result");
                assert!(result["ok"] == true, "the Chromium page failed: {}", result["error"]);
                return result;
            }
            "/log" => println!("   chromium | {}", String::from_utf8_lossy(&posted.body)),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. CPU of a call

/// A calldock process whose stdout lines are read on a thread.
struct Process {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Process {
    fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_calldock"))
            .args(args)
            .env("CALLDOCK_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("calldock starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines }
    }

    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no {needle:?} from calldock within {within:?}"),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU of the given process trees between `from` and `to` after `start`, as % of one core.
fn cpu_share(roots: &[u32], start: Instant, from: Duration, to: Duration) -> f64 {
    std::thread::sleep((start + from).saturating_duration_since(Instant::now()));
    let (t0, c0) = (Instant::now(), roots.iter().map(|r| chromium::process_tree_cpu_seconds(*r)).sum::<f64>());
    std::thread::sleep((start + to).saturating_duration_since(Instant::now()));
    let (t1, c1) = (Instant::now(), roots.iter().map(|r| chromium::process_tree_cpu_seconds(*r)).sum::<f64>());
    100.0 * (c1 - c0) / t1.duration_since(t0).as_secs_f64()
}

/// `rounds` times a Calldock call, then the same call in Chromium, each measured over the middle
/// of the call. Both figures move by a sixth to a quarter from run to run on a shared machine,
/// so the two systems alternate and the median ratio is the figure.
fn cpu(dir: &Path, speech: &Path, seconds: u64, rounds: usize) {
    println!(
        "\n2. CPU of a {seconds} s 1:1 audio call, both ends, audio processing on (share of one core), \
         {rounds} rounds alternating"
    );
    // Measured from 3 s after connecting to 3 s before the end: the call itself, not startup.
    let (from, to) = (Duration::from_secs(3), Duration::from_secs(seconds.saturating_sub(3).max(4)));
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let ours = calldock_call_cpu(speech, seconds, from, to);
        let (theirs, packets, pipelines) = chromium_call_cpu(dir, speech, seconds, from, to);
        println!(
            "   round {round}: Calldock {ours:5.1} %   Chromium {theirs:5.1} % (it received {packets} packets; \
             {} capture and {} audio processing threads)   ratio {:.2}×",
            pipelines[0],
            pipelines[1],
            ours / theirs
        );
        ratios.push(ours / theirs);
    }
    println!(
        "   median ratio {:.2}× (range {:.2}–{:.2}×); Chromium fair when it ran 2 capture and 2 processing threads, \
         one of each per end",
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
}

/// Both ends of a Calldock call: `calldock answer` and `calldock call` through a reference server.
fn calldock_call_cpu(speech: &Path, seconds: u64, from: Duration, to: Duration) -> f64 {
    let server = Process::start(&["serve", "--listen", "127.0.0.1:0", "--media-bind", "127.0.0.1:0"]);
    let base =
        server.wait_for("listening on", Duration::from_secs(10)).rsplit(' ').next().unwrap_or_default().to_owned();
    let mic = speech.to_str().expect("UTF-8 path");
    let duration = seconds.to_string();
    let media = ["--mic", mic, "--speaker", "null", "--bind", "127.0.0.1:0"];
    let bob = Process::start(&[&["answer", "--server", &base, "--user", "bob"][..], &media[..]].concat());
    bob.wait_for("waiting for calls", Duration::from_secs(10));
    let alice = Process::start(
        &[&["call", "bob", "--server", &base, "--user", "alice", "--duration", &duration][..], &media[..]].concat(),
    );
    alice.wait_for("connected", Duration::from_secs(10));
    let ours = cpu_share(&[alice.child.id(), bob.child.id()], Instant::now(), from, to);
    alice.wait_for("ended", Duration::from_secs(seconds + 10));
    ours
}

/// Both ends in one Chromium page; also the packets its answerer received and how many capture
/// and audio processing threads it ran.
fn chromium_call_cpu(dir: &Path, speech: &Path, seconds: u64, from: Duration, to: Duration) -> (f64, u64, [usize; 2]) {
    let page = PageServer::start(PAGE);
    let url = format!("http://127.0.0.1:{}/bench.html?mode=call&seconds={seconds}", page.port);
    let browser = Browser::launch(&url, speech, dir);
    loop {
        let posted = page.next(Duration::from_secs(30)).expect("the Chromium call connects");
        match posted.path.as_str() {
            "/connected" => break,
            "/result" => panic!("the Chromium page failed: {}", String::from_utf8_lossy(&posted.body)),
            _ => {}
        }
    }
    let theirs = cpu_share(&[browser.pid()], Instant::now(), from, to);
    // Asked twice for one device, Chromium captures and processes once for both tracks: the
    // page opens two devices, and these counts show it got two pipelines, not one.
    let pipelines = ["AudioInputDevic", "AudioProcessing"].map(|name| chromium::threads_named(browser.pid(), name));
    let result = page_result(&page, Duration::from_secs(seconds + 30));
    (theirs, result["packets_received"].as_u64().unwrap_or(0), pipelines)
}

// ---------------------------------------------------------------------------------------------
// 3. Mouth-to-ear delay

fn delay(dir: &Path, speech: &Path) {
    println!("\n3. mouth-to-ear delay on loopback with virtual devices (WAV microphone and speaker)");
    let server = Process::start(&["serve", "--listen", "127.0.0.1:0", "--media-bind", "127.0.0.1:0"]);
    let base =
        server.wait_for("listening on", Duration::from_secs(10)).rsplit(' ').next().unwrap_or_default().to_owned();
    let short = dir.join("short.wav");
    write_speech(&short, 4.0);
    let heard = dir.join("heard.wav");
    let caller = Process::start(&[
        "call",
        "echo",
        "--server",
        &base,
        "--user",
        "alice",
        "--duration",
        "5",
        "--mic",
        short.to_str().expect("UTF-8"),
        "--speaker",
        heard.to_str().expect("UTF-8"),
        "--bind",
        "127.0.0.1:0",
        "--no-processing",
    ]);
    caller.wait_for("ended", Duration::from_secs(20));
    let _ = speech;
    let (said, _) = calldock_audio::wav::read_mono(&short).expect("the microphone file");
    let (back, _) = calldock_audio::wav::read_mono(&heard).expect("the speaker file");
    match calldock_media::analysis::delay_ms(&said, &back, 48_000, 1000) {
        Some((ms, ncc)) => println!("   echo bot round trip: {ms:.0} ms (envelope match {ncc:.2}; goal under 60 ms)"),
        None => println!("   nothing came back to compare"),
    }
}
