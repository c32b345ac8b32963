//! `calldock doctor --only network` as QA runs it: the real binary against a real reference
//! server (`calldock serve`) with coturn (Debian's `turnserver`, TURN REST secret) on loopback,
//! and against what goes wrong: a wrong TURN secret, a server that is not there, STUN/TURN on a
//! UDP port that swallows everything, and no `--server` at all (the embedded server). Verdicts,
//! codes, messages and figures are checked from the `--json` report; each test prints how long
//! the check took.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::turn_server::TurnServerProcess;
use support::{ServerProcess, calldock};

/// The echo calls measure quality (RTT, jitter, loss, MOS): on a two-core machine two calls at
/// once would measure each other. One at a time.
static ONE_CALL_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `calldock serve` with TURN credentials (signed with `secret`) and STUN pointing at `addr`,
/// and the echo bot's media on loopback.
fn server_with_turn(secret: &str, addr: std::net::SocketAddr) -> ServerProcess {
    let turn = TurnServerProcess::uri(addr);
    let stun = format!("stun:{addr}");
    ServerProcess::start(&[
        "--turn-secret",
        secret,
        "--turn-uri",
        &turn,
        "--stun-uri",
        &stun,
        "--media-bind",
        "127.0.0.1:0",
    ])
}

/// The report of `calldock doctor --only network [--server URL] --json`, its exit code, and how
/// long the process took.
fn doctor_network(server: Option<&str>) -> (Value, i32, Duration) {
    let mut command = calldock();
    command.args(["doctor", "--only", "network", "--json"]);
    if let Some(url) = server {
        command.args(["--server", url]);
    }
    let started = Instant::now();
    let out = command.output().expect("calldock runs");
    let took = started.elapsed();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {}\n{}", text(&out.stdout), stderr(&out)));
    (report, out.status.code().expect("exited"), took)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// The network check's result, after printing its duration and summary.
fn network<'a>(name: &str, report: &'a Value, took: Duration) -> &'a Value {
    let checks = report["checks"].as_array().expect("a list of checks");
    assert_eq!(checks.len(), 1, "only the network check ran: {report:#}");
    let result = &checks[0];
    assert_eq!(result["check"], "network", "{report:#}");
    println!(
        "{name}: network check {:.2} s (process {:.2} s), {}: {}",
        result["figures"]["took_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        took.as_secs_f64(),
        result["verdict"],
        result["summary"].as_str().unwrap_or_default()
    );
    result
}

fn summary(result: &Value) -> &str {
    result["summary"].as_str().expect("a summary")
}

/// The echo call's figures, and that they are what a call through the echo bot gives.
fn assert_echo_call_measured(result: &Value) {
    let call = &result["figures"]["echo_call"];
    assert_eq!(call["outcome"], "measured", "{result:#}");
    assert!(call["samples"].as_u64().unwrap() >= 1, "{call:#}");
    let seconds = call["seconds"].as_f64().unwrap();
    assert!((0.8..=3.0).contains(&seconds), "a short call: {call:#}");
    assert!(call["rtt_ms"].as_f64().is_some_and(|rtt| rtt < 100.0), "loopback RTT: {call:#}");
    assert!(call["jitter_ms"].as_f64().unwrap() >= 0.0 && call["loss_percent"].as_f64().unwrap() >= 0.0);
    // Opus at 24 kb/s plus RTP: the echo comes back at about the rate it was sent.
    let (sent, received) = (call["send_kbps"].as_f64().unwrap(), call["receive_kbps"].as_f64().unwrap());
    assert!((15.0..80.0).contains(&sent) && (15.0..80.0).contains(&received), "{call:#}");
    let mos = call["mos"].as_f64().unwrap();
    assert!((1.0..=4.5).contains(&mos), "{call:#}");
    let label = call["quality"].as_str().unwrap();
    assert!(["excellent", "good", "fair", "poor", "bad"].contains(&label), "{call:#}");
    assert!(summary(result).contains(&format!("MOS {mos:.2} ({label})")), "{}", summary(result));
}

#[test]
fn a_reference_server_with_coturn_passes_with_a_relay_and_an_echo_call() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let turn = TurnServerProcess::start("doctor-secret");
    let server = server_with_turn(&turn.secret, turn.addr);
    let (report, code, took) = doctor_network(Some(&server.base));
    let result = network("coturn", &report, took);
    assert_eq!((code, &result["verdict"]), (0, &Value::from("pass")), "{report:#}");
    assert_eq!(result["code"], Value::Null);
    let figures = &result["figures"];
    assert_eq!(figures["server"], server.base.as_str());
    assert_eq!(figures["embedded"], false);

    let signaling = &figures["signaling"];
    assert_eq!(signaling["outcome"], "reached", "{figures:#}");
    assert!(signaling["agent"].as_str().unwrap().starts_with("calldock-server/"), "{signaling:#}");
    assert!(signaling["rtt_ms"].as_f64().unwrap() < 50.0, "{signaling:#}");

    let stun = &figures["stun"];
    assert_eq!(stun["outcome"], "gathered", "{figures:#}");
    assert_eq!(stun["server"], turn.addr.to_string());
    assert!(stun["reflexive"].as_str().unwrap().starts_with("127.0.0.1:"), "{stun:#}");

    let relay = &figures["turn"];
    assert_eq!(relay["outcome"], "allocated", "{figures:#}");
    assert!(relay["relay"].as_str().unwrap().starts_with("127.0.0.1:"), "a relay on coturn: {relay:#}");
    assert!(relay["took_ms"].as_f64().unwrap() < 1500.0, "{relay:#}");
    let through = &relay["throughput"];
    assert_eq!(through["outcome"], "measured", "{relay:#}");
    assert!(through["received_kbps"].as_f64().unwrap() >= 100.0, "loopback carries the burst: {through:#}");

    assert_echo_call_measured(result);
    assert!(summary(result).contains("TURN relay 127.0.0.1:"), "{}", summary(result));
    assert!(!summary(result).contains("only this machine"), "{}", summary(result));
    // About 2.5–3.5 s on loopback; the bound leaves room for a machine busy with builds (the
    // whole doctor run must stay under 10 s).
    assert!(figures["took_ms"].as_f64().unwrap() < 6000.0, "{figures:#}");
}

