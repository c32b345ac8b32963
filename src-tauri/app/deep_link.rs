//! `calldock://call/<user>` links. A link only opens the pre-join screen for that user; the UI
//! never calls without a click, so a link from a web page cannot place a call by itself.

use serde::Serialize;

pub const SCHEME: &str = "calldock";

/// What a link asks for (the `deep-link` event's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DeepLink {
    Call { user_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeepLinkError {
    #[error("not a calldock:// link")]
    NotCalldock,
    #[error("calldock links are calldock://call/<user>")]
    Unknown,
    #[error("{0:?} is not a user name")]
    BadUser(String),
}

/// Reads a link. User names follow the reference server's rule, so nothing else (paths,
/// escapes, scripts) reaches the UI.
pub fn parse(text: &str) -> Result<DeepLink, DeepLinkError> {
    let url = url::Url::parse(text.trim()).map_err(|_| DeepLinkError::NotCalldock)?;
    if url.scheme() != SCHEME {
        return Err(DeepLinkError::NotCalldock);
    }
    if url.host_str() != Some("call") || !url.username().is_empty() || url.password().is_some() || url.port().is_some()
    {
        return Err(DeepLinkError::Unknown);
    }
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    let user = path.strip_suffix('/').unwrap_or(path);
    if user.is_empty() || user.contains('/') {
        return Err(DeepLinkError::Unknown);
    }
    super::settings::check_user_name(user).map_err(|_| DeepLinkError::BadUser(user.to_owned()))?;
    Ok(DeepLink::Call { user_id: user.to_owned() })
}

/// Whether a command line is the OS opening a link (`calldock calldock://call/bob` on Linux
/// and Windows): then it starts the window, not a headless command.
pub fn is_launch_link<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    match args {
        [_program, link] => link.as_ref().to_str().is_some_and(|l| l.starts_with("calldock:")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_links_name_a_user() {
        assert_eq!(parse("calldock://call/bob"), Ok(DeepLink::Call { user_id: "bob".into() }));
        assert_eq!(parse("calldock://call/ada.lovelace/"), Ok(DeepLink::Call { user_id: "ada.lovelace".into() }));
        assert_eq!(parse("calldock://call/bob?video=1"), Ok(DeepLink::Call { user_id: "bob".into() }));
        assert_eq!(
            serde_json::to_value(parse("calldock://call/bob").unwrap()).unwrap(),
            serde_json::json!({"action": "call", "user_id": "bob"})
        );
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(parse("https://call/bob"), Err(DeepLinkError::NotCalldock));
        assert_eq!(parse("not a url"), Err(DeepLinkError::NotCalldock));
        assert_eq!(parse("calldock://hangup/bob"), Err(DeepLinkError::Unknown));
        assert_eq!(parse("calldock://call/"), Err(DeepLinkError::Unknown));
        assert_eq!(parse("calldock://call/bob/extra"), Err(DeepLinkError::Unknown));
        assert_eq!(parse("calldock://eve@call/bob"), Err(DeepLinkError::Unknown));
        assert_eq!(parse("calldock://call:99/bob"), Err(DeepLinkError::Unknown));
        assert_eq!(parse("calldock://call/Bob"), Err(DeepLinkError::BadUser("Bob".into())));
        assert_eq!(parse("calldock://call/%3Cscript%3E"), Err(DeepLinkError::BadUser("%3Cscript%3E".into())));
        assert!(parse("calldock://call/echo%2F..").is_err());
    }

    #[test]
    fn only_a_lone_link_argument_is_a_launch_link() {
        assert!(is_launch_link(&["calldock", "calldock://call/bob"]));
        assert!(!is_launch_link(&["calldock"]));
        assert!(!is_launch_link(&["calldock", "doctor"]));
        assert!(!is_launch_link(&["calldock", "calldock://call/bob", "--json"]));
    }
}
