//! The user's settings (`settings.json` in the app config dir) and the installation's device id.
//! Never credentials: the session token lives in the OS keychain ([`super::keychain`]).

use std::io;
use std::path::{Path, PathBuf};

use calldock_devices::DeviceChoice;
use serde::{Deserialize, Serialize};

use super::transport::IpcError;

/// The `camera` setting that sends the test pattern instead of a camera.
pub const CAMERA_PATTERN: &str = "pattern";

/// Which signaling server to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerSetting {
    /// The reference server embedded in the app, on loopback, with the echo bot.
    BuiltIn,
    Url {
        url: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Processing {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl Default for Processing {
    fn default() -> Self {
        let on = calldock_audio::processing::ProcessingSwitches::default();
        Self {
            echo_cancellation: on.echo_cancellation,
            noise_suppression: on.noise_suppression,
            gain_control: on.gain_control,
        }
    }
}

impl From<Processing> for calldock_audio::processing::ProcessingSwitches {
    fn from(p: Processing) -> Self {
        Self {
            echo_cancellation: p.echo_cancellation,
            noise_suppression: p.noise_suppression,
            gain_control: p.gain_control,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RingerSetting {
    pub device: String,
    /// 0.0 … 1.0
    pub volume: f32,
}

impl Default for RingerSetting {
    fn default() -> Self {
        Self { device: "default".into(), volume: 0.8 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

/// Every field has a default, so a settings file written by an older version still loads and
/// keeps what the user chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSetting,
    pub user_id: String,
    pub display_name: String,
    pub processing: Processing,
    pub microphone: String,
    pub speaker: String,
    /// A camera id, [`CAMERA_PATTERN`], or `None` for the default camera (the test pattern
    /// where there is none).
    pub camera: Option<String>,
    pub ringer: RingerSetting,
    pub theme: Theme,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSetting::BuiltIn,
            user_id: String::new(),
            display_name: String::new(),
            processing: Processing::default(),
            microphone: "default".into(),
            speaker: "default".into(),
            camera: None,
            ringer: RingerSetting::default(),
            theme: Theme::System,
        }
    }
}

/// The longest display name the reference server accepts, in characters.
const MAX_DISPLAY_NAME: usize = 64;

/// The reference server's rule for user names: 1 to 64 of `a-z 0-9 . _ -`, starting with a
/// letter or a digit. Checked here so a bad name is a field error, not a failed sign-in.
pub fn check_user_name(name: &str) -> Result<(), IpcError> {
    let mut chars = name.chars();
    let valid = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(IpcError::invalid_argument(format!(
            "{name:?} is not a user name: use 1 to 64 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

/// A name this user can sign in as: a user name that is not the echo bot's.
pub fn check_user_id(user_id: &str) -> Result<(), IpcError> {
    check_user_name(user_id)?;
    if user_id == calldock_protocol::ECHO_USER {
        return Err(IpcError::invalid_argument("\"echo\" is the echo test; pick another user name"));
    }
    Ok(())
}

pub fn check_display_name(name: &str) -> Result<(), IpcError> {
    let count = name.chars().count();
    if name.trim() != name || count == 0 || count > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(IpcError::invalid_argument(format!(
            "{name:?} is not a display name: use 1 to {MAX_DISPLAY_NAME} printable characters"
        )));
    }
    Ok(())
}

/// `default` or a sound device id.
pub fn parse_device(field: &str, text: &str) -> Result<DeviceChoice, IpcError> {
    DeviceChoice::parse(text)
        .ok_or_else(|| IpcError::invalid_argument(format!("{field}: {text:?} is neither \"default\" nor a device id")))
}

impl Settings {
    /// Whether these settings can be saved: a usable server URL (`bad_server_url`), and
    /// well-formed names, devices and volume (`invalid_argument`).
    pub fn check(&self) -> Result<(), IpcError> {
        if let ServerSetting::Url { url } = &self.server {
            calldock_engine::ServerUrl::parse(url)?;
        }
        check_user_id(&self.user_id)?;
        check_display_name(&self.display_name)?;
        parse_device("microphone", &self.microphone)?;
        parse_device("speaker", &self.speaker)?;
        parse_device("ringer.device", &self.ringer.device)?;
        if !(0.0..=1.0).contains(&self.ringer.volume) {
            return Err(IpcError::invalid_argument(format!(
                "ringer.volume takes 0.0 to 1.0, not {}",
                self.ringer.volume
            )));
        }
        if let Some(camera) = &self.camera
            && (camera.is_empty() || camera.len() > 256)
        {
            return Err(IpcError::invalid_argument(
                "camera: a camera id, \"pattern\" for the test pattern, or null for the default camera",
            ));
        }
        Ok(())
    }

    /// Whether going from `self` to `next` needs a new sign-in: another server or account.
    pub fn needs_reconnect(&self, next: &Settings) -> bool {
        self.server != next.server || self.user_id != next.user_id || self.display_name != next.display_name
    }
}

/// Settings as they were found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub settings: Settings,
    /// Nothing saved yet: the first-run screen comes first.
    pub first_run: bool,
}

/// The files the shell keeps in the app config dir.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    dir: PathBuf,
}

impl ConfigDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn settings_path(&self) -> PathBuf {
        self.dir.join("settings.json")
    }

    /// Reads settings.json. A missing file is a first run; a file that cannot be read as
    /// settings is set aside (`settings.json.unreadable`) rather than overwritten, and the app
    /// starts as on a first run.
    pub fn load_settings(&self) -> Loaded {
        let path = self.settings_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Loaded { settings: Settings::default(), first_run: true };
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "settings unreadable; starting with defaults");
                return Loaded { settings: Settings::default(), first_run: true };
            }
        };
        match serde_json::from_str::<Settings>(&text) {
            Ok(settings) => Loaded { settings, first_run: false },
            Err(e) => {
                let aside = path.with_extension("json.unreadable");
                tracing::warn!(path = %path.display(), error = %e, aside = %aside.display(), "settings are not valid JSON settings; set aside");
                let _ = std::fs::rename(&path, &aside);
                Loaded { settings: Settings::default(), first_run: true }
            }
        }
    }

    /// Writes settings.json whole or not at all (a temporary file renamed over it), so a crash
    /// mid-write never leaves half a file.
    pub fn save_settings(&self, settings: &Settings) -> Result<(), IpcError> {
        let json = serde_json::to_vec_pretty(settings).map_err(|e| unwritable(&self.settings_path(), &e))?;
        write_whole(&self.settings_path(), &json).map_err(|e| unwritable(&self.settings_path(), &e))
    }

    /// This installation's signaling device id, made once and kept (`device-id`), so the
    /// server sees one device across restarts and a saved session stays valid.
    pub fn device_id(&self) -> String {
        let path = self.dir.join("device-id");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let id = text.trim();
            if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()) {
                return id.to_owned();
            }
        }
        let id = format!("desktop-{:016x}", rand::random::<u64>());
        if let Err(e) = write_whole(&path, id.as_bytes()) {
            // A new id each start is only a cost: the server sees a new device, sessions are not resumed.
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the device id");
        }
        id
    }

    /// Reads a JSON file of the config dir; missing or unreadable is `None`.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path).ok()?;
        serde_json::from_str(&text)
            .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable file"))
            .ok()
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), IpcError> {
        let path = self.dir.join(name);
        let json = serde_json::to_vec_pretty(value).map_err(|e| unwritable(&path, &e))?;
        write_whole(&path, &json).map_err(|e| unwritable(&path, &e))
    }
}

