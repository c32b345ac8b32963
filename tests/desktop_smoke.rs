//! The real desktop app under Xvfb: it opens its window, starts the built-in server (answering
//! `/v1/` on loopback), stays up, and a second launch with a `calldock://` link hands off to it
//! and exits. And the headless commands never need a display.
//!
//! Each app runs with a private X server (Xvfb, `-displayfd` picks a free display), a private
//! D-Bus session (the single-instance lock lives there) and temporary home, config and data
//! dirs, so it touches nothing of the machine's.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::desktop::{self, Display, START_WAIT, SessionBus, first_line};
use support::{Running, calldock};

/// `calldock` with the window's environment: the display, the bus, and private dirs.
fn app(display: &Display, bus: &SessionBus, home: &Path) -> Command {
    let mut command = calldock();
    desktop::window_env(&mut command, display, bus, home);
    // Calls would use these instead of sound devices; this test makes none, but the app must
    // not open real devices on a CI machine either.
    command.env("CALLDOCK_VIRTUAL_MIC", "silence").env("CALLDOCK_VIRTUAL_SPEAKER", "null");
    command
}

/// A plain HTTP/1.0 GET on loopback: status line and body.
fn get(base: &str, path: &str) -> (String, String) {
    let host = base.strip_prefix("http://").expect("an http URL");
    let mut stream = TcpStream::connect(host).expect("the built-in server accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("a reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

#[test]
fn the_window_starts_the_built_in_server_and_a_second_launch_hands_off_its_link() {
    let display = desktop::xvfb();
    let bus = desktop::session_bus();
    let home = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let mut first = app(&display, &bus, home.path()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let line = first_line(&mut first, START_WAIT, "the app");
    let mut first = Running(first);
    let base = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(
        line.starts_with("calldock: built-in server listening on http://127.0.0.1:"),
        "unexpected first line from the app: {line:?}"
    );
    eprintln!("built-in server up {} ms after launch", started.elapsed().as_millis());

    let (status, body) = get(&base, "/v1/info");
    assert!(status.contains(" 200 "), "GET /v1/info: {status}");
    let info: serde_json::Value = serde_json::from_str(&body).expect("/v1/info is JSON");
    assert!(info["server"].as_str().is_some_and(|s| s.starts_with("calldock-server/")), "{info}");

    // The window keeps running (WebKit loaded the UI without taking the process down).
    std::thread::sleep(Duration::from_secs(3));
    assert!(first.0.try_wait().unwrap().is_none(), "the app exited on its own");
    let config = home.path().join("config/dev.calldock.desktop");
    assert!(config.join("device-id").is_file(), "the app keeps its files in its own config dir");
    assert!(!config.join("settings.json").exists(), "a first run saves no settings before the user does");
    assert!(home.path().join("data/dev.calldock.desktop/built-in-server.db").is_file());

    // A second launch, as the OS does for a link: it hands the link to the first and exits.
    let mut second =
        Running(app(&display, &bus, home.path()).arg("calldock://call/bob").stdout(Stdio::null()).spawn().unwrap());
    assert_eq!(second.wait(Duration::from_secs(30)), 0, "the second launch exits at once");
    assert!(first.0.try_wait().unwrap().is_none(), "the first instance is still running");
    let (status, _) = get(&base, "/v1/info");
    assert!(status.contains(" 200 "), "the built-in server still answers: {status}");
}

#[test]
fn headless_commands_work_without_a_display() {
    let help = calldock().env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Without a command, opens the window"), "{text}");

    let doctor = calldock()
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["doctor", "--only", "codec", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}; stderr: {}", String::from_utf8_lossy(&doctor.stderr)));
    assert_eq!(report["checks"][0]["check"], "codec");
    assert_eq!(doctor.status.code(), Some(i32::from(report["exit_code"].as_u64().unwrap() as u8)));
    let stderr = String::from_utf8_lossy(&doctor.stderr);
    assert!(!stderr.contains("Gtk") && !stderr.contains("cannot open display"), "{stderr}");
}
