//! The local log of recent calls: one JSON object per line in `calls.jsonl`, appended when a
//! call ends. A line looks like
//!
//! ```json
//! {"call_id":"9f…","peer":"echo","peer_name":null,"direction":"outgoing","media":"audio",
//!  "started_at_ms":1763794800000,"connected_at_ms":1763794800412,"ended_at_ms":1763794830412,
//!  "duration_ms":30000,"end_reason":"hangup-local",
//!  "quality":{"samples":30,"mos_mean":4.41,"mos_worst":4.38,"rtt_ms_mean":1.2,"rtt_ms_worst":3.4,
//!             "loss_percent_mean":0.0,"loss_percent_worst":0.0,"jitter_ms_mean":0.8,
//!             "jitter_ms_worst":2.1,"local_candidate":"host","remote_candidate":"host"}}
//! ```
//!
//! Times are Unix milliseconds, as in the protocol. Readers ignore fields they do not know, so
//! later versions can add some.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{JournalError, read_tail};

/// At most this much of the end of the file is read: the recent calls are at the end, and a
/// file that grew for years must not be read whole to show them.
pub const TAIL_BYTES: u64 = 1 << 20;

/// Who placed the call, from this device's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    Outgoing,
    Incoming,
}

/// One ended call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    pub call_id: String,
    /// The other party's user id.
    pub peer: String,
    /// The other party's display name, where this device learned it (the caller's, on an
    /// incoming call).
    #[serde(default)]
    pub peer_name: Option<String>,
    pub direction: CallDirection,
    /// `audio` or `video`.
    pub media: String,
    /// When the call was placed, or began ringing here.
    pub started_at_ms: u64,
    /// When media connected; `None` for a call that never connected (declined, missed, …).
    #[serde(default)]
    pub connected_at_ms: Option<u64>,
    pub ended_at_ms: u64,
    /// Time connected, in milliseconds: 0 for a call that never connected.
    pub duration_ms: u64,
    /// The call core's end reason as the CLI prints it in JSON: `hangup-local`, `hangup-remote`,
    /// `declined`, `busy`, `missed`, `canceled`, `failed(ice)`, ….
    pub end_reason: String,
    /// From the per-second statistics; `None` when the call carried no media.
    #[serde(default)]
    pub quality: Option<QualitySummary>,
}

/// A call's quality over its statistics samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    /// How many per-second samples it is made of.
    pub samples: u32,
    pub mos_mean: f64,
    pub mos_worst: f64,
    /// `None` when no sample had a round-trip time (no STUN response yet).
    #[serde(default)]
    pub rtt_ms_mean: Option<f64>,
    #[serde(default)]
    pub rtt_ms_worst: Option<f64>,
    pub loss_percent_mean: f64,
    pub loss_percent_worst: f64,
    pub jitter_ms_mean: f64,
    pub jitter_ms_worst: f64,
    /// The candidate types of the last pair in use (`host`, `srflx`, `prflx`, `relay`).
    #[serde(default)]
    pub local_candidate: Option<String>,
    #[serde(default)]
    pub remote_candidate: Option<String>,
}

/// One per-second statistics sample, as much of it as the summary keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsSample<'a> {
    pub mos: f64,
    pub rtt_ms: Option<f64>,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub local_candidate: Option<&'a str>,
    pub remote_candidate: Option<&'a str>,
}

/// Mean and worst of one figure. Values that are not finite are left out: JSON has no NaN, and
/// a summary that could not be read back would be lost.
#[derive(Debug, Clone, Copy, Default)]
struct Figure {
    count: u32,
    sum: f64,
    /// The lowest value when lower is worse (MOS), else the highest.
    worst: f64,
}

impl Figure {
    fn add(&mut self, value: f64, lower_is_worse: bool) {
        if !value.is_finite() {
            return;
        }
        self.worst = match self.count {
            0 => value,
            _ if lower_is_worse => self.worst.min(value),
            _ => self.worst.max(value),
        };
        self.count += 1;
        self.sum += value;
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| rounded(self.sum / f64::from(self.count)))
    }

    fn worst(&self) -> Option<f64> {
        (self.count > 0).then(|| rounded(self.worst))
    }
}

