//! Pre-call diagnostics (`calldock doctor`, SPEC §6): each check measures something on this
//! machine and gives a pass / warn / fail verdict, a one-line summary with the figures it
//! measured, and for a warning or a failure a one-line remedy a person can act on.
//!
//! Invariant: the logic that decides verdicts is pure. Measuring (opening a device, reading a
//! file, timing the codec) happens in `run` functions; what the measurements mean is decided by
//! functions that take samples and durations as arguments and touch no device, file or clock,
//! so every verdict is tested on controlled inputs.
//!
//! The checks: `mic` ([`microphone`]), `speaker` ([`speaker`]), `camera` ([`camera`]),
//! `network` ([`network`]) and `codec` ([`codec`]); [`Check`] is the list `--only` chooses from.
//! [`bundle`] packs a report with what support needs into one archive, through [`redact`].

pub mod bundle;
pub mod camera;
pub mod codec;
pub mod microphone;
pub mod network;
pub mod redact;
pub mod speaker;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a check went. Ordered from best to worst, so a report's verdict is its worst check's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    /// The process exit code for a run whose worst verdict is this one.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Warn => 1,
            Verdict::Fail => 2,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// The checks the doctor knows, in the order a full run performs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// The microphone hears sound at a usable level without clipping.
    Mic,
    /// The speaker plays a test tone; where a microphone hears it, the echo path is measured.
    Speaker,
    /// The camera delivers frames at the asked resolutions, fast enough, neither black nor frozen.
    Camera,
    /// The server, STUN and TURN are reachable and an echo call carries audio well.
    Network,
    /// This CPU encodes and decodes Opus fast enough for a call.
    Codec,
}

impl Check {
    pub const ALL: [Check; 5] = [Check::Mic, Check::Speaker, Check::Camera, Check::Network, Check::Codec];

    pub fn name(self) -> &'static str {
        match self {
            Check::Mic => "mic",
            Check::Speaker => "speaker",
            Check::Camera => "camera",
            Check::Network => "network",
            Check::Codec => "codec",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Check {
    type Err = String;

    fn from_str(text: &str) -> Result<Check, String> {
        Check::ALL.into_iter().find(|c| c.name() == text.trim()).ok_or_else(|| {
            let known: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
            format!("no check named {text:?}; the checks are {}", known.join(", "))
        })
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub check: Check,
    pub verdict: Verdict,
    /// Stable code of the problem found (`mic_silent`, `codec_slow`, …); `None` on a pass.
    pub code: Option<&'static str>,
    /// One line with the measured figures.
    pub summary: String,
    /// One line saying what to do about a warning or a failure; `None` on a pass.
    pub remedy: Option<String>,
    /// The measurements behind the verdict, for `--json`; `None` when nothing could be measured
    /// (a device that would not open).
    pub figures: Option<Figures>,
}

impl CheckResult {
    pub fn pass(check: Check, summary: String, figures: Option<Figures>) -> Self {
        Self { check, verdict: Verdict::Pass, code: None, summary, remedy: None, figures }
    }

    /// A warning or a failure: always with a code and a remedy.
    pub fn problem(
        check: Check,
        verdict: Verdict,
        code: &'static str,
        summary: String,
        remedy: String,
        figures: Option<Figures>,
    ) -> Self {
        Self { check, verdict, code: Some(code), summary, remedy: Some(remedy), figures }
    }
}

/// Each check's own measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Figures {
    Microphone(microphone::MicFigures),
    Speaker(speaker::SpeakerFigures),
    Camera(camera::CameraFigures),
    Network(network::NetworkFigures),
    Codec(codec::CodecFigures),
}

/// A whole run: the results in the order the checks ran, and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The worst verdict among the checks (pass when none ran).
    pub verdict: Verdict,
    /// 0 all passed, 1 some warned, 2 some failed.
    pub exit_code: u8,
    pub duration_ms: u64,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn new(checks: Vec<CheckResult>, duration: Duration) -> Self {
        let verdict = checks.iter().map(|c| c.verdict).max().unwrap_or(Verdict::Pass);
        Self {
            verdict,
            exit_code: verdict.exit_code(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            checks,
        }
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.checks.iter().filter(|c| c.verdict == verdict).count()
    }
}

/// What to check, and with what.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Run in [`Check::ALL`] order whatever order they were asked in; duplicates run once.
    pub checks: Vec<Check>,
    pub microphone: microphone::MicSource,
    pub speaker: speaker::SpeakerPlan,
    pub camera: camera::CameraSource,
    pub network: network::NetworkPlan,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            checks: Check::ALL.to_vec(),
            microphone: microphone::MicSource::default(),
            speaker: speaker::SpeakerPlan::default(),
            camera: camera::CameraSource::default(),
            network: network::NetworkPlan::default(),
        }
    }
}

