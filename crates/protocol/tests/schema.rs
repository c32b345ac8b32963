//! Keeps `docs/protocol.schema.json` and the examples in `docs/protocol.md` true to the types.
//!
//! - `committed_schema_is_current`: the committed schema equals [`json_schema`]'s output.
//!   Regenerate it with `CALLDOCK_UPDATE_SCHEMA=1 cargo test -p calldock-protocol --test schema`.
//! - `doc_examples_parse`: every ```` ```json ```` block in `docs/protocol.md` parses into the
//!   type it shows, and serializes back to the same JSON (so a misspelled optional field, which
//!   a receiver would silently ignore, fails too). How a block is read depends on its info string:
//!   - ```` ```json ````: a WebSocket frame. It needs a `"type"`; with an `"id"` and no `"re"` it
//!     is a client frame (checked with [`parse_client_frame`]), otherwise a [`ServerMessage`].
//!   - ```` ```json rest:Session ````: a REST body of the named type.
//!   - ```` ```json lenient ````: a WebSocket frame that must parse but may carry extra fields
//!     (the examples of "unknown fields are ignored").
//! - `doc_covers_every_message_and_code`: every message type, REST body, error code and end
//!   reason appears in the document.

use std::path::PathBuf;

use calldock_protocol::{
    ClientMessage, History, LoginRequest, RestError, ServerInfo, ServerMessage, Session, TurnCredentials, json_schema,
    parse_client_frame,
};
use serde_json::Value;

const REGENERATE: &str = "CALLDOCK_UPDATE_SCHEMA=1 cargo test -p calldock-protocol --test schema";

fn docs_dir() -> PathBuf {
    // Read when run (cargo sets it), not when built: with one target dir shared by two clones,
    // cargo may reuse this binary for the other clone, and the built-in path is the first one's.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("..")
        .join("..")
        .join("docs")
}

fn generated_schema() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("the schema serializes");
    text.push('\n');
    text
}

#[test]
fn committed_schema_is_current() {
    let path = docs_dir().join("protocol.schema.json");
    let generated = generated_schema();
    if std::env::var("CALLDOCK_UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = match std::fs::read_to_string(&path) {
        Ok(text) => text.replace("\r\n", "\n"),
        Err(e) => panic!("cannot read {}: {e}\nGenerate it with:\n    {REGENERATE}", path.display()),
    };
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "{} is stale: it differs from calldock_protocol::json_schema() from line {line} on.\n\
             The wire types changed; regenerate the schema and commit it:\n    {REGENERATE}",
            path.display()
        );
    }
}

/// One fenced ```json block of the document.
struct Example {
    /// 1-based line of the opening fence.
    line: usize,
    /// The info string's words after `json`.
    tags: Vec<String>,
    text: String,
}

fn read_doc() -> String {
    let path = docs_dir().join("protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json_blocks(doc: &str) -> Vec<Example> {
    let mut blocks = Vec::new();
    let mut open: Option<Example> = None;
    let mut in_other_fence = false;
    for (index, line) in doc.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(example) = open.as_mut() {
            if trimmed.starts_with("```") {
                blocks.push(open.take().expect("a block is open"));
            } else {
                example.text.push_str(line);
                example.text.push('\n');
            }
            continue;
        }
        let Some(info) = trimmed.strip_prefix("```") else { continue };
        if in_other_fence {
            in_other_fence = false;
            continue;
        }
        let mut words = info.split_whitespace();
        if words.next() == Some("json") {
            open = Some(Example { line: index + 1, tags: words.map(str::to_owned).collect(), text: String::new() });
        } else {
            in_other_fence = true;
        }
    }
    assert!(open.is_none(), "docs/protocol.md ends inside a ```json block");
    blocks
}

/// Parses `value` as the type and, when `exact`, checks that it serializes back to the same JSON.
macro_rules! round_trip {
    ($ty:ty, $value:expr, $exact:expr) => {{
        let value: &Value = $value;
        match serde_json::from_value::<$ty>(value.clone()) {
            Err(e) => Err(e.to_string()),
            Ok(parsed) => match serde_json::to_value(&parsed) {
                Err(e) => Err(e.to_string()),
                Ok(again) => same_json(&again, value, $exact),
            },
        }
    }};
}

/// `again` is what the types made of `value`.
fn same_json(again: &Value, value: &Value, exact: bool) -> Result<(), String> {
    if exact && again != value {
        return Err(format!(
            "it parses, but not to the same JSON (a misspelled or extra field?); the types read it as\n{}",
            serde_json::to_string_pretty(again).unwrap_or_default()
        ));
    }
    Ok(())
}