/// Two decimals: the figures are estimates, and the log is read by people too.
fn rounded(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A call in progress, gathering what its summary will say. Pure: times are arguments.
#[derive(Debug, Clone)]
pub struct OngoingCall {
    call_id: String,
    peer: String,
    peer_name: Option<String>,
    direction: CallDirection,
    media: String,
    started_at_ms: u64,
    connected_at_ms: Option<u64>,
    samples: u32,
    mos: Figure,
    rtt_ms: Figure,
    loss_percent: Figure,
    jitter_ms: Figure,
    local_candidate: Option<String>,
    remote_candidate: Option<String>,
}

impl OngoingCall {
    pub fn new(
        call_id: impl Into<String>,
        peer: impl Into<String>,
        direction: CallDirection,
        media: impl Into<String>,
        started_at_ms: u64,
    ) -> Self {
        Self {
            call_id: call_id.into(),
            peer: peer.into(),
            peer_name: None,
            direction,
            media: media.into(),
            started_at_ms,
            connected_at_ms: None,
            samples: 0,
            mos: Figure::default(),
            rtt_ms: Figure::default(),
            loss_percent: Figure::default(),
            jitter_ms: Figure::default(),
            local_candidate: None,
            remote_candidate: None,
        }
    }

    pub fn with_peer_name(mut self, name: impl Into<String>) -> Self {
        self.peer_name = Some(name.into());
        self
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Glare joined this call into another one: the summary carries the id that ended.
    pub fn replaced_by(&mut self, call_id: impl Into<String>) {
        self.call_id = call_id.into();
    }

    /// Media connected. Only the first time counts: a reconnection does not restart the clock.
    pub fn connected(&mut self, at_ms: u64) {
        self.connected_at_ms.get_or_insert(at_ms);
    }

    pub fn add_stats(&mut self, sample: StatsSample<'_>) {
        self.samples = self.samples.saturating_add(1);
        self.mos.add(sample.mos, true);
        if let Some(rtt) = sample.rtt_ms {
            self.rtt_ms.add(rtt, false);
        }
        self.loss_percent.add(sample.loss_percent, false);
        self.jitter_ms.add(sample.jitter_ms, false);
        if let Some(kind) = sample.local_candidate {
            self.local_candidate = Some(kind.to_owned());
        }
        if let Some(kind) = sample.remote_candidate {
            self.remote_candidate = Some(kind.to_owned());
        }
    }

    /// The summary of the call, ended at `ended_at_ms` for `end_reason`.
    pub fn finish(&self, ended_at_ms: u64, end_reason: impl Into<String>) -> CallSummary {
        let quality = (self.samples > 0).then(|| QualitySummary {
            samples: self.samples,
            mos_mean: self.mos.mean().unwrap_or(0.0),
            mos_worst: self.mos.worst().unwrap_or(0.0),
            rtt_ms_mean: self.rtt_ms.mean(),
            rtt_ms_worst: self.rtt_ms.worst(),
            loss_percent_mean: self.loss_percent.mean().unwrap_or(0.0),
            loss_percent_worst: self.loss_percent.worst().unwrap_or(0.0),
            jitter_ms_mean: self.jitter_ms.mean().unwrap_or(0.0),
            jitter_ms_worst: self.jitter_ms.worst().unwrap_or(0.0),
            local_candidate: self.local_candidate.clone(),
            remote_candidate: self.remote_candidate.clone(),
        });
        CallSummary {
            call_id: self.call_id.clone(),
            peer: self.peer.clone(),
            peer_name: self.peer_name.clone(),
            direction: self.direction,
            media: self.media.clone(),
            started_at_ms: self.started_at_ms,
            connected_at_ms: self.connected_at_ms,
            ended_at_ms,
            duration_ms: self.connected_at_ms.map_or(0, |at| ended_at_ms.saturating_sub(at)),
            end_reason: end_reason.into(),
            quality,
        }
    }
}

/// What reading the log found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentCalls {
    /// Oldest first.
    pub calls: Vec<CallSummary>,
    /// Lines that were not a summary (corrupt, or cut short by a crash) and were skipped.
    pub skipped_lines: usize,
}

/// The summaries in `text`, one per line; lines that are not one are counted and skipped.
pub fn parse_lines(text: &str) -> RecentCalls {
    let mut recent = RecentCalls::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<CallSummary>(line) {
            Ok(summary) => recent.calls.push(summary),
            Err(_) => recent.skipped_lines += 1,
        }
    }
    recent
}

