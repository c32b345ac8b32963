//! Where calldock keeps its files. One place decides it, so the CLI, the support bundle and the
//! desktop app agree.
//!
//! | what | Linux | macOS, Windows |
//! |---|---|---|
//! | data (`calls.jsonl`) | `$XDG_DATA_HOME/calldock` (`~/.local/share/calldock`) | the platform's local app data dir |
//! | logs | `$XDG_STATE_HOME/calldock/logs` (`~/.local/state/calldock/logs`) | `logs` in the data dir |
//! | config | `$XDG_CONFIG_HOME/calldock/config.toml` | `config.toml` in the platform's config dir |
//!
//! With [`DATA_DIR_ENV`] set, everything is under that one directory instead (`DIR/calls.jsonl`,
//! `DIR/logs/`, `DIR/config.toml`): tests and support reproductions use it to stay out of the
//! user's own files.

use std::ffi::OsString;
use std::path::PathBuf;

use directories::ProjectDirs;

use crate::JournalError;

/// Puts every calldock file under this one directory when set (and not empty).
pub const DATA_DIR_ENV: &str = "CALLDOCK_DATA_DIR";

/// The call summary log's file name in the data dir.
pub const CALLS_FILE: &str = "calls.jsonl";

/// Log files are `calldock.YYYY-MM-DD.log` in the log dir: one a day, the oldest removed.
pub const LOG_FILE_PREFIX: &str = "calldock";
pub const LOG_FILE_SUFFIX: &str = "log";

/// The config file's name in the config dir.
pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPaths {
    /// Machine-local data: the call summary log.
    pub data_dir: PathBuf,
    /// The rolling log files.
    pub log_dir: PathBuf,
    /// The user's config file (it may not exist).
    pub config_file: PathBuf,
}

impl DataPaths {
    /// The paths for this process: under [`DATA_DIR_ENV`] when it is set, else the platform's.
    pub fn locate() -> Result<DataPaths, JournalError> {
        match Self::from_override(std::env::var_os(DATA_DIR_ENV)) {
            Some(paths) => Ok(paths),
            None => Self::platform(),
        }
    }

    /// Everything under one directory.
    pub fn under(dir: impl Into<PathBuf>) -> DataPaths {
        let dir = dir.into();
        DataPaths { log_dir: dir.join("logs"), config_file: dir.join(CONFIG_FILE), data_dir: dir }
    }

    /// The summary log of recent calls.
    pub fn calls_file(&self) -> PathBuf {
        self.data_dir.join(CALLS_FILE)
    }

    fn from_override(value: Option<OsString>) -> Option<DataPaths> {
        value.filter(|v| !v.is_empty()).map(DataPaths::under)
    }

    fn platform() -> Result<DataPaths, JournalError> {
        // Linux: `calldock` under each XDG base dir; macOS `app.Calldock.Calldock`; Windows
        // `Calldock\Calldock`.
        let dirs = ProjectDirs::from("app", "Calldock", "Calldock").ok_or(JournalError::NoHome)?;
        // Call history belongs to this machine: the local (not roaming) data dir on Windows.
        let data_dir = dirs.data_local_dir().to_path_buf();
        // Only Linux has a state dir; elsewhere logs sit beside the data.
        let log_dir = dirs.state_dir().unwrap_or(&data_dir).join("logs");
        Ok(DataPaths { data_dir, log_dir, config_file: dirs.config_dir().join(CONFIG_FILE) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_puts_everything_under_one_directory() {
        let paths = DataPaths::from_override(Some("/tmp/calldock-test".into())).expect("set");
        assert_eq!(paths.data_dir, PathBuf::from("/tmp/calldock-test"));
        assert_eq!(paths.log_dir, PathBuf::from("/tmp/calldock-test/logs"));
        assert_eq!(paths.config_file, PathBuf::from("/tmp/calldock-test/config.toml"));
        assert_eq!(paths.calls_file(), PathBuf::from("/tmp/calldock-test/calls.jsonl"));
    }

    #[test]
    fn an_empty_or_missing_override_is_no_override() {
        assert_eq!(DataPaths::from_override(Some("".into())), None);
        assert_eq!(DataPaths::from_override(None), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_paths_follow_the_xdg_base_dirs() {
        // Whatever HOME and XDG_* say in this environment, the project's own part of each path
        // is `calldock`, and logs are in the state dir.
        let paths = DataPaths::platform().expect("a home directory in the test environment");
        assert!(paths.data_dir.ends_with("calldock"), "{paths:?}");
        assert!(paths.log_dir.ends_with("calldock/logs"), "{paths:?}");
        assert!(paths.config_file.ends_with("calldock/config.toml"), "{paths:?}");
        // The XDG spec ignores a relative XDG_STATE_HOME, and so does `directories`.
        let state = std::env::var_os("XDG_STATE_HOME").filter(|v| std::path::Path::new(v).is_absolute());
        match state {
            Some(state) => assert!(paths.log_dir.starts_with(state), "{paths:?}"),
            None => assert!(paths.log_dir.to_string_lossy().contains(".local/state"), "{paths:?}"),
        }
    }
}