#[test]
fn a_wrong_turn_secret_fails_with_the_turn_authentication_message() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let turn = TurnServerProcess::start("coturns-secret");
    let server = server_with_turn("not-coturns-secret", turn.addr);
    let (report, code, took) = doctor_network(Some(&server.base));
    let result = network("wrong TURN secret", &report, took);
    assert_eq!((code, &result["verdict"]), (2, &Value::from("fail")), "{report:#}");
    assert_eq!(result["code"], "network_turn_auth_failed");
    assert!(
        summary(result).starts_with(
            "TURN authentication failed: the server's TURN secret does not match coturn's (the TURN server at"
        ),
        "{}",
        summary(result)
    );
    assert!(summary(result).contains("401"), "coturn's own answer: {}", summary(result));
    assert!(result["remedy"].as_str().unwrap().contains("static-auth-secret"), "{result:#}");
    let figures = &result["figures"];
    assert_eq!(figures["turn"]["outcome"], "auth_failed", "{figures:#}");
    // STUN needs no credentials, and a direct call still works: only the relay is broken.
    assert_eq!(figures["stun"]["outcome"], "gathered", "{figures:#}");
    assert_echo_call_measured(result);
}

#[test]
fn an_unreachable_server_fails_fast_with_its_address() {
    // A port nothing listens on: bound, then let go.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let (report, code, took) = doctor_network(Some(&url));
    let result = network("unreachable", &report, took);
    assert_eq!((code, &result["verdict"]), (2, &Value::from("fail")), "{report:#}");
    assert_eq!(result["code"], "network_server_unreachable");
    let message = summary(result);
    assert!(message.starts_with(&format!("cannot reach the server at {url}: ")), "{message}");
    assert!(message.ends_with("; check the address or your network"), "{message}");
    assert!(message.contains("refused"), "the reason: {message}");
    assert_eq!(result["figures"]["signaling"]["outcome"], "unreachable");
    assert_eq!(result["figures"]["echo_call"]["outcome"], "skipped");
    assert!(took < Duration::from_secs(2), "fast: {took:?}");

    // The table a person reads says the same, with the remedy below.
    let out = calldock().args(["doctor", "--only", "network", "--server", &url]).output().unwrap();
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{table}\n{}", stderr(&out));
    assert!(table.contains(&format!("FAIL     cannot reach the server at {url}: ")), "{table}");
    assert!(table.contains("remedy: Check the --server address"), "{table}");
}

#[test]
fn stun_and_turn_that_never_answer_say_udp_is_blocked() {
    // A UDP socket that reads nothing and answers nothing, where the server says STUN and TURN
    // are: as if a firewall dropped UDP while TCP (signaling) goes through.
    let black_hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = server_with_turn("any-secret", black_hole.local_addr().unwrap());
    let (report, code, took) = doctor_network(Some(&server.base));
    let result = network("UDP blocked", &report, took);
    assert_eq!((code, &result["verdict"]), (2, &Value::from("fail")), "{report:#}");
    assert_eq!(result["code"], "network_udp_blocked");
    let message = summary(result);
    assert!(message.starts_with("UDP looks blocked: STUN/TURN at 127.0.0.1:"), "{message}");
    assert!(message.contains("while signaling over TCP works"), "{message}");
    assert!(message.contains("cannot relay over TCP/TLS yet"), "{message}");
    assert!(result["remedy"].as_str().unwrap().contains("cannot relay calls over TCP/TLS yet"), "{result:#}");
    let figures = &result["figures"];
    assert_eq!(figures["signaling"]["outcome"], "reached", "{figures:#}");
    assert_eq!(figures["stun"]["outcome"], "no_answer", "{figures:#}");
    assert_eq!(figures["turn"]["outcome"], "no_answer", "{figures:#}");
    assert_eq!(figures["echo_call"]["outcome"], "skipped", "{figures:#}");
    let waited = figures["turn"]["waited_ms"].as_f64().unwrap();
    assert!((1400.0..2500.0).contains(&waited), "given up after about 1.5 s: {figures:#}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn without_a_server_the_embedded_one_passes_and_only_this_machine_is_checked() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (report, code, took) = doctor_network(None);
    let result = network("embedded server", &report, took);
    assert_eq!((code, &result["verdict"]), (0, &Value::from("pass")), "{report:#}");
    let figures = &result["figures"];
    assert_eq!(figures["embedded"], true);
    assert!(figures["server"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{figures:#}");
    assert!(summary(result).starts_with("only this machine was checked"), "{}", summary(result));
    assert_eq!(figures["signaling"]["outcome"], "reached", "{figures:#}");
    assert_eq!(
        (&figures["stun"]["outcome"], &figures["turn"]["outcome"]),
        (&"not_offered".into(), &"not_offered".into())
    );
    assert_echo_call_measured(result);
    assert!(figures["took_ms"].as_f64().unwrap() < 6000.0, "{figures:#}");
}
