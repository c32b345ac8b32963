//! The support bundle's one redaction pass: everything that goes into a bundle is text, and all
//! of it goes through [`redact`] first.
//!
//! What is replaced, and by what:
//!
//! | what | examples | marker |
//! |---|---|---|
//! | calldock session tokens, JWTs | `v1.eyJ1c2VyIjoi….3q2-…`, `eyJhbGci….eyJzdWIi….sig` | `[redacted-token]` |
//! | `Authorization` header values, bearer tokens | `Authorization: Bearer abc…`, `bearer abc…` | `[redacted]` |
//! | values of secret-named keys, in any of the usual shapes | `token=…`, `"password": "…"`, `turn_secret = "…"`, `credential: Some("…")`, `--turn-secret …`, `"username": "…"` | `[redacted]` |
//! | ICE credentials | `a=ice-pwd:…` in SDP, `remotePwd: …` in webrtc's logs | `[redacted]` |
//! | passwords in URLs | `https://user:pass@host` | `[redacted]@` |
//! | TURN REST usernames (`expiry:user`) | `1700000000:alice` | `[redacted-turn-user]` |
//! | IPv4 and IPv6 addresses | `203.0.113.7`, `192.168.1.20`, `2001:db8::1`, `fe80::1%eth0` | `[redacted-ip]` |
//!
//! Loopback and unspecified addresses (`127.0.0.0/8`, `0.0.0.0`, `::1`, `::`) are kept: they
//! identify no one, and "bound to loopback only" is often the answer support is looking for.
//! A secret-named key's value is replaced whatever it is, so a log line or a config file in a
//! shape no pattern knows still loses its secrets as long as the key says what it holds.
//! JSON stays JSON: a quoted value is replaced inside its quotes, and an unquoted one after a
//! quoted key becomes a quoted marker.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::{Captures, Regex};

pub const REDACTED: &str = "[redacted]";
pub const REDACTED_TOKEN: &str = "[redacted-token]";
pub const REDACTED_TURN_USER: &str = "[redacted-turn-user]";
pub const REDACTED_IP: &str = "[redacted-ip]";

/// Text after redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    /// How many things were replaced.
    pub replacements: usize,
}

struct Patterns {
    /// `Authorization: <anything to the end of the line or the closing quote>`.
    authorization: Regex,
    bearer: Regex,
    /// The reference server's tokens: `v1.<base64url payload>.<base64url signature>`.
    calldock_token: Regex,
    jwt: Regex,
    url_password: Regex,
    /// `--turn-secret VALUE` on a command line.
    secret_flag: Regex,
    /// A secret-named key, its separator, and its value (see the module doc).
    secret_value: Regex,
    turn_rest_username: Regex,
    /// Runs that may hold an IPv6 address: validated by `Ipv6Addr`'s parser.
    ipv6_run: Regex,
    ipv4: Regex,
}