fn check_rest(kind: &str, value: &Value) -> Result<(), String> {
    match kind {
        "ServerInfo" => round_trip!(ServerInfo, value, true),
        "LoginRequest" => round_trip!(LoginRequest, value, true),
        "Session" => round_trip!(Session, value, true),
        "TurnCredentials" => round_trip!(TurnCredentials, value, true),
        "History" => round_trip!(History, value, true),
        "RestError" => round_trip!(RestError, value, true),
        other => Err(format!("unknown REST type rest:{other}")),
    }
}

/// What a protocol example turned out to be: `(is_client, type)`.
fn check_frame(text: &str, value: &Value, exact: bool) -> Result<(bool, String), String> {
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err("a protocol example needs a string \"type\" (mark REST bodies ```json rest:Type)".into());
    };
    let is_client = value.get("id").is_some() && value.get("re").is_none();
    if is_client {
        let frame = parse_client_frame(text).map_err(|e| format!("not a valid client frame: {e}"))?;
        let again = serde_json::to_value(&frame).map_err(|e| e.to_string())?;
        same_json(&again, value, exact)?;
    } else {
        round_trip!(ServerMessage, value, exact).map_err(|e| format!("not a valid server message: {e}"))?;
    }
    Ok((is_client, kind.to_owned()))
}

#[derive(Default)]
struct Seen {
    client: Vec<String>,
    server: Vec<String>,
    rest: Vec<String>,
}

fn check_examples(doc: &str) -> (Seen, Vec<String>) {
    let mut seen = Seen::default();
    let mut failures = Vec::new();
    for example in json_blocks(doc) {
        let value: Value = match serde_json::from_str(&example.text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("line {}: not JSON: {e}\n{}", example.line, example.text));
                continue;
            }
        };
        let rest = example.tags.iter().find_map(|t| t.strip_prefix("rest:"));
        let lenient = example.tags.iter().any(|t| t == "lenient");
        let outcome = match rest {
            Some(kind) => check_rest(kind, &value).map(|()| seen.rest.push(kind.to_owned())),
            None => check_frame(&example.text, &value, !lenient)
                .map(|(is_client, kind)| if is_client { seen.client.push(kind) } else { seen.server.push(kind) }),
        };
        if let Err(e) = outcome {
            failures.push(format!("line {}: {e}\n{}", example.line, example.text));
        }
    }
    (seen, failures)
}

#[test]
fn doc_examples_parse() {
    let doc = read_doc();
    let (seen, failures) = check_examples(&doc);
    assert!(
        failures.is_empty(),
        "{} example(s) in docs/protocol.md do not match the wire types:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(seen.client.len() + seen.server.len() >= 30, "suspiciously few protocol examples were found");
}

/// The `const`/`enum` strings of a schema definition.
fn enum_values(schema: &Value, def: &str) -> Vec<String> {
    let def = &schema["properties"]["server_frame"]["$defs"][def];
    let mut values: Vec<String> =
        def["enum"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    for variant in def["oneOf"].as_array().into_iter().flatten() {
        values.extend(variant["const"].as_str().map(str::to_owned));
    }
    assert!(!values.is_empty(), "no values for {def} in the schema");
    values
}

#[test]
fn doc_covers_every_message_and_code() {
    let doc = read_doc();
    let (seen, _) = check_examples(&doc);
    let schema = json_schema();
    let mut missing = Vec::new();
    for kind in ClientMessage::KINDS {
        if !seen.client.iter().any(|k| k == kind) {
            missing.push(format!("client message \"{kind}\" has no example"));
        }
    }
    let server_kinds: Vec<&str> = schema["properties"]["server_frame"]["oneOf"]
        .as_array()
        .expect("server_frame is a oneOf")
        .iter()
        .filter_map(|v| v["properties"]["type"]["const"].as_str())
        .collect();
    assert!(server_kinds.len() >= 10, "cannot read the server message types from the schema");
    for kind in server_kinds {
        if !seen.server.iter().any(|k| k == kind) {
            missing.push(format!("server message \"{kind}\" has no example"));
        }
    }
    for kind in ["ServerInfo", "LoginRequest", "Session", "TurnCredentials", "History", "RestError"] {
        if !seen.rest.iter().any(|k| k == kind) {
            missing.push(format!("REST body {kind} has no example"));
        }
    }
    for def in ["ErrorCode", "EndReason", "FailureKind", "ParticipantState", "PresenceStatus"] {
        for value in enum_values(&schema, def) {
            if !doc.contains(&format!("| `{value}` |")) {
                missing.push(format!("{def} `{value}` has no row in a table"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/protocol.md is incomplete:\n{}", missing.join("\n"));
}