fn unwritable(path: &Path, e: &dyn std::fmt::Display) -> IpcError {
    IpcError::new("settings_unwritable", format!("cannot write {}: {e}", path.display()))
}

fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Settings {
        Settings { user_id: "alice".into(), display_name: "Alice".into(), ..Settings::default() }
    }

    #[test]
    fn settings_json_has_the_contract_shape() {
        let json = serde_json::to_value(valid()).unwrap();
        assert_eq!(
            json,
            json!({
                "server": {"kind": "built_in"},
                "user_id": "alice",
                "display_name": "Alice",
                "processing": {"echo_cancellation": true, "noise_suppression": true, "gain_control": true},
                "microphone": "default",
                "speaker": "default",
                "camera": null,
                "ringer": {"device": "default", "volume": 0.8f32},
                "theme": "system"
            })
        );
        let url: Settings =
            serde_json::from_value(json!({"server": {"kind": "url", "url": "http://10.0.0.2:7878"}})).unwrap();
        assert_eq!(url.server, ServerSetting::Url { url: "http://10.0.0.2:7878".into() });
        assert_eq!(url.microphone, "default", "missing fields take their defaults");
    }

    #[test]
    fn bad_server_urls_and_names_are_refused_with_their_codes() {
        let mut s = valid();
        s.server = ServerSetting::Url { url: "calls at the office".into() };
        assert_eq!(s.check().unwrap_err().code, "bad_server_url");
        s.server = ServerSetting::Url { url: "ftp://example.com".into() };
        assert_eq!(s.check().unwrap_err().code, "bad_server_url");
        s.server = ServerSetting::Url { url: "https://calls.example.com".into() };
        assert_eq!(s.check(), Ok(()));

        for user in ["", "Alice", ".alice", "al ice", "echo", &"a".repeat(65)] {
            let s = Settings { user_id: user.into(), ..valid() };
            assert_eq!(s.check().unwrap_err().code, "invalid_argument", "{user:?}");
        }
        for name in ["", " Alice", "A\u{7}lice", &"n".repeat(65)] {
            let s = Settings { display_name: name.into(), ..valid() };
            assert_eq!(s.check().unwrap_err().code, "invalid_argument", "{name:?}");
        }
        let loud = Settings { ringer: RingerSetting { device: "default".into(), volume: 1.5 }, ..valid() };
        assert_eq!(loud.check().unwrap_err().code, "invalid_argument");
        let nan = Settings { ringer: RingerSetting { device: "default".into(), volume: f32::NAN }, ..valid() };
        assert_eq!(nan.check().unwrap_err().code, "invalid_argument");
        let mic = Settings { microphone: "the blue one".into(), ..valid() };
        assert_eq!(mic.check().unwrap_err().code, "invalid_argument");
    }

    #[test]
    fn only_server_and_account_changes_need_a_new_sign_in() {
        let before = valid();
        assert!(!before.needs_reconnect(&Settings { theme: Theme::Dark, microphone: "default".into(), ..valid() }));
        assert!(before.needs_reconnect(&Settings { display_name: "Alice L.".into(), ..valid() }));
        assert!(
            before.needs_reconnect(&Settings { server: ServerSetting::Url { url: "http://h:1".into() }, ..valid() })
        );
    }

    #[test]
    fn settings_round_trip_and_a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(dir.path().join("nested"));
        assert!(config.load_settings().first_run);
        config.save_settings(&valid()).unwrap();
        assert_eq!(config.load_settings(), Loaded { settings: valid(), first_run: false });

        std::fs::write(dir.path().join("nested/settings.json"), b"{not json").unwrap();
        let loaded = config.load_settings();
        assert!(loaded.first_run);
        assert!(dir.path().join("nested/settings.json.unreadable").exists(), "the user's file is kept");
    }

    #[test]
    fn the_device_id_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(dir.path().to_owned());
        let first = config.device_id();
        assert!(first.starts_with("desktop-"));
        assert_eq!(config.device_id(), first);
    }

    #[test]
    fn an_unwritable_config_dir_is_settings_unwritable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let config = ConfigDir::new(file.join("config"));
        assert_eq!(config.save_settings(&valid()).unwrap_err().code, "settings_unwritable");
    }
}
