//! Bearer tokens: `v1.<payload>.<signature>`, where the payload is base64url JSON of user,
//! device and expiry, and the signature is HMAC-SHA256 under a key the server keeps in its
//! database. Stateless to verify, so any node sharing the key accepts any node's tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calldock_protocol::{DeviceId, UnixMillis, UserId};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub user: UserId,
    pub device: DeviceId,
    pub expires_at: UnixMillis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this server signed (wrong format, wrong key, or tampered with).
    #[error("the token is not valid for this server; log in again")]
    Invalid,
    /// Signed by this server, but past its expiry.
    #[error("the session token has expired; log in again (clients refresh it before it expires)")]
    Expired,
}

pub struct TokenSigner {
    key: Vec<u8>,
}

impl TokenSigner {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("v1.{payload}.{sig}")
    }

    pub fn verify(&self, token: &str, now: UnixMillis) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)?;
        if claims.expires_at <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims { user: "alice".into(), device: "d1".into(), expires_at: UnixMillis(exp) }
    }

    #[test]
    fn issued_token_verifies_until_expiry() {
        let signer = TokenSigner::new(b"k".to_vec());
        let token = signer.issue(&claims(1000));
        assert_eq!(signer.verify(&token, UnixMillis(999)), Ok(claims(1000)));
        assert_eq!(signer.verify(&token, UnixMillis(1000)), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_invalid() {
        let signer = TokenSigner::new(b"k".to_vec());
        let token = signer.issue(&claims(1000));
        let other = TokenSigner::new(b"other".to_vec());
        assert_eq!(other.verify(&token, UnixMillis(0)), Err(TokenError::Invalid));
        let forged = token.replacen("v1.", "v1.x", 1);
        assert_eq!(signer.verify(&forged, UnixMillis(0)), Err(TokenError::Invalid));
        for junk in ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", "v1.!!.??"] {
            assert_eq!(signer.verify(junk, UnixMillis(0)), Err(TokenError::Invalid), "{junk}");
        }
    }
}
