//! The local call log's edge in the CLI: the clock, the engine's statistics, and the file
//! (calldock-journal keeps the logic). `calldock call` and `calldock answer` save one summary
//! per call that ends; the support bundle and the desktop app read them.

use std::time::{SystemTime, UNIX_EPOCH};

use calldock_engine::media::CallStats;
use calldock_journal::DataPaths;
use calldock_journal::calls::{CallSummary, StatsSample};
use calldock_protocol::Media;

/// Now, in Unix milliseconds (the journal's and the protocol's time).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn media_name(media: Media) -> &'static str {
    match media {
        Media::Audio => "audio",
        Media::Video => "video",
    }
}

/// What the summary keeps of one per-second statistics sample.
pub fn sample(stats: &CallStats) -> StatsSample<'_> {
    StatsSample {
        mos: stats.mos,
        rtt_ms: stats.rtt_ms,
        loss_percent: stats.loss_percent,
        jitter_ms: stats.jitter_ms,
        local_candidate: stats.local_candidate.as_deref(),
        remote_candidate: stats.remote_candidate.as_deref(),
    }
}

/// Appends the summary to `calls.jsonl`. A failure is said on standard error and changes
/// nothing else: the call itself went as it went.
pub fn save(summary: &CallSummary) {
    let saved = DataPaths::locate().and_then(|paths| calldock_journal::calls::append(&paths.calls_file(), summary));
    if let Err(e) = saved {
        eprintln!("calldock: the call's summary was not saved: {e} [{}]", e.code());
    }
}
