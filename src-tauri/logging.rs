//! Where `calldock` logs go: standard error, filtered by `CALLDOCK_LOG` as it always was, and a
//! log file for the support bundle: `calldock.YYYY-MM-DD.log` in the log dir
//! (calldock-journal's [`DataPaths`]), a new one each day, the last [`LOG_FILES_KEPT`] kept.

use calldock_journal::DataPaths;
use calldock_journal::paths::{LOG_FILE_PREFIX, LOG_FILE_SUFFIX};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Days of logs kept: enough for "it happened on Monday", small enough to mail.
const LOG_FILES_KEPT: usize = 5;

/// The log file's filter unless `CALLDOCK_FILE_LOG` gives one: calldock's own events from info
/// up (calls, media, devices; a few lines per call), and only errors from webrtc, which warns
/// about routine events.
const FILE_FILTER: &str = "warn,calldock=info,rtc=error,webrtc=error";

/// Lines the log file's queue holds while its thread writes; more are dropped (and counted), so
/// that logging never blocks a call path. tracing-appender's default queue holds 128,000 lines and
/// allocates and touches every slot when it is made: 4 MiB of memory in every `calldock` process
/// (heaptrack; issue 5's memory benchmark), for a log that writes a few lines per call.
const LOG_QUEUE_LINES: usize = 4096;

/// Keep it until the program ends: dropping it writes the log file's last lines.
pub struct LogFile {
    _flush_on_drop: Option<WorkerGuard>,
}

/// Installs the global subscriber. Without a usable log dir, logs go to standard error only,
/// and a warning there says why.
pub fn init() -> LogFile {
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter(
        "CALLDOCK_LOG",
        // webrtc warns about routine events (a STUN packet for a finished session); its
        // errors still show.
        "warn,rtc=error,webrtc=error",
    ));
    let (file, guard, problem) = match open_log_file() {
        Ok((writer, guard)) => {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter("CALLDOCK_FILE_LOG", FILE_FILTER));
            (Some(layer), Some(guard), None)
        }
        Err(problem) => (None, None, Some(problem)),
    };
    tracing_subscriber::registry().with(stderr).with(file).init();
    if let Some(problem) = problem {
        tracing::warn!("no log file is written: {problem}");
    }
    LogFile { _flush_on_drop: guard }
}

fn filter(variable: &str, default: &str) -> EnvFilter {
    EnvFilter::try_from_env(variable)
        .unwrap_or_else(|_| EnvFilter::new(default))
        // The PulseAudio client logs every ordinary disconnect as an error.
        .add_directive("pulseaudio::client::reactor=off".parse().expect("a valid directive"))
}

/// The day's log file, written from a thread of its own so that no call path waits on a disk.
fn open_log_file() -> Result<(NonBlocking, WorkerGuard), String> {
    let paths = DataPaths::locate().map_err(|e| e.to_string())?;
    let unwritable = |e: &dyn std::fmt::Display| {
        format!(
            "{}: {e}; make it writable, or set {} to a writable directory",
            paths.log_dir.display(),
            calldock_journal::DATA_DIR_ENV
        )
    };
    // tracing-appender prunes old files before it creates the directory, and prints to standard
    // error when there is none yet: make it first.
    std::fs::create_dir_all(&paths.log_dir).map_err(|e| unwritable(&e))?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(LOG_FILE_PREFIX)
        .filename_suffix(LOG_FILE_SUFFIX)
        .max_log_files(LOG_FILES_KEPT)
        .build(&paths.log_dir)
        .map_err(|e| unwritable(&e))?;
    Ok(queued(appender))
}

/// `writer` behind a bounded queue and a thread of its own.
fn queued<W: std::io::Write + Send + 'static>(writer: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default().buffered_lines_limit(LOG_QUEUE_LINES).lossy(true).finish(writer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    /// A writer that takes its first line, then waits until told to go on: a disk that stalls.
    struct Stalled {
        first: Option<mpsc::Sender<()>>,
        go_on: mpsc::Receiver<()>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(first) = self.first.take() {
                let _ = first.send(());
                let _ = self.go_on.recv();
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_log_file_holds_a_bounded_queue_and_never_blocks_the_logger() {
        let (first_tx, first_rx) = mpsc::channel();
        let (go_on_tx, go_on_rx) = mpsc::channel();
        let (mut writer, guard) = queued(Stalled { first: Some(first_tx), go_on: go_on_rx });
        let dropped = writer.error_counter();
        writer.write_all(b"first line\n").unwrap();
        first_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the log thread takes the first line");
        // The log thread is stuck in the writer: lines past the queue's bound are dropped, and the
        // writes return at once instead of waiting for the disk.
        let extra = 100;
        for i in 0..LOG_QUEUE_LINES + extra {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert_eq!(dropped.dropped_lines(), extra, "the queue holds {LOG_QUEUE_LINES} lines, no more");
        go_on_tx.send(()).unwrap();
        drop(guard);
    }
}
