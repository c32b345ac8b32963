//! Short-lived TURN credentials in the TURN REST scheme that coturn implements with
//! `use-auth-secret`: the username is `expiry:user` (expiry in Unix seconds) and the password is
//! base64(HMAC-SHA1(shared secret, username)).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use calldock_protocol::{TurnCredentials, UnixMillis, UserId};
use hmac::{Hmac, Mac};
use sha1::Sha1;

#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// The `static-auth-secret` shared with coturn.
    pub shared_secret: String,
    /// `turn:` and `stun:` URIs handed to clients.
    pub uris: Vec<String>,
    pub ttl_seconds: u64,
}

pub fn credentials(config: &TurnConfig, user: &UserId, now: UnixMillis) -> TurnCredentials {
    let expiry = now.0 / 1000 + config.ttl_seconds;
    let username = format!("{expiry}:{user}");
    TurnCredentials {
        credential: password(&config.shared_secret, &username),
        username,
        ttl_seconds: config.ttl_seconds,
        uris: config.uris.clone(),
    }
}

/// The TURN REST password for a username.
pub fn password(shared_secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(shared_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_the_turn_rest_reference() {
        // Reference value computed independently: printf '1700000000:alice' |
        // openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(password("secret", "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }

    #[test]
    fn username_carries_expiry_and_user() {
        let config =
            TurnConfig { shared_secret: "s".into(), uris: vec!["turn:127.0.0.1:3478".into()], ttl_seconds: 600 };
        let c = credentials(&config, &"bob".into(), UnixMillis(1_000_000));
        assert_eq!(c.username, "1600:bob");
        assert_eq!(c.credential, password("s", "1600:bob"));
    }
}