/// Runs the planned checks; `on_start` is told before each begins (so a person can be asked to
/// speak before the microphone check listens).
///
/// The network and camera checks share nothing with the sound checks, so each runs on a thread
/// of its own while the microphone and speaker checks run one after the other (they share the
/// microphone); the whole run takes as long as the longest of the three (SPEC §6: under 10 s).
/// The codec check, which times the CPU, runs last, alone. Results are reported in
/// [`Check::ALL`] order whatever finished first.
pub fn run(plan: &Plan, mut on_start: impl FnMut(Check)) -> Report {
    let started = Instant::now();
    let planned = |check: Check| plan.checks.contains(&check);
    let mut results = Vec::new();
    std::thread::scope(|scope| {
        let network = planned(Check::Network).then(|| {
            on_start(Check::Network);
            scope.spawn(|| network::run(&plan.network))
        });
        let camera = planned(Check::Camera).then(|| {
            on_start(Check::Camera);
            scope.spawn(|| camera::run(&plan.camera))
        });
        for check in [Check::Mic, Check::Speaker].into_iter().filter(|&c| planned(c)) {
            on_start(check);
            results.push(match check {
                Check::Speaker => speaker::run(&plan.speaker, &plan.microphone),
                _ => microphone::run(&plan.microphone),
            });
        }
        for (check, thread) in [(Check::Network, network), (Check::Camera, camera)] {
            if let Some(thread) = thread {
                results.push(thread.join().unwrap_or_else(|_| crashed(check)));
            }
        }
    });
    if planned(Check::Codec) {
        on_start(Check::Codec);
        results.push(codec::run());
    }
    results.sort_by_key(|result| Check::ALL.iter().position(|&c| c == result.check));
    Report::new(results, started.elapsed())
}

/// The result of a check whose thread panicked: a broken invariant, reported, not propagated.
fn crashed(check: Check) -> CheckResult {
    CheckResult::problem(
        check,
        Verdict::Fail,
        "check_crashed",
        format!("the {check} check stopped unexpectedly"),
        format!("Run `calldock doctor --only {check}` again; if it repeats, send a support bundle (--bundle)"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: Check, verdict: Verdict) -> CheckResult {
        match verdict {
            Verdict::Pass => CheckResult::pass(check, "fine".into(), None),
            other => CheckResult::problem(check, other, "x", "not fine".into(), "fix it".into(), None),
        }
    }

    #[test]
    fn exit_code_is_the_worst_verdict() {
        let report = |verdicts: &[Verdict]| {
            Report::new(verdicts.iter().map(|&v| result(Check::Mic, v)).collect(), Duration::from_millis(5))
        };
        assert_eq!(report(&[Verdict::Pass, Verdict::Pass]).exit_code, 0);
        assert_eq!(report(&[Verdict::Pass, Verdict::Warn]).exit_code, 1);
        assert_eq!(report(&[Verdict::Warn, Verdict::Fail, Verdict::Pass]).exit_code, 2);
        assert_eq!(report(&[Verdict::Fail, Verdict::Warn]).verdict, Verdict::Fail);
        assert_eq!(report(&[]).exit_code, 0);
        assert_eq!(report(&[Verdict::Warn, Verdict::Warn]).count(Verdict::Warn), 2);
    }

    #[test]
    fn checks_parse_by_name_and_unknown_ones_list_the_known() {
        assert_eq!("mic".parse::<Check>(), Ok(Check::Mic));
        assert_eq!(" codec".parse::<Check>(), Ok(Check::Codec));
        let err = "speakers".parse::<Check>().unwrap_err();
        assert!(err.contains("mic, speaker, camera, network, codec"), "{err}");
    }

    #[test]
    fn report_json_has_verdicts_codes_remedies_and_figures() {
        let figures = codec::CodecFigures {
            real_time_factor: 50.0,
            audio_ms: 2000,
            encode_ms: 30.0,
            decode_ms: 10.0,
            bitrate_bps: 24_000,
            complexity: 9,
        };
        let report = Report::new(
            vec![
                CheckResult::pass(Check::Codec, "fast".into(), Some(Figures::Codec(figures))),
                result(Check::Mic, Verdict::Warn),
            ],
            Duration::from_millis(1234),
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["verdict"], "warn");
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["duration_ms"], 1234);
        assert_eq!(json["checks"][0]["check"], "codec");
        assert_eq!(json["checks"][0]["verdict"], "pass");
        assert_eq!(json["checks"][0]["remedy"], serde_json::Value::Null);
        assert_eq!(json["checks"][0]["figures"]["real_time_factor"], 50.0);
        assert_eq!(json["checks"][1]["code"], "x");
        assert_eq!(json["checks"][1]["remedy"], "fix it");
    }

    #[test]
    fn a_plan_runs_only_what_it_names_in_the_usual_order() {
        let plan = Plan { checks: vec![Check::Codec], ..Plan::default() };
        let mut started = Vec::new();
        let report = run(&plan, |c| started.push(c));
        assert_eq!(started, [Check::Codec]);
        assert_eq!(report.checks.len(), 1);
        assert_eq!(report.checks[0].check, Check::Codec);
        // Asked in another order, reported in the usual one.
        let plan =
            Plan { checks: vec![Check::Codec, Check::Speaker], speaker: speaker::SpeakerPlan::Null, ..Plan::default() };
        let report = run(&plan, |_| {});
        let order: Vec<Check> = report.checks.iter().map(|c| c.check).collect();
        assert_eq!(order, [Check::Speaker, Check::Codec]);
    }
}
