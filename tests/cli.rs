//! The headless commands as a user or a QA script runs them: separate processes, one server.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::{Running, ServerProcess, calldock, speak};

/// The video calls here encode and decode 640x480 at 30 fps in real time and check the frame
/// rate: one at a time, so that on a 2-core machine they do not starve each other (overlapping
/// in a whole test run, one fell to 24 fps in its last second, under the 25 it checks).
static ONE_VIDEO_CALL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_video_call_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_VIDEO_CALL_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts `calldock answer …` and waits until it says it is ready.
fn answerer(server: &ServerProcess, args: &[&str]) -> (Running, std::thread::JoinHandle<Vec<String>>) {
    let mut child = calldock()
        .args(["answer", "--server", &server.base])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("calldock answer starts");
    let stdout = child.stdout.take().expect("piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("waiting for calls") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    let child = Running(child);
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("answerer becomes ready");
    (child, lines)
}

fn run(server: &ServerProcess, args: &[&str]) -> Output {
    calldock().args(args).args(["--server", &server.base]).output().expect("calldock runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn wait(mut child: Running, within: Duration) -> i32 {
    child.wait(within)
}

#[test]
fn two_processes_hold_a_call_and_both_exit_cleanly() {
    let server = ServerProcess::start(&[]);
    let (bob, bob_lines) = answerer(&server, &["--user", "bob", "--name", "Bob"]);
    let alice = run(&server, &["call", "bob", "--user", "alice", "--name", "Alice", "--duration", "0.3"]);
    let alice_text = text(&alice);
    assert_eq!(alice.status.code(), Some(0), "{alice_text}");
    for line in ["calling bob", "ringing", "connected", "ended: you hung up"] {
        assert!(alice_text.contains(line), "missing {line:?} in:\n{alice_text}");
    }
    assert_eq!(wait(bob, Duration::from_secs(10)), 0);
    let bob_text = bob_lines.join().expect("reader thread").join("\n");
    assert!(bob_text.contains("incoming audio call from Alice (alice)"), "{bob_text}");
    assert!(bob_text.contains("ended: hung up by Alice"), "{bob_text}");
}

#[test]
fn echo_test_call_is_answered() {
    let server = ServerProcess::start(&[]);
    let out = run(&server, &["call", "echo", "--user", "alice", "--duration", "0.2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("connected"));
}

#[test]
fn declined_call_exits_1_and_names_the_decliner() {
    let server = ServerProcess::start(&[]);
    let (bob, _) = answerer(&server, &["--user", "bob", "--name", "Bob", "--decline"]);
    let out = run(&server, &["call", "bob", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ended: declined by Bob"), "{}", text(&out));
    assert_eq!(wait(bob, Duration::from_secs(10)), 0);
}

#[test]
fn unanswered_call_is_missed_and_shows_in_the_callee_history() {
    let server = ServerProcess::start(&["--ring-timeout-ms", "800"]);
    // bob exists but is offline.
    let login = run(&server, &["history", "--user", "bob"]);
    assert_eq!(login.status.code(), Some(0), "{}", text(&login));
    let out = run(&server, &["call", "bob", "--user", "alice", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(r#""reason":"missed""#), "{}", text(&out));
    let history = run(&server, &["history", "--user", "bob", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&history.stdout).expect("history --json is JSON");
    assert_eq!(value["calls"][0]["missed"], true, "{value}");
    assert_eq!(value["calls"][0]["direction"], "incoming");
    let table = text(&run(&server, &["history", "--user", "bob"]));
    assert!(table.contains("incoming") && table.contains("missed"), "{table}");
}

#[test]
fn hangup_ends_a_call_held_by_other_processes() {
    let server = ServerProcess::start(&[]);
    let (bob, _) = answerer(&server, &["--user", "bob"]);
    let alice = Running(
        calldock()
            .args(["call", "bob", "--user", "alice", "--server", &server.base])
            .stdout(Stdio::null())
            .spawn()
            .expect("call starts"),
    );
    // Wait until the call is up: bob's history shows it active.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = run(&server, &["history", "--user", "bob", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap_or_default();
        if v["calls"][0]["call"]["phase"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "call never became active");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(&server, &["hangup", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("ended 1 call"), "{}", text(&out));
    assert_eq!(wait(alice, Duration::from_secs(10)), 0, "the caller's process sees the hangup");
    assert_eq!(wait(bob, Duration::from_secs(10)), 0);
}

#[test]
fn unusable_server_addresses_get_actionable_errors() {
    let bad = calldock().args(["call", "bob", "--user", "alice", "--server", "localhost:7878"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("use http://HOST:PORT"), "{}", text(&bad));
    // Port 9 (discard) on loopback: nothing listens there.
    let down = calldock().args(["call", "bob", "--user", "alice", "--server", "http://127.0.0.1:9"]).output().unwrap();
    assert_eq!(down.status.code(), Some(3), "{}", text(&down));
    assert!(
        text(&down).contains("cannot reach the server") && text(&down).contains("server_unreachable"),
        "{}",
        text(&down)
    );
}

#[test]
fn help_documents_exit_codes() {
    let out = calldock().args(["call", "--help"]).output().unwrap();
    let help = text(&out);
    assert!(help.contains("Exit codes: 0 success; 1 the call or check did not succeed"), "{help}");
}

#[test]
fn conformance_passes_against_the_reference_server() {
    let server = ServerProcess::start(&[]);
    let out = calldock().args(["conformance", "--server", &server.base]).output().unwrap();
    let report = text(&out);
    println!("{report}");
    assert_eq!(out.status.code(), Some(0), "{report}");
    let passes = report.lines().filter(|l| l.starts_with("PASS")).count();
    assert_eq!(passes, calldock_conformance::CHECKS.len(), "{report}");
    assert!(!report.contains("FAIL"));
}

#[test]
fn conformance_fails_against_something_that_is_not_a_calldock_server() {
    // A plain HTTP server that answers 404 to everything: every check must fail, exit 1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let out = calldock().args(["conformance", "--server", &format!("http://{addr}"), "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(report["passed"], 0, "{report}");
}

#[test]
fn a_missing_microphone_file_is_a_usage_error() {
    let out = calldock().args(["call", "bob", "--user", "alice", "--mic", "/nonexistent/speech.wav"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--mic /nonexistent/speech.wav: no such file"), "{}", text(&out));
    let out = calldock().args(["call", "bob", "--user", "alice", "--speaker", "hw:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not a speaker; give a device id from `calldock devices`"), "{}", text(&out));
}

/// Processing is off: a WAV microphone has no acoustic echo to cancel.
#[test]
fn two_processes_hold_an_audio_call_with_wav_devices() {
    let server = ServerProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (alice_mic, alice_says) = speak(dir.path(), "alice.wav", "Hello Bob, this is Alice calling to test the line.");
    let (bob_mic, bob_says) = speak(dir.path(), "bob.wav", "Hi Alice, I can hear you clearly. How are you today?");
    let (alice_ear, bob_ear) = (dir.path().join("alice-heard.wav"), dir.path().join("bob-heard.wav"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let media = |mic: &std::path::Path, ear: &std::path::Path| {
        vec![
            "--mic".to_owned(),
            s(mic),
            "--speaker".into(),
            s(ear),
            "--bind".into(),
            "127.0.0.1:0".into(),
            "--no-processing".into(),
        ]
    };
    let bob_args: Vec<String> =
        ["--user", "bob"].iter().map(|a| a.to_string()).chain(media(&bob_mic, &bob_ear)).collect();
    let (bob, _) = answerer(&server, &bob_args.iter().map(String::as_str).collect::<Vec<_>>());
    let alice_args: Vec<String> = ["call", "bob", "--user", "alice", "--duration", "4.5"]
        .iter()
        .map(|a| a.to_string())
        .chain(media(&alice_mic, &alice_ear))
        .collect();
    let alice = run(&server, &alice_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(alice.status.code(), Some(0), "{}", text(&alice));
    assert_eq!(wait(bob, Duration::from_secs(10)), 0);
    for (said, heard, who) in [(&alice_says, &bob_ear, "alice → bob"), (&bob_says, &alice_ear, "bob → alice")] {
        let (samples, _) = calldock_audio::wav::read_mono(heard).expect("speaker file written");
        let (delay, ncc) = calldock_media::analysis::delay_ms(said, &samples, 48_000, 2000).expect("audio to compare");
        // Both processes start their WAV timelines when media connects (within a few ms of
        // each other), so this is the mouth-to-ear delay to that precision.
        println!("{who}: ncc {ncc:.3}, mouth-to-ear {delay:.0} ms (WAV devices, two processes)");
        assert!(ncc >= 0.8, "{who}: ncc {ncc}");
    }
}

/// The echo test: the caller's own speech comes back from the server's echo bot.
#[test]
fn echo_test_returns_the_callers_speech() {
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let (mic, said) = speak(dir.path(), "me.wav", "Testing, one, two, three. Can you hear me?");
    let ear = dir.path().join("echo.wav");
    let out = run(
        &server,
        &[
            "call",
            "echo",
            "--user",
            "alice",
            "--mic",
            mic.to_str().unwrap(),
            "--speaker",
            ear.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--no-processing",
            "--duration",
            "4",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (heard, _) = calldock_audio::wav::read_mono(&ear).expect("speaker file written");
    let (delay, ncc) = calldock_media::analysis::delay_ms(&said, &heard, 48_000, 2000).expect("audio to compare");
    // One process, one timeline: the exact mouth-to-ear delay through the echo bot and back.
    println!("echo: ncc {ncc:.3}, mouth-to-ear {delay:.0} ms through the echo bot (WAV devices)");
    assert!(ncc >= 0.8, "ncc {ncc}");
}

/// The video echo test: a camera (a Y4M file of numbered pictures) in a video call to the echo
/// bot, and the pictures that come back written out with `--video-out`.
#[test]
fn video_echo_test_returns_the_callers_pictures() {
    use calldock_video::test_pattern::{counter, pattern};
    let _alone = one_video_call_at_a_time();
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let camera = support::pattern_y4m(dir.path(), "camera.y4m", 60);
    let received = dir.path().join("received.y4m");
    let out = run(
        &server,
        &[
            "call",
            "echo",
            "--video",
            "--user",
            "alice",
            "--camera",
            camera.to_str().unwrap(),
            "--video-out",
            received.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--stats",
            "--json",
            "--duration",
            "4",
        ],
    );
    let output = text(&out);
    assert_eq!(out.status.code(), Some(0), "{output}");
    let (width, height, pictures) = support::read_y4m(&received);
    assert_eq!((width, height), (640, 480));
    let (mut indices, mut psnrs) = (Vec::new(), Vec::new());
    for picture in pictures {
        let index = counter(&picture);
        assert!(index < 60, "frame {} reads as {index}", indices.len());
        let sent = pattern(640, 480, index);
        // The colour came through: the pattern's chroma ramps, within a few levels.
        let (u, _) = picture.chroma();
        let off = u.iter().zip(sent.chroma().0).map(|(&a, &b)| f64::from(a.abs_diff(b))).sum::<f64>() / u.len() as f64;
        assert!(off < 6.0, "frame {} ({index}): chroma off by {off:.1} on average", indices.len());
        let psnr = picture.luma_psnr(&sent);
        // A wrong picture would be near 10 dB; a key frame the receiver asked for comes at a
        // coarser quantizer than the frames after it (constant bitrate), so each frame need only
        // be clearly itself, and the run as a whole good.
        assert!(psnr.unwrap() > 20.0, "frame {} ({index}) came back at {psnr:?} dB", indices.len());
        psnrs.push(psnr.unwrap());
        indices.push(index);
    }
    psnrs.sort_by(f64::total_cmp);
    let median = psnrs[psnrs.len() / 2];
    assert!(median > 30.0, "median luma PSNR {median:.1} dB");
    // Four seconds at 30 frames a second, less the call's setup.
    assert!(indices.len() >= 75, "{} pictures came back:\n{output}", indices.len());
    let in_order = indices.windows(2).filter(|w| w[1] == (w[0] + 1) % 60).count();
    assert!(in_order + 3 >= indices.len(), "pictures out of order or missing: {indices:?}");
    let video_stats: Vec<serde_json::Value> = output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["event"] == "stats")
        .filter_map(|line| line.get("video").cloned())
        .collect();
    let last = video_stats.last().unwrap_or_else(|| panic!("no video figures in the stats:\n{output}"));
    assert!(last["received_fps"].as_f64().unwrap() >= 25.0, "{last}");
    assert_eq!(last["received_width"], 640, "{last}");
    assert_eq!(last["undecodable_frames"], 0, "nothing is lost on loopback: {last}");
    println!("video echo: {} pictures back in 4 s; last second {last}", indices.len());
}

/// Support's way to replay a camera problem mid-call: `camera SOURCE` on stdin switches the
/// camera of a video call without renegotiating, a camera that cannot be opened leaves the one
/// in use, and `camera off`/`camera on` stop and restart the picture.
#[test]
fn a_video_call_switches_cameras_mid_call_and_keeps_its_camera_when_the_new_one_fails() {
    use calldock_video::test_pattern::counter;
    let _alone = one_video_call_at_a_time();
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let first = support::numbered_y4m(dir.path(), "first.y4m", 0..60);
    let second = support::numbered_y4m(dir.path(), "second.y4m", 200..230);
    let received = dir.path().join("received.y4m");
    let mut command = calldock();
    command.args(["call", "echo", "--video", "--user", "alice", "--bind", "127.0.0.1:0", "--stats", "--json"]);
    command.args(["--camera", first.to_str().unwrap(), "--video-out", received.to_str().unwrap()]);
    command.args(["--duration", "9", "--server", &server.base]);
    let mut alice = support::lines::LineProcess::start("alice", command);
    alice.wait_for("\"connected\"", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));

    alice.send("camera /nonexistent/unplugged.y4m");
    let refused = alice.wait_for("camera_refused", Duration::from_secs(5));
    assert!(refused.contains("unplugged.y4m"), "{refused}");
    std::thread::sleep(Duration::from_millis(1000));

    alice.send(&format!("camera {}", second.display()));
    alice.wait_for("second.y4m", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2000));
    alice.send("camera off");
    alice.wait_for("\"camera off\"", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2200));
    alice.send("camera on");
    alice.wait_for("\"camera on\"", Duration::from_secs(5));
    let (code, lines) = alice.finish(Duration::from_secs(20));
    let output = lines.join("\n");
    assert_eq!(code, 0, "{output}");

    let (_, _, pictures) = support::read_y4m(&received);
    let numbers: Vec<u32> = pictures.iter().map(counter).collect();
    let switch = numbers.iter().position(|&n| n >= 200).unwrap_or_else(|| panic!("never switched: {numbers:?}"));
    // The refused switch changed nothing: the first camera's pictures ran on, in order, until
    // the good switch.
    assert!(switch >= 60, "about 3 s of the first camera came back: {switch} pictures");
    assert!(numbers[..switch].iter().all(|&n| n < 60), "{numbers:?}");
    let in_order = numbers[..switch].windows(2).filter(|w| w[1] == (w[0] + 1) % 60).count();
    assert!(in_order + 3 >= switch, "the first camera's pictures out of order: {numbers:?}");
    // From the switch on, the second camera's only (its own numbers), from its first picture.
    assert_eq!(numbers[switch], 200, "{numbers:?}");
    assert!(numbers[switch..].iter().all(|&n| (200..230).contains(&n)), "{numbers:?}");
    assert!(
        numbers.len() - switch >= 60,
        "the second camera, before and after off/on: {} pictures",
        numbers.len() - switch
    );
    // While off, nothing was sent; once on again, pictures flowed.
    let stats: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["event"] == "stats")
        .filter_map(|line| line.get("video").cloned())
        .collect();
    assert!(
        stats.iter().any(|v| v["camera_off"] == true && v["sent_fps"].as_f64() == Some(0.0)),
        "a second with the camera off and nothing sent: {stats:?}"
    );
    let last = stats.last().expect("video stats");
    assert_eq!(last["camera_off"], false, "{last}");
    assert!(last["sent_fps"].as_f64().unwrap() >= 25.0, "{last}");
    assert!(last["received_fps"].as_f64().unwrap() >= 25.0, "{last}");
    println!("camera switch: {switch} pictures from the first camera, {} from the second", numbers.len() - switch);
}

/// The first start on a machine makes the log directory and writes the day's log there, with
/// nothing about it on standard error.
#[test]
fn a_first_start_makes_its_log_directory_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-used");
    let out = calldock()
        .env("CALLDOCK_DATA_DIR", &data)
        .env("CALLDOCK_FILE_LOG", "info")
        .args(["doctor", "--only", "codec", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Error reading the log directory"), "{stderr}");
    assert!(!stderr.contains("no log file is written"), "{stderr}");
    let logs: Vec<_> = std::fs::read_dir(data.join("logs")).expect("the log directory exists").flatten().collect();
    assert_eq!(logs.len(), 1, "one log file for the day: {logs:?}");
}
