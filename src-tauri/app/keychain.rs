//! The session token in the OS keychain (Secret Service, macOS Keychain, Windows Credential
//! Manager) through the `keyring` crate: the only place a credential is kept.
//!
//! A keychain that is locked or missing is an error with a code (`keychain_locked`,
//! `keychain_unavailable`), never a panic; the caller signs in afresh and goes on without a
//! saved session.

use std::sync::{Arc, Mutex};

use keyring::{CredentialBuilder, Entry};
use serde::Serialize;

use super::transport::IpcError;

/// The keychain's service name for Calldock's entries (the app identifier).
pub const SERVICE: &str = "dev.calldock.desktop";

/// What the UI shows about where the session is kept (`AppState.keychain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeychainStatus {
    Ok,
    Locked,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    /// The keychain exists but refuses access until unlocked (or the unlock prompt was dismissed).
    #[error("the OS keychain is locked ({0}): unlock it (log in to the desktop session) and sign in again")]
    Locked(String),
    /// No keychain to talk to (no Secret Service on this desktop), or it failed.
    #[error(
        "there is no usable OS keychain ({0}): install or start one (gnome-keyring, KWallet); meanwhile Calldock signs in at every start"
    )]
    Unavailable(String),
}

impl KeychainError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Locked(_) => "keychain_locked",
            Self::Unavailable(_) => "keychain_unavailable",
        }
    }

    pub fn status(&self) -> KeychainStatus {
        match self {
            Self::Locked(_) => KeychainStatus::Locked,
            Self::Unavailable(_) => KeychainStatus::Unavailable,
        }
    }

    fn of(e: keyring::Error) -> Self {
        match e {
            keyring::Error::NoStorageAccess(inner) => Self::Locked(inner.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<KeychainError> for IpcError {
    fn from(e: KeychainError) -> Self {
        IpcError::new(e.code(), e.to_string())
    }
}

/// Session tokens by account (`user@server`), one keychain entry each.
pub struct Keychain {
    builder: Box<CredentialBuilder>,
    /// The last entry used: some stores (and the test mock) keep state in the entry object.
    entry: Mutex<Option<(String, Arc<Entry>)>>,
}

impl Keychain {
    /// The platform's own keychain.
    pub fn native() -> Self {
        Self::with_builder(keyring::default::default_credential_builder())
    }

    /// A keychain over any credential store (tests use keyring's mock store).
    pub fn with_builder(builder: Box<CredentialBuilder>) -> Self {
        Self { builder, entry: Mutex::new(None) }
    }

    /// The entry that holds `account`'s token.
    pub fn entry(&self, account: &str) -> Result<Arc<Entry>, KeychainError> {
        let mut cached = self.entry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, entry)) = cached.as_ref()
            && name == account
        {
            return Ok(entry.clone());
        }
        let credential = self.builder.build(None, SERVICE, account).map_err(KeychainError::of)?;
        let entry = Arc::new(Entry::new_with_credential(credential));
        *cached = Some((account.to_owned(), entry.clone()));
        Ok(entry)
    }

    /// The saved token, or `None` when there is none (or one that cannot be used: it is only a
    /// shortcut past signing in).
    pub fn token(&self, account: &str) -> Result<Option<String>, KeychainError> {
        match self.entry(account)?.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(keyring::Error::BadEncoding(_) | keyring::Error::Ambiguous(_)) => {
                tracing::warn!("the saved session in the keychain is unreadable; signing in afresh");
                Ok(None)
            }
            Err(e) => Err(KeychainError::of(e)),
        }
    }

    pub fn store(&self, account: &str, token: &str) -> Result<(), KeychainError> {
        self.entry(account)?.set_password(token).map_err(KeychainError::of)
    }

    /// Removes the saved token; having none is not an error.
    pub fn forget(&self, account: &str) -> Result<(), KeychainError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(KeychainError::of(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use keyring::mock::MockCredential;

    use super::*;

    fn mock() -> Keychain {
        Keychain::with_builder(keyring::mock::default_credential_builder())
    }

    /// Makes the next keychain call for `account` fail with `error`.
    fn fail_next(keychain: &Keychain, account: &str, error: keyring::Error) {
        let entry = keychain.entry(account).unwrap();
        let credential: &MockCredential = entry.get_credential().downcast_ref().expect("a mock credential");
        credential.set_error(error);
    }

    fn platform(text: &str) -> Box<dyn std::error::Error + Send + Sync> {
        text.to_string().into()
    }

    #[test]
    fn tokens_are_stored_read_and_forgotten() {
        let keychain = mock();
        assert_eq!(keychain.token("alice@built-in"), Ok(None));
        keychain.store("alice@built-in", "t1").unwrap();
        assert_eq!(keychain.token("alice@built-in"), Ok(Some("t1".into())));
        keychain.forget("alice@built-in").unwrap();
        assert_eq!(keychain.token("alice@built-in"), Ok(None));
        keychain.forget("alice@built-in").expect("forgetting nothing is fine");
    }

    #[test]
    fn a_locked_keychain_is_an_error_code_and_the_next_call_works() {
        let keychain = mock();
        keychain.store("alice@built-in", "t1").unwrap();

        fail_next(&keychain, "alice@built-in", keyring::Error::NoStorageAccess(platform("collection is locked")));
        let error = keychain.token("alice@built-in").unwrap_err();
        assert_eq!(error.code(), "keychain_locked");
        assert_eq!(error.status(), KeychainStatus::Locked);
        let ipc = IpcError::from(error);
        assert_eq!(ipc.code, "keychain_locked");
        assert!(ipc.message.contains("unlock"), "{}", ipc.message);

        fail_next(&keychain, "alice@built-in", keyring::Error::NoStorageAccess(platform("prompt dismissed")));
        assert_eq!(keychain.store("alice@built-in", "t2").unwrap_err().code(), "keychain_locked");
        assert_eq!(keychain.token("alice@built-in"), Ok(Some("t1".into())), "unlocked again, the token is there");
    }

    #[test]
    fn a_missing_keychain_is_unavailable_for_every_operation() {
        let keychain = mock();
        for op in 0..3 {
            fail_next(
                &keychain,
                "bob@http://10.0.0.2:7878",
                keyring::Error::PlatformFailure(platform("org.freedesktop.secrets was not provided")),
            );
            let error = match op {
                0 => keychain.token("bob@http://10.0.0.2:7878").unwrap_err(),
                1 => keychain.store("bob@http://10.0.0.2:7878", "t").unwrap_err(),
                _ => keychain.forget("bob@http://10.0.0.2:7878").unwrap_err(),
            };
            assert_eq!(error.code(), "keychain_unavailable");
            assert_eq!(error.status(), KeychainStatus::Unavailable);
        }
    }

    #[test]
    fn an_unreadable_token_is_no_token() {
        let keychain = mock();
        fail_next(&keychain, "carol@built-in", keyring::Error::BadEncoding(vec![0xff, 0xfe]));
        assert_eq!(keychain.token("carol@built-in"), Ok(None));
    }
}