/// Appends one summary to the log at `path`, creating the file and its directory if needed.
pub fn append(path: &Path, summary: &CallSummary) -> Result<(), JournalError> {
    let write_error = |source| JournalError::Write { path: path.to_owned(), source };
    let mut line = serde_json::to_string(summary).map_err(|e| write_error(std::io::Error::other(e)))?;
    line.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(write_error)?;
    // A crash mid-write may have left the last line without its end: start a line of our own,
    // or this summary would be glued to the broken one and be skipped with it.
    if file.metadata().map_err(write_error)?.len() > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1)).and_then(|_| file.read_exact(&mut last)).map_err(write_error)?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    // One write of the whole line: with O_APPEND, processes that end calls at the same time do
    // not interleave their lines.
    file.write_all(line.as_bytes()).map_err(write_error)?;
    file.sync_data().map_err(write_error)
}

/// The last `limit` summaries in the log at `path` (oldest first); no file is no calls yet.
/// Reads at most the last [`TAIL_BYTES`] of the file.
pub fn read_recent(path: &Path, limit: usize) -> Result<RecentCalls, JournalError> {
    let tail = match read_tail(path, TAIL_BYTES) {
        Ok(tail) => tail,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(RecentCalls::default()),
        Err(source) => return Err(JournalError::Read { path: path.to_owned(), source }),
    };
    let mut recent = parse_lines(&tail.text);
    let excess = recent.calls.len().saturating_sub(limit);
    recent.calls.drain(..excess);
    Ok(recent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(mos: f64, rtt: Option<f64>, loss: f64, jitter: f64) -> StatsSample<'static> {
        StatsSample {
            mos,
            rtt_ms: rtt,
            loss_percent: loss,
            jitter_ms: jitter,
            local_candidate: Some("host"),
            remote_candidate: Some("srflx"),
        }
    }

    fn connected_call() -> OngoingCall {
        let mut call = OngoingCall::new("c1", "bob", CallDirection::Outgoing, "audio", 1_000);
        call.connected(3_000);
        call
    }

    #[test]
    fn a_summary_has_the_connected_time_and_mean_and_worst_figures() {
        let mut call = connected_call();
        call.add_stats(sample(4.4, Some(20.0), 0.0, 2.0));
        call.add_stats(sample(3.8, None, 5.0, 6.0));
        call.add_stats(sample(4.2, Some(40.0), 1.0, 1.0));
        call.connected(9_000); // a reconnection does not restart the clock
        let summary = call.finish(33_000, "hangup-local");
        assert_eq!(summary.duration_ms, 30_000);
        assert_eq!(summary.started_at_ms, 1_000);
        assert_eq!(summary.connected_at_ms, Some(3_000));
        assert_eq!(summary.end_reason, "hangup-local");
        let quality = summary.quality.expect("three samples");
        assert_eq!(quality.samples, 3);
        assert_eq!(quality.mos_mean, 4.13);
        assert_eq!(quality.mos_worst, 3.8);
        assert_eq!(quality.rtt_ms_mean, Some(30.0));
        assert_eq!(quality.rtt_ms_worst, Some(40.0));
        assert_eq!(quality.loss_percent_mean, 2.0);
        assert_eq!(quality.loss_percent_worst, 5.0);
        assert_eq!(quality.jitter_ms_worst, 6.0);
        assert_eq!(quality.local_candidate.as_deref(), Some("host"));
        assert_eq!(quality.remote_candidate.as_deref(), Some("srflx"));
    }

    #[test]
    fn a_call_that_never_connected_lasted_nothing_and_has_no_quality() {
        let call = OngoingCall::new("c2", "alice", CallDirection::Incoming, "video", 5_000).with_peer_name("Alice");
        let summary = call.finish(65_000, "missed");
        assert_eq!(summary.duration_ms, 0);
        assert_eq!(summary.connected_at_ms, None);
        assert_eq!(summary.quality, None);
        assert_eq!(summary.peer_name.as_deref(), Some("Alice"));
        assert_eq!(summary.direction, CallDirection::Incoming);
    }

    #[test]
    fn figures_that_are_not_numbers_are_left_out_so_the_line_reads_back() {
        let mut call = connected_call();
        call.add_stats(sample(f64::NAN, Some(f64::INFINITY), f64::NAN, 3.0));
        call.add_stats(sample(4.0, Some(10.0), 0.0, 1.0));
        let summary = call.finish(4_000, "hangup-remote");
        let line = serde_json::to_string(&summary).unwrap();
        assert_eq!(parse_lines(&line).calls, std::slice::from_ref(&summary));
        let quality = summary.quality.unwrap();
        assert_eq!((quality.mos_mean, quality.mos_worst), (4.0, 4.0));
        assert_eq!(quality.rtt_ms_worst, Some(10.0));
    }

    #[test]
    fn a_replaced_call_is_summarised_under_the_id_that_ended() {
        let mut call = connected_call();
        call.replaced_by("c9");
        assert_eq!(call.call_id(), "c9");
        assert_eq!(call.finish(4_000, "hangup-local").call_id, "c9");
    }

    #[test]
    fn corrupt_and_cut_lines_are_skipped_and_the_rest_kept() {
        let good = |id: &str| {
            serde_json::to_string(&OngoingCall::new(id, "bob", CallDirection::Outgoing, "audio", 1).finish(2, "busy"))
                .unwrap()
        };
        let text =
            format!("{}\nnot json at all\n\n{{\"call_id\":\"x\"}}\n{}\n{}", good("a"), good("b"), &good("c")[..20]);
        let recent = parse_lines(&text);
        let ids: Vec<&str> = recent.calls.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(recent.skipped_lines, 3);
    }

    #[test]
    fn appending_after_a_cut_line_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/calls.jsonl");
        let first = OngoingCall::new("a", "bob", CallDirection::Outgoing, "audio", 1).finish(2, "declined");
        append(&path, &first).unwrap();
        // A crash in the middle of a write.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"call_id\":\"half").unwrap();
        drop(file);
        let second = OngoingCall::new("b", "carol", CallDirection::Incoming, "audio", 3).finish(4, "missed");
        append(&path, &second).unwrap();
        let recent = read_recent(&path, 10).unwrap();
        assert_eq!(recent.calls, [first, second]);
        assert_eq!(recent.skipped_lines, 1);
    }

    #[test]
    fn reading_keeps_the_last_ones_and_no_file_is_no_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        assert_eq!(read_recent(&path, 5).unwrap(), RecentCalls::default());
        for i in 0..7u64 {
            let call = OngoingCall::new(format!("c{i}"), "bob", CallDirection::Outgoing, "audio", i);
            append(&path, &call.finish(i + 1, "busy")).unwrap();
        }
        let ids: Vec<String> = read_recent(&path, 3).unwrap().calls.into_iter().map(|c| c.call_id).collect();
        assert_eq!(ids, ["c4", "c5", "c6"]);
    }

    #[test]
    fn a_long_log_is_read_from_its_tail_without_a_half_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let line = serde_json::to_string(
            &OngoingCall::new("old", "bob", CallDirection::Outgoing, "audio", 1).finish(2, "missed"),
        )
        .unwrap();
        let mut text = String::new();
        while (text.len() as u64) < TAIL_BYTES + 1000 {
            text += &line;
            text.push('\n');
        }
        std::fs::write(&path, &text).unwrap();
        let last = OngoingCall::new("new", "carol", CallDirection::Incoming, "audio", 5).finish(6, "canceled");
        append(&path, &last).unwrap();
        let recent = read_recent(&path, usize::MAX).unwrap();
        assert_eq!(recent.skipped_lines, 0, "the line cut by the tail is not counted as corrupt");
        assert_eq!(recent.calls.last(), Some(&last));
        assert!(recent.calls.len() < text.len() / line.len());
    }

    #[test]
    fn an_unwritable_place_is_an_error_with_a_code_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let call = OngoingCall::new("a", "bob", CallDirection::Outgoing, "audio", 1).finish(2, "busy");
        let err = append(&blocker.join("calls.jsonl"), &call).unwrap_err();
        assert_eq!(err.code(), "journal_write_failed");
        assert!(err.to_string().contains("CALLDOCK_DATA_DIR"), "{err}");
        assert!(err.to_string().contains(&blocker.display().to_string()), "{err}");
    }
}
