//! The support bundle and the local call log, as a user meets them: the real binary with its
//! data dir (`CALLDOCK_DATA_DIR`) in a temporary directory. Secrets planted in the logs and the
//! config must not reach the bundle; a real echo call must leave its summary in `calls.jsonl`.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Output;

use calldock_journal::calls::{CallDirection, CallSummary, OngoingCall};
use serde_json::Value;
use support::{ServerProcess, calldock};

/// Shaped like the reference server's session tokens (`v1.<payload>.<signature>`).
const SESSION_TOKEN: &str = "v1.eyJ1c2VyIjoiYWxpY2UiLCJleHAiOjE3OTk5OTk5OTl9.Q2hlY2tTaWduYXR1cmVWYWx1ZTEyMzQ";
/// An opaque token with nothing but its key to give it away.
const OPAQUE_TOKEN: &str = "Zm9vYmFyLXNlc3Npb24tdG9rZW4";
const PASSWORD: &str = "correct-horse-battery-staple";
const TURN_USERNAME: &str = "1763800000:alice";
const TURN_CREDENTIAL: &str = "c2VjcmV0LXR1cm4tY3JlZA==";
const TURN_SECRET: &str = "shared-turn-secret-42";
const ADDRESSES: [&str; 4] = ["203.0.113.7", "192.168.1.23", "2001:db8:85a3::8a2e:370:7334", "2001:db8::42"];

fn plant_secrets(data_dir: &Path) {
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = format!(
        "2026-11-01T10:00:00.000000Z  INFO calldock_engine: signed in; Authorization: Bearer {SESSION_TOKEN}\n\
         2026-11-01T10:00:00.100000Z  INFO calldock_engine: GET /v1/ws?token={OPAQUE_TOKEN}&v=1\n\
         2026-11-01T10:00:00.200000Z  WARN calldock_engine: login {{\"user\":\"alice\",\"password\": \"{PASSWORD}\"}}\n\
         2026-11-01T10:00:00.300000Z  INFO calldock_engine::ice_servers: [{{\"urls\":[\"turn:{ip}:3478\"],\"username\":\"{TURN_USERNAME}\",\"credential\":\"{TURN_CREDENTIAL}\"}}]\n\
         2026-11-01T10:00:00.400000Z  INFO calldock_peer: candidate {ip}:54321 typ srflx raddr {lan} rport 5000, relay from {v6}\n\
         2026-11-01T10:00:00.500000Z  INFO calldock_server: listening on 127.0.0.1:7878; call ended normally\n",
        ip = ADDRESSES[0],
        lan = ADDRESSES[1],
        v6 = ADDRESSES[2],
    );
    std::fs::write(logs.join("calldock.2026-11-01.log"), log).unwrap();
    let config = format!(
        "server = \"http://{ip}:7878\"\n\
         session_token = \"{OPAQUE_TOKEN}\"\n\
         password = \"{PASSWORD}\"\n\
         turn_secret = \"{TURN_SECRET}\"\n\n\
         [[ice_servers]]\n\
         urls = [\"turn:[{v6}]:3478\"]\n\
         username = \"{TURN_USERNAME}\"\n\
         credential = \"{TURN_CREDENTIAL}\"\n",
        ip = ADDRESSES[0],
        v6 = ADDRESSES[3],
    );
    std::fs::write(data_dir.join("config.toml"), config).unwrap();
    let summary = OngoingCall::new("c0ffee", "bob", CallDirection::Outgoing, "audio", 1_763_800_000_000)
        .finish(1_763_800_030_000, "hangup-local");
    let line = serde_json::to_string(&summary).unwrap();
    // A summary, then one cut short by a crash.
    std::fs::write(data_dir.join("calls.jsonl"), format!("{line}\n{}", &line[..line.len() / 2])).unwrap();
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The archive's tar stream (to search every byte of it, headers too) and its members by name.
fn unpack(bundle: &Path) -> (Vec<u8>, BTreeMap<String, String>) {
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(bundle).expect("the bundle was written"))
        .read_to_end(&mut tar_bytes)
        .expect("the bundle is gzip");
    let mut members = BTreeMap::new();
    for entry in tar::Archive::new(&tar_bytes[..]).entries().expect("the bundle is a tar archive") {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut content = String::new();
        entry.read_to_string(&mut content).expect("every member is text");
        members.insert(name.strip_prefix("calldock-bundle/").expect("under the top directory").to_owned(), content);
    }
    (tar_bytes, members)
}

fn json(members: &BTreeMap<String, String>, name: &str) -> Value {
    let text = members.get(name).unwrap_or_else(|| panic!("no {name} in {:?}", members.keys()));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}"))
}