/// Secret-named keys end with one of these (`access_token`, `turn_secret`, `sessionToken`,
/// `CALLDOCK_TURN_SECRET`, `credentials`, ICE's `ice-pwd` in SDP and `remotePwd` in webrtc's
/// debug logs, …).
const SECRET_KEY: &str = r"[\w-]*?(?:token|password|passwd|pwd|ufrag|secret|credential|username|api[_-]?key)s?";

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let regex = |pattern: &str| Regex::new(pattern).expect("the redaction patterns are constants, tested to compile");
    Patterns {
        authorization: regex(r#"(?i)\b((?:proxy-)?authorization\\?["']?\s*[:=]\s*\\?["']?)([^\r\n"'\\]+)"#),
        bearer: regex(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"),
        calldock_token: regex(r"\bv1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        jwt: regex(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        url_password: regex(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+@"),
        secret_flag: regex(&format!(r"(?i)(--{SECRET_KEY})(\s+)([^\s-][^\s]*)")),
        secret_value: regex(&format!(
            r#"(?i)\b({SECRET_KEY})\b(\\?["']?\s*[:=]\s*(?:Some\()?)(\\"(?:[^"\\]|\\[^"])*\\"|"(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&)}}\]"'<>\\]+)"#
        )),
        turn_rest_username: regex(r"\b\d{9,11}:[A-Za-z0-9._@+-]+"),
        ipv6_run: regex(r"[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f.:]*"),
        ipv4: regex(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    }
});

/// `text` with tokens, passwords, TURN credentials and IP addresses replaced by markers.
pub fn redact(text: &str) -> Redacted {
    let p = &*PATTERNS;
    let mut count = 0;
    let mut text =
        replace(&p.authorization, text, &mut count, |c| (!is_marker(&c[2])).then(|| format!("{}{REDACTED}", &c[1])));
    text = replace(&p.bearer, &text, &mut count, |c| Some(format!("{} {REDACTED}", &c[1])));
    text = replace(&p.calldock_token, &text, &mut count, |_| Some(REDACTED_TOKEN.into()));
    text = replace(&p.jwt, &text, &mut count, |_| Some(REDACTED_TOKEN.into()));
    text = replace(&p.url_password, &text, &mut count, |c| Some(format!("{}{REDACTED}@", &c[1])));
    text = replace(&p.secret_flag, &text, &mut count, |c| {
        (!is_marker(&c[3])).then(|| format!("{}{}{REDACTED}", &c[1], &c[2]))
    });
    text = replace(&p.secret_value, &text, &mut count, secret_value);
    text = replace(&p.turn_rest_username, &text, &mut count, |_| Some(REDACTED_TURN_USER.into()));
    let text = redact_ipv6(&p.ipv6_run, &text, &mut count);
    let text = replace(&p.ipv4, &text, &mut count, |c| {
        let whole = c.get(0).expect("group 0 is the match");
        // `1.2.3.4.5` is a version, not an address followed by `.5`.
        let mut after = text[whole.end()..].chars();
        let dotted_on = after.next() == Some('.') && after.next().is_some_and(|c| c.is_ascii_digit());
        let dotted_before = text[..whole.start()].ends_with('.');
        match whole.as_str().parse::<Ipv4Addr>() {
            Ok(ip) if !dotted_on && !dotted_before && !ip.is_loopback() && !ip.is_unspecified() => {
                Some(REDACTED_IP.into())
            }
            _ => None,
        }
    });
    Redacted { text, replacements: count }
}

/// Replaces each match for which `with` gives a replacement, counting them; `None` keeps it.
fn replace(
    pattern: &Regex,
    text: &str,
    count: &mut usize,
    mut with: impl FnMut(&Captures) -> Option<String>,
) -> String {
    pattern
        .replace_all(text, |c: &Captures| match with(c) {
            Some(replacement) => {
                *count += 1;
                replacement
            }
            None => c[0].to_owned(),
        })
        .into_owned()
}

/// Something an earlier rule already put there.
fn is_marker(value: &str) -> bool {
    value.trim_start_matches(['"', '\'', '\\']).starts_with("[redacted")
}

/// The value of a secret-named key, replaced in the same quoting (see the module doc).
fn secret_value(c: &Captures) -> Option<String> {
    let (key, separator, value) = (&c[1], &c[2], &c[3]);
    if value.is_empty() || is_marker(value) || matches!(value, "null" | "None" | "\"\"" | "''" | "\\\"\\\"") {
        return None;
    }
    let quote = if value.starts_with("\\\"") || (separator.starts_with("\\\"") && !value.starts_with('"')) {
        "\\\""
    } else if value.starts_with('"') || separator.starts_with('"') {
        "\""
    } else if value.starts_with('\'') {
        "'"
    } else {
        ""
    };
    Some(format!("{key}{separator}{quote}{REDACTED}{quote}"))
}

/// IPv6 addresses: a run of hex digits, dots and colons that stands alone (not inside a word
/// such as `calldock_engine::media`) and that `Ipv6Addr` accepts, possibly after a `:port`.
fn redact_ipv6(run: &Regex, text: &str, count: &mut usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for found in run.find_iter(text) {
        let Some((start, end)) = ipv6_within(found.as_str()) else { continue };
        let (start, end) = (found.start() + start, found.start() + end);
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if word(text[..start].chars().next_back()) || word(text[end..].chars().next()) {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED_IP);
        copied = end;
        *count += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Where in `run` an address to redact is: the whole run, or the run less a leading `:` (as in
/// `ip:2001:db8::1`), a trailing `.` (end of a sentence) or a trailing `:port`.
fn ipv6_within(run: &str) -> Option<(usize, usize)> {
    let start = usize::from(run.starts_with(':') && !run.starts_with("::"));
    let body = run[start..].trim_end_matches('.');
    let without_port = body
        .rsplit_once(':')
        .filter(|(address, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && address.contains(':'))
        .map(|(address, _)| address);
    [Some(body), without_port].into_iter().flatten().find_map(|candidate| match candidate.parse::<Ipv6Addr>() {
        Ok(ip) if ip.is_loopback() || ip.is_unspecified() => None,
        Ok(_) => Some((start, start + candidate.len())),
        Err(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redacts, and checks that `secret` is gone and `marker` is there.
    fn gone(text: &str, secret: &str, marker: &str) -> String {
        let out = redact(text);
        assert!(!out.text.contains(secret), "{secret:?} survived in {:?}", out.text);
        assert!(out.text.contains(marker), "no {marker:?} in {:?}", out.text);
        assert!(out.replacements > 0);
        out.text
    }

    #[test]
    fn calldock_session_tokens_and_jwts_are_replaced_wherever_they_are() {
        let token = "v1.eyJ1c2VyIjoiYWxpY2UiLCJleHAiOjE3MDB9.q2S3xY9_Zz-8kLmNopQrStUv";
        assert_eq!(gone(&format!("refreshed {token} ok"), token, REDACTED_TOKEN), "refreshed [redacted-token] ok");
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        gone(&format!("got {jwt}"), jwt, REDACTED_TOKEN);
    }

    #[test]
    fn authorization_headers_and_bearer_tokens_are_replaced() {
        assert_eq!(
            gone("Authorization: Bearer abc123def456ghi", "abc123def456ghi", REDACTED),
            "Authorization: [redacted]"
        );
        assert_eq!(
            gone(r#"{"authorization":"Basic dXNlcjpwYXNz"}"#, "dXNlcjpwYXNz", REDACTED),
            r#"{"authorization":"[redacted]"}"#
        );
        assert_eq!(
            gone("sent bearer Zm9vYmFyYmF6cXV1eA== upstream", "Zm9vYmFy", REDACTED),
            "sent bearer [redacted] upstream"
        );
        // Prose about tokens is left alone.
        assert_eq!(redact("the bearer token expired").text, "the bearer token expired");
    }

    #[test]
    fn tokens_in_keys_and_query_strings_are_replaced() {
        assert_eq!(gone("GET /v1/ws?token=s3cr3tT0k&x=1", "s3cr3tT0k", REDACTED), "GET /v1/ws?token=[redacted]&x=1");
        assert_eq!(gone("session_token: abc.def", "abc.def", REDACTED), "session_token: [redacted]");
        gone(r#"{"accessToken":"zzzz-yyyy"}"#, "zzzz-yyyy", REDACTED);
    }

    #[test]
    fn passwords_are_replaced_in_every_usual_shape() {
        assert_eq!(gone("login password=hunter2 user=bob", "hunter2", REDACTED), "login password=[redacted] user=bob");
        assert_eq!(
            gone(r#"{"password": "hunter2", "n": 1}"#, "hunter2", REDACTED),
            r#"{"password": "[redacted]", "n": 1}"#
        );
        assert_eq!(gone(r#"password = "hunter 2""#, "hunter 2", REDACTED), r#"password = "[redacted]""#);
        assert_eq!(
            gone("Config { password: Some(\"hunter2\") }", "hunter2", REDACTED),
            "Config { password: Some(\"[redacted]\") }"
        );
        assert_eq!(gone("db_passwd='x y'", "x y", REDACTED), "db_passwd='[redacted]'");
        gone("https://bob:hunter2@example.org/path", "hunter2", REDACTED);
        // JSON logged inside a JSON string, quotes escaped.
        let nested = r#"{"frame":"{\"type\":\"login\",\"password\":\"hunter2\"}"}"#;
        let out = gone(nested, "hunter2", REDACTED);
        let value: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert!(value["frame"].as_str().unwrap().contains(r#""password":"[redacted]""#), "{out}");
    }

    #[test]
    fn turn_credentials_are_replaced() {
        let ice = r#"{"urls":["turn:203.0.113.9:3478"],"username":"1700000000:alice","credential":"qP7+k2/x=="}"#;
        let out = redact(ice);
        for secret in ["1700000000:alice", "alice", "qP7+k2/x==", "203.0.113.9"] {
            assert!(!out.text.contains(secret), "{secret} in {}", out.text);
        }
        let value: serde_json::Value = serde_json::from_str(&out.text).expect("still JSON");
        assert_eq!(value["credential"], REDACTED);
        assert_eq!(value["username"], REDACTED);
        // A TURN REST username on its own, and the server's secret on a command line or in env.
        gone("allocating as 1700000000:alice on relay", "alice", REDACTED_TURN_USER);
        assert_eq!(
            gone("calldock serve --turn-secret s3cret", "s3cret", REDACTED),
            "calldock serve --turn-secret [redacted]"
        );
        gone("CALLDOCK_TURN_SECRET=s3cret", "s3cret", REDACTED);
        gone("IceServer { username: \"1700000000:bob\", credential: \"pw\" }", "bob", REDACTED);
        assert_eq!(
            gone("a=ice-ufrag:F7gI\r\na=ice-pwd:x9cnYkEQHdWpHkxq8AbYy9r3\r\n", "x9cnYkEQHdWpHkxq8AbYy9r3", REDACTED),
            "a=ice-ufrag:[redacted]\r\na=ice-pwd:[redacted]\r\n"
        );
        gone("Started agent: remoteUfrag: fqhaUZKW, remotePwd: YUEzONmWoCaX", "YUEzONmWoCaX", REDACTED);
        // SDP inside a JSON frame: the escaped line ends stay, and so does the JSON.
        let frame = r#"{"sdp":"v=0\r\na=ice-pwd:x9cnYkEQHdWpHkxq8AbYy9r3\r\na=setup:actpass\r\n"}"#;
        let out = gone(frame, "x9cnYkEQ", REDACTED);
        let value: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert!(value["sdp"].as_str().unwrap().contains("a=ice-pwd:[redacted]\r\na=setup:actpass"), "{out}");
    }

    #[test]
    fn an_unquoted_value_after_a_quoted_key_stays_json() {
        let out = redact(r#"{"username": 12345, "token": null}"#);
        let value: serde_json::Value = serde_json::from_str(&out.text).expect("still JSON");
        assert_eq!(value["username"], REDACTED);
        assert_eq!(value["token"], serde_json::Value::Null);
    }

    #[test]
    fn ipv4_addresses_are_replaced_except_loopback_and_unspecified() {
        assert_eq!(
            gone("candidate 203.0.113.7:3478 raddr 192.168.1.23 rport 5000", "203.0.113.7", REDACTED_IP),
            "candidate [redacted-ip]:3478 raddr [redacted-ip] rport 5000"
        );
        assert_eq!(
            redact("listening on 127.0.0.1:7878 and 0.0.0.0:0").text,
            "listening on 127.0.0.1:7878 and 0.0.0.0:0"
        );
        // Not addresses: versions and out-of-range numbers.
        assert_eq!(redact("libfoo 1.2.3.4.5, 999.1.1.1, v0.21.0").text, "libfoo 1.2.3.4.5, 999.1.1.1, v0.21.0");
    }

    #[test]
    fn ipv6_addresses_are_replaced_in_their_usual_forms() {
        assert_eq!(gone("from 2001:db8::7 ok", "2001:db8::7", REDACTED_IP), "from [redacted-ip] ok");
        assert_eq!(
            gone("http://[2001:db8:0:1::20]:7878/v1", "2001:db8", REDACTED_IP),
            "http://[[redacted-ip]]:7878/v1"
        );
        assert_eq!(gone("link fe80::1c2:33ff:fe44:5566%eth0", "fe80", REDACTED_IP), "link [redacted-ip]%eth0");
        assert_eq!(gone("mapped ::ffff:198.51.100.4.", "198.51.100.4", REDACTED_IP), "mapped [redacted-ip].");
        assert_eq!(gone("ip:2001:db8::1", "2001", REDACTED_IP), "ip:[redacted-ip]");
        gone("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "7334", REDACTED_IP);
        assert_eq!(redact("bound to ::1 and ::").text, "bound to ::1 and ::");
    }

    #[test]
    fn what_only_looks_like_an_address_is_kept() {
        for text in [
            "2026-11-22T07:04:59.123456Z WARN calldock_engine::media: call ended",
            "at 12:34:56, fingerprint sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
            "mac aa:bb:cc:dd:ee:ff, Self::face, crate::add",
            "pulseaudio:vmic.monitor, call_id 9f2c4e, duration_ms 30000",
        ] {
            let out = redact(text);
            assert_eq!(out.text, text);
            assert_eq!(out.replacements, 0, "{text}");
        }
    }

    #[test]
    fn replacements_are_counted_and_markers_are_not_redacted_again() {
        let out = redact("token=v1.abcdefghij.klmnopqrst from 203.0.113.7");
        assert_eq!(out.text, "token=[redacted-token] from [redacted-ip]");
        assert_eq!(out.replacements, 2);
        assert_eq!(redact(&out.text), Redacted { text: out.text.clone(), replacements: 0 });
    }
}
