//! What calldock keeps on this machine between runs: where its files live ([`paths`]) and the
//! local log of recent call summaries ([`calls`]), which `calldock doctor --bundle` packs for
//! support and the desktop app will list as recent calls.
//!
//! Invariants:
//! - IO happens at the edge only: [`calls::append`] and [`calls::read_recent`] touch the file;
//!   building a summary ([`calls::OngoingCall`]) and parsing lines ([`calls::parse_lines`]) are
//!   pure and take the time as an argument.
//! - Nothing already saved is lost: a summary is appended as one line in one write; a line that
//!   is corrupt or cut short (a crash mid-write) is skipped when reading, never fatal to the
//!   lines around it, and the next append starts on a line of its own.

pub mod calls;
pub mod paths;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use paths::{DATA_DIR_ENV, DataPaths};

/// The end of a file, cut at a line start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    pub text: String,
    /// Bytes before `text` that were left out (0 when the whole file is there).
    pub omitted_bytes: u64,
}

/// Reads at most the last `max_bytes` of a text file, starting at a line: the recent end of a
/// log is what matters, and a file that grew for years must not be read whole. Bytes that are
/// not UTF-8 become U+FFFD.
pub fn read_tail(path: &Path, max_bytes: u64) -> std::io::Result<Tail> {
    let mut file = File::open(path)?;
    let start = file.metadata()?.len().saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut skip = 0;
    if start > 0 {
        // The first line is only the end of one: start after it.
        skip = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |at| at + 1);
    }
    Ok(Tail { text: String::from_utf8_lossy(&bytes[skip..]).into_owned(), omitted_bytes: start + skip as u64 })
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "no home directory is known for this user, so calldock has nowhere to keep its data; set {DATA_DIR_ENV} to a writable directory"
    )]
    NoHome,
    #[error("cannot save to {path}: {source}; make the directory writable, or set {DATA_DIR_ENV} to one that is")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}; check its permissions")]
    Read { path: PathBuf, source: std::io::Error },
}

impl JournalError {
    /// Stable code for logs and JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            JournalError::NoHome => "data_dir_unknown",
            JournalError::Write { .. } => "journal_write_failed",
            JournalError::Read { .. } => "journal_read_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_starts_at_a_line_and_says_what_it_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first line\nsecond line\nthird\n").unwrap();
        let whole = read_tail(&path, 1000).unwrap();
        assert_eq!(whole, Tail { text: "first line\nsecond line\nthird\n".into(), omitted_bytes: 0 });
        // The last 15 bytes begin inside "second line".
        let tail = read_tail(&path, 15).unwrap();
        assert_eq!(tail, Tail { text: "third\n".into(), omitted_bytes: 23 });
        assert_eq!(read_tail(&path, 0).unwrap().text, "");
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_stop_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.log");
        std::fs::write(&path, b"ok \xff\xfe line\n").unwrap();
        assert_eq!(read_tail(&path, 100).unwrap().text, "ok \u{fffd}\u{fffd} line\n");
    }
}
