//! The PulseAudio client cpal uses (the `pulseaudio` crate) sends the cookie it finds in
//! `$PULSE_COOKIE`, `~/.config/pulse/cookie` or `~/.pulse-cookie`, and with none it sends an
//! empty one, which a PulseAudio server rejects as a protocol error even when it lets anyone
//! in — so cpal silently falls back to ALSA. libpulse, the C client every other program uses,
//! creates `~/.config/pulse/cookie` (256 random bytes) when it is missing; Calldock does the
//! same, once, before it first talks to the sound system. (PipeWire accepts any cookie; a
//! server that checks it refuses a made-up one from libpulse just the same.)

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The cookie length of the PulseAudio native protocol.
const COOKIE_LENGTH: usize = 256;

/// Makes sure a cookie file exists where the client looks, for this process; quiet on failure
/// (the sound system then works as it would have without this).
pub(crate) fn ensure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[allow(deprecated)] // home_dir is what the pulseaudio crate itself uses
        let Some(home) = std::env::home_dir() else { return };
        match ensure_in(&home, std::env::var_os("PULSE_COOKIE").as_deref()) {
            Ok(Some(made)) => tracing::info!(path = %made.display(), "made a PulseAudio cookie, as libpulse does"),
            Ok(None) => {}
            Err(e) => tracing::debug!("no PulseAudio cookie could be made: {e}"),
        }
    });
}

/// Creates `home/.config/pulse/cookie` unless `PULSE_COOKIE` names a file or a cookie file
/// already exists; returns the path it created.
fn ensure_in(home: &Path, pulse_cookie: Option<&OsStr>) -> std::io::Result<Option<PathBuf>> {
    let standard = home.join(".config/pulse/cookie");
    let present =
        pulse_cookie.is_some_and(|p| Path::new(p).exists()) || standard.exists() || home.join(".pulse-cookie").exists();
    if present {
        return Ok(None);
    }
    std::fs::create_dir_all(standard.parent().expect("a parent"))?;
    let cookie: [u8; COOKIE_LENGTH] = std::array::from_fn(|_| rand::random());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&standard) {
        Ok(mut file) => file.write_all(&cookie).map(|()| Some(standard)),
        // Another process made it first: theirs is as good.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cookie_is_made_once_and_an_existing_one_is_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let made = ensure_in(home.path(), None).unwrap().expect("made");
        assert_eq!(made, home.path().join(".config/pulse/cookie"));
        let cookie = std::fs::read(&made).unwrap();
        assert_eq!(cookie.len(), COOKIE_LENGTH);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(ensure_in(home.path(), None).unwrap(), None, "there is one now");
        assert_eq!(std::fs::read(&made).unwrap(), cookie, "and it is kept");

        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(".pulse-cookie"), [7u8; COOKIE_LENGTH]).unwrap();
        assert_eq!(ensure_in(other.path(), None).unwrap(), None, "the old place counts");
        let elsewhere = other.path().join("cookie-from-env");
        std::fs::write(&elsewhere, [1u8; COOKIE_LENGTH]).unwrap();
        let third = tempfile::tempdir().unwrap();
        assert_eq!(ensure_in(third.path(), Some(elsewhere.as_os_str())).unwrap(), None, "PULSE_COOKIE counts");
    }
}
