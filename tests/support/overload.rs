//! Real-time audio tests on a small, shared machine: when the CPU is overloaded, a call's
//! audio can fail to match with nothing wrong in the code. This tells such a failure apart
//! (Linux's CPU pressure) and gives it one more try; nothing else is retried.

use std::time::Instant;

/// Linux's CPU pressure (PSI, `/proc/pressure/cpu`): the share of time in which some runnable
/// task waited for a CPU.
pub struct CpuPressure {
    stalled_us: u64,
    at: Instant,
}

impl CpuPressure {
    pub fn now() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
        let some = text.lines().find(|l| l.starts_with("some "))?;
        let stalled_us = some.split_whitespace().find_map(|f| f.strip_prefix("total="))?.parse().ok()?;
        Some(Self { stalled_us, at: Instant::now() })
    }

    /// The share of the time since `self` in which tasks waited for a CPU, percent.
    pub fn percent_since(&self) -> Option<f64> {
        let now = Self::now()?;
        let wall_us = now.at.duration_since(self.at).as_micros().max(1) as f64;
        Some(now.stalled_us.saturating_sub(self.stalled_us) as f64 * 100.0 / wall_us)
    }
}

/// CPU pressure at which real-time audio on this machine is no longer a fair test (percent).
pub const OVERLOADED_PERCENT: f64 = 40.0;

/// Holds the call once more, and only once, when it failed on the audio comparison alone while
/// the machine was overloaded: then senders and jitter buffers stall, frames are concealed and
/// later dropped, each shifting the rest of the sentence, and the envelope correlation drops
/// with no fault of the code under test (docs/interop.md). Everything else panics inside `call`
/// (a page error, a calldock exit code, a timeout) and is never retried; nor is an audio failure on a machine
/// that was not overloaded, nor a second failure.
pub fn up_to_two_tries(name: &str, mut call: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    let pressure = CpuPressure::now();
    let result = call();
    let percent = pressure.and_then(|p| p.percent_since());
    let measured = percent.map_or("unknown".to_owned(), |p| format!("{p:.0}%"));
    println!("{name}: CPU pressure during the call {measured}; took {:.1} s", started.elapsed().as_secs_f64());
    let Err(first) = result else { return };
    if !percent.is_some_and(|p| p >= OVERLOADED_PERCENT) {
        panic!("{first}\n(CPU pressure during the call: {measured})");
    }
    println!("{name}: failed while the machine was overloaded (CPU pressure {measured}): {first}; trying once more");
    if let Err(second) = call() {
        panic!("{second}\n(the first try failed too, under CPU pressure {measured}: {first})");
    }
}