#[test]
fn the_bundle_has_every_member_and_none_of_the_planted_secrets() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    plant_secrets(data.path());
    let bundle = out.path().join("support.tar.gz");
    let run = calldock()
        .args(["doctor", "--only", "codec", "--bundle"])
        .arg(&bundle)
        .env("CALLDOCK_DATA_DIR", data.path())
        .output()
        .unwrap();
    let said = text(&run);
    // The codec check may warn on a loaded machine; the bundle is written either way.
    assert!(matches!(run.status.code(), Some(0 | 1)), "{said}");
    assert!(said.contains("codec"), "the report is printed: {said}");
    assert!(said.contains(&format!("support bundle written to {}", bundle.display())), "{said}");

    let (tar_bytes, members) = unpack(&bundle);
    let raw = String::from_utf8_lossy(&tar_bytes);
    let secrets = [SESSION_TOKEN, OPAQUE_TOKEN, PASSWORD, TURN_USERNAME, TURN_CREDENTIAL, TURN_SECRET].into_iter();
    for secret in secrets.chain(ADDRESSES) {
        assert!(!raw.contains(secret), "{secret:?} is in the bundle");
    }

    for name in ["manifest.json", "system.json", "devices.json", "report.json", "calls.jsonl", "config.toml"] {
        assert!(members.contains_key(name), "no {name} in {:?}", members.keys());
    }
    let system = json(&members, "system.json");
    assert!(system["cpu"]["logical_cores"].as_u64().unwrap_or(0) >= 1, "{system}");
    assert!(system["memory"]["total_bytes"].as_u64().unwrap_or(0) > 0, "{system}");
    assert_eq!(system["calldock_version"], env!("CARGO_PKG_VERSION"));
    assert!(system["os"]["family"].is_string() && system["audio"]["host"].is_string(), "{system}");
    let devices = json(&members, "devices.json");
    assert!(devices["devices"].is_array(), "{devices}");
    assert!(devices["error"].is_null() || devices["error"]["code"].is_string(), "{devices}");
    let report = json(&members, "report.json");
    assert_eq!(report["checks"][0]["check"], "codec", "{report}");
    let manifest = json(&members, "manifest.json");
    assert!(manifest["redactions"].as_u64().unwrap_or(0) >= 10, "{manifest}");
    let notes = manifest["notes"].to_string();
    assert!(notes.contains("1 unreadable line(s) in the call log were skipped"), "{notes}");

    // The call log: the good line kept, the cut one left out, every line a summary.
    let calls: Vec<CallSummary> = members["calls.jsonl"]
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].call_id.as_str(), calls[0].duration_ms), ("c0ffee", 0));

    // The planted log and config are there, with markers where the secrets were and the rest
    // untouched; loopback addresses are kept (docs/doctor.md says why).
    let log = &members["logs/calldock.2026-11-01.log"];
    assert!(log.contains("Authorization: [redacted]") && log.contains("token=[redacted]&v=1"), "{log}");
    assert!(log.contains("candidate [redacted-ip]:54321") && log.contains("relay from [redacted-ip]"), "{log}");
    assert!(log.contains("listening on 127.0.0.1:7878; call ended normally"), "{log}");
    let config = &members["config.toml"];
    assert!(config.contains("password = \"[redacted]\"") && config.contains("credential = \"[redacted]\""), "{config}");
    assert!(config.contains("[[ice_servers]]"), "{config}");
}

#[test]
fn a_bundle_that_cannot_be_written_is_an_error_after_the_report() {
    let data = tempfile::tempdir().unwrap();
    let bundle = data.path().join("no-such-dir/support.tar.gz");
    let run = calldock()
        .args(["doctor", "--only", "codec", "--bundle"])
        .arg(&bundle)
        .env("CALLDOCK_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("codec"), "the report still prints: {}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("cannot write the support bundle to") && stderr.contains("no-such-dir"), "{stderr}");
    assert!(stderr.contains("[bundle_write_failed]"), "{stderr}");
    assert!(!bundle.exists());
}

/// A real call to the echo bot on loopback leaves one summary, and the day's log file.
#[test]
fn an_echo_call_leaves_its_summary_in_the_call_log() {
    let server = ServerProcess::start(&["--media-bind", "127.0.0.1:0"]);
    let data = tempfile::tempdir().unwrap();
    let run = calldock()
        .args(["call", "echo", "--user", "alice", "--server", &server.base])
        .args(["--mic", "silence", "--speaker", "null", "--bind", "127.0.0.1:0", "--no-processing"])
        .args(["--duration", "2.5"])
        .env("CALLDOCK_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));

    let log = std::fs::read_to_string(data.path().join("calls.jsonl")).expect("calls.jsonl written");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    let call: CallSummary = serde_json::from_str(lines[0]).expect("a summary");
    assert_eq!(call.peer, "echo");
    assert_eq!(call.direction, CallDirection::Outgoing);
    assert_eq!(call.media, "audio");
    assert_eq!(call.end_reason, "hangup-local");
    assert!((2_400..10_000).contains(&call.duration_ms), "{call:?}");
    let connected = call.connected_at_ms.expect("it connected");
    assert!(call.started_at_ms <= connected && connected + call.duration_ms == call.ended_at_ms, "{call:?}");
    let quality = call.quality.expect("a media call has statistics");
    assert!(quality.samples >= 1, "{quality:?}");
    assert!(quality.mos_worst > 1.0 && quality.mos_worst <= quality.mos_mean && quality.mos_mean <= 5.0, "{quality:?}");
    assert_eq!(quality.local_candidate.as_deref(), Some("host"), "{quality:?}");

    // The log file of the day has the call's media events (file filter: calldock at info).
    let logs: Vec<String> = std::fs::read_dir(data.path().join("logs"))
        .expect("a log dir")
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    assert!(logs.iter().any(|text| text.contains("media connected")), "{logs:?}");
}
