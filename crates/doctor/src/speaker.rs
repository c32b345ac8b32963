//! The speaker check (SPEC §6): play a probe on the chosen output through rodio; where a
//! microphone is present, listen for it and report the echo path: how long after the probe was
//! handed to the output the microphone heard it, and how loud.
//!
//! The probe is a logarithmic chirp (400 Hz → 4 kHz, 0.6 s): it has one sharp autocorrelation
//! peak, so its arrival time in the capture is found by cross-correlation (an FFT, realfft) even
//! under room noise, and it stays within the band every laptop speaker and microphone pass.
//!
//! The echo-path delay and level have no verdict of their own (no public tool anchors one), so
//! the verdict is about the speaker: it passes when the probe played, fails when the output
//! would not open or broke. A probe the microphone did not hear is reported, not failed:
//! headphones are a normal reason. [`find_echo`] decides from samples alone; [`run`] plays and
//! listens.

use std::fmt;
use std::time::{Duration, Instant};

use calldock_devices::{Capture, DeviceChoice, DeviceError, Direction, Ringer, Ringtone};
use calldock_media::level;
use realfft::RealFftPlanner;
use serde::Serialize;

use crate::microphone::MicSource;
use crate::{Check, CheckResult, Figures, Verdict};

/// The probe's length.
pub const PROBE_SECONDS: f64 = 0.6;
const PROBE_LOW_HZ: f64 = 400.0;
const PROBE_HIGH_HZ: f64 = 4_000.0;
/// The probe's peak level: loud enough to be heard over a quiet room, not loud enough to startle.
const PROBE_PEAK: f32 = 0.25;
/// Echo paths longer than this are not looked for (real ones are 10–300 ms; Bluetooth up to 500).
pub const MAX_ECHO_DELAY: Duration = Duration::from_millis(1_000);
/// The probe is heard when the cross-correlation's peak stands this many times above the
/// correlation's RMS over all lags. The chirp's time-bandwidth product (0.6 s × 3.6 kHz) gives
/// it about 33 dB of processing gain, so it is found well below the room noise; the largest of
/// ~10⁵ lags of pure noise is about 5 RMS.
pub const HEARD_PEAK_TO_RMS: f64 = 9.0;
/// And the capture under the peak must look like the probe at least this much (normalized
/// correlation): a probe 26 dB below the room noise still does, while a stray partial overlap
/// in an otherwise silent capture, tall only against a correlation of rounding errors, does not.
pub const HEARD_CORRELATION: f64 = 0.05;
/// How long the microphone may take to deliver its first audio (a PulseAudio recording stream
/// delivers nothing for its first seconds after the server starts; docs/audio-stack.md).
const MIC_START_LIMIT: Duration = Duration::from_millis(4_000);
const POLL: Duration = Duration::from_millis(10);

/// Where the speaker check plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerPlan {
    /// A sound device (`default` or an id from `calldock devices`).
    Device(DeviceChoice),
    /// No output: nothing is played and the check warns that the speaker went unchecked.
    Null,
}

impl Default for SpeakerPlan {
    fn default() -> Self {
        SpeakerPlan::Device(DeviceChoice::Default)
    }
}

impl SpeakerPlan {
    /// `default`, a device id as `calldock devices` prints it, or `null`.
    pub fn parse(text: &str) -> Result<SpeakerPlan, String> {
        if text.trim() == "null" {
            return Ok(SpeakerPlan::Null);
        }
        DeviceChoice::parse(text).map(SpeakerPlan::Device).ok_or_else(|| {
            format!("{text:?} is not a speaker: give `default`, a device id from `calldock devices`, or `null`")
        })
    }
}

impl fmt::Display for SpeakerPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpeakerPlan::Device(choice) => write!(f, "{choice}"),
            SpeakerPlan::Null => f.write_str("null"),
        }
    }
}

/// The probe at `rate` Hz: a logarithmic chirp with 10 ms raised-cosine edges (no clicks).
pub fn probe(rate: u32) -> Vec<f32> {
    let rate_f = f64::from(rate.max(1));
    let len = (PROBE_SECONDS * rate_f) as usize;
    let ratio = PROBE_HIGH_HZ / PROBE_LOW_HZ;
    let k = ratio.ln() / PROBE_SECONDS;
    let edge = (0.010 * rate_f) as usize;
    (0..len)
        .map(|i| {
            let t = i as f64 / rate_f;
            // Phase of an exponential sweep: 2π f0 (e^{kt} − 1) / k.
            let phase = 2.0 * std::f64::consts::PI * PROBE_LOW_HZ * ((k * t).exp() - 1.0) / k;
            let fade = if i < edge {
                0.5 - 0.5 * (std::f64::consts::PI * i as f64 / edge as f64).cos()
            } else if len - i <= edge {
                0.5 - 0.5 * (std::f64::consts::PI * (len - i) as f64 / edge as f64).cos()
            } else {
                1.0
            };
            (phase.sin() * fade) as f32 * PROBE_PEAK
        })
        .collect()
}

/// The probe as the microphone heard it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Echo {
    /// From the moment the probe was handed to the output to its arrival in the capture.
    pub delay_ms: f64,
    /// RMS level of the probe in the capture (estimated apart from the noise around it).
    pub level_dbfs: f64,
    /// Normalized cross-correlation at the peak (1.0: an exact, scaled copy; lower with noise).
    pub correlation: f64,
}

/// Finds `probe` in `captured` (same rate), starting at most [`MAX_ECHO_DELAY`] after sample
/// `played_at` of the capture; `None` when it is not there. Pure: samples in, measurement out.
pub fn find_echo(probe: &[f32], captured: &[f32], played_at: usize, rate: u32) -> Option<Echo> {
    let max_lag = (MAX_ECHO_DELAY.as_secs_f64() * f64::from(rate)) as usize;
    if probe.is_empty() || played_at >= captured.len() || rate == 0 {
        return None;
    }
    let searched = &captured[played_at..captured.len().min(played_at + max_lag + probe.len())];
    if searched.len() < probe.len() {
        return None;
    }
    let correlation = cross_correlate(probe, searched);
    let rms = (correlation.iter().map(|c| c * c).sum::<f64>() / correlation.len() as f64).sqrt();
    // The absolute value: a speaker wired with its polarity inverted echoes the probe upside down.
    let (lag, peak) = correlation
        .iter()
        .enumerate()
        .map(|(lag, c)| (lag, c.abs()))
        .fold((0, 0.0), |best, candidate| if candidate.1 > best.1 { candidate } else { best });
    if rms <= f64::EPSILON || peak / rms < HEARD_PEAK_TO_RMS {
        return None;
    }
    let probe_energy: f64 = probe.iter().map(|&s| f64::from(s).powi(2)).sum();
    let window = &searched[lag..lag + probe.len()];
    let window_energy: f64 = window.iter().map(|&s| f64::from(s).powi(2)).sum();
    // The probe's gain along the echo path (least squares): its level in the capture apart
    // from the noise around it.
    let gain = peak / probe_energy;
    let correlation = peak / (probe_energy * window_energy).sqrt().max(f64::EPSILON);
    (correlation >= HEARD_CORRELATION).then(|| Echo {
        delay_ms: lag as f64 * 1000.0 / f64::from(rate),
        level_dbfs: level::rms_dbfs(probe) + level::dbfs(gain),
        correlation,
    })
}

/// `out[lag] = Σ probe[i]·signal[lag + i]` for every lag where the probe fits, by FFT.
fn cross_correlate(probe: &[f32], signal: &[f32]) -> Vec<f64> {
    let size = (probe.len() + signal.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(size);
    let inverse = planner.plan_fft_inverse(size);
    let spectrum = |samples: &mut dyn Iterator<Item = f64>| {
        let mut buffer: Vec<f64> = samples.collect();
        buffer.resize(size, 0.0);
        let mut out = forward.make_output_vec();
        // The lengths are the plan's own, so the transform cannot fail.
        forward.process(&mut buffer, &mut out).expect("buffers sized by the plan");
        out
    };
    let signal_spectrum = spectrum(&mut signal.iter().map(|&s| f64::from(s)));
    let probe_spectrum = spectrum(&mut probe.iter().map(|&s| f64::from(s)));
    let mut product: Vec<_> = signal_spectrum.iter().zip(&probe_spectrum).map(|(s, p)| s * p.conj()).collect();
    // A real signal's spectrum has real DC and Nyquist bins; keep them exactly real.
    if let Some(first) = product.first_mut() {
        first.im = 0.0;
    }
    if let Some(last) = product.last_mut() {
        last.im = 0.0;
    }
    let mut out = inverse.make_output_vec();
    inverse.process(&mut product, &mut out).expect("buffers sized by the plan");
    let scale = 1.0 / size as f64;
    out.truncate(signal.len() - probe.len() + 1);
    out.iter_mut().for_each(|v| *v *= scale);
    out
}

/// The speaker check's figures in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeakerFigures {
    /// The output device the probe played on.
    pub speaker: String,
    /// The microphone that listened; `None` when none could (a file, or none present).
    pub microphone: Option<String>,
    pub probe_ms: f64,
    /// Where the microphone heard the probe; `None` when it did not (or none listened).
    pub echo: Option<Echo>,
}

/// The verdict once the probe has played. Pure.
pub fn verdict(figures: SpeakerFigures) -> CheckResult {
    let played = format!("played a {:.1} s test chirp on {}", figures.probe_ms / 1000.0, figures.speaker);
    let summary = match (&figures.microphone, &figures.echo) {
        (Some(mic), Some(echo)) => format!(
            "{played}; the microphone {mic} heard it after {:.0} ms at {:.1} dBFS (echo path)",
            echo.delay_ms, echo.level_dbfs
        ),
        (Some(mic), None) => format!(
            "{played}; the microphone {mic} did not hear it (normal with headphones; otherwise check the speaker volume)"
        ),
        (None, _) => format!("{played}; no microphone listened, so the echo path was not measured"),
    };
    CheckResult::pass(Check::Speaker, summary, Some(Figures::Speaker(figures)))
}

/// The verdict when the output could not be opened or broke.
pub fn device_problem(error: &DeviceError) -> CheckResult {
    let pick = "or pick another one (`calldock devices` lists them)";
    let remedy = match error {
        DeviceError::NotFound { .. } => "Pick a speaker that is present: `calldock devices` lists them".to_string(),
        DeviceError::NoDefault { .. } => {
            "No speaker found: connect one and check the sound server (PulseAudio or PipeWire) is running".to_string()
        }
        DeviceError::Open { .. } => format!("The speaker would not open: close programs that may hold it, {pick}"),
        DeviceError::Failed { .. } => format!("The speaker stopped during the test: check it is plugged in, {pick}"),
        DeviceError::Enumerate(_) => {
            "The sound system is not answering: check it is running (`pactl info` on Linux) and try again".to_string()
        }
    };
    CheckResult::problem(Check::Speaker, Verdict::Fail, error.code(), error.to_string(), remedy, None)
}

/// Runs the speaker check: plays the probe on `plan`'s output and, when `microphone` is a
/// device, listens for it there.
pub fn run(plan: &SpeakerPlan, microphone: &MicSource) -> CheckResult {
    let output = match plan {
        SpeakerPlan::Null => {
            return CheckResult::problem(
                Check::Speaker,
                Verdict::Warn,
                "speaker_not_checked",
                "the speaker is `null`: nothing was played".into(),
                "Give `--speaker default` or a device from `calldock devices` to check the speaker".into(),
                None,
            );
        }
        SpeakerPlan::Device(choice) => choice,
    };
    // Listen first: the capture must be delivering before the probe plays, or its start would
    // be lost to the stream's own start-up.
    let mut listener = match microphone {
        MicSource::Device(choice) => Capture::open(choice).ok().and_then(|capture| Listener::start(capture, choice)),
        MicSource::Wav(_) => None,
    };
    let rate = listener.as_ref().map_or(48_000, |l| l.capture.rate());
    let samples = probe(rate);
    let sound = match Ringtone::from_samples("speaker probe", rate, samples.clone()) {
        Ok(sound) => sound,
        Err(e) => {
            let remedy = "Pick another microphone: this one reports no usable sample rate".to_string();
            return CheckResult::problem(Check::Speaker, Verdict::Fail, e.code(), e.to_string(), remedy, None);
        }
    };
    let played_at = listener.as_mut().map_or(0, |l| l.drain());
    let player = match Ringer::play_once(output, &sound, 1.0) {
        Ok(player) => player,
        Err(e) => return device_problem(&e),
    };
    let speaker = match output {
        DeviceChoice::Default => format!("default ({})", player.device_id()),
        DeviceChoice::Id(id) => id.clone(),
    };
    let probe_duration = Duration::from_secs_f64(PROBE_SECONDS);
    // Enough audio for the probe and the longest echo path looked for; a wall-clock cap in
    // case the microphone stops delivering.
    let needed = played_at + ((PROBE_SECONDS + MAX_ECHO_DELAY.as_secs_f64()) * f64::from(rate)) as usize;
    let wait = probe_duration + MAX_ECHO_DELAY + Duration::from_millis(500);
    let deadline = Instant::now() + wait;
    let mut heard_enough = listener.is_none();
    while Instant::now() < deadline {
        std::thread::sleep(POLL);
        match listener.as_mut() {
            Some(l) => {
                l.drain();
                if l.samples.len() >= needed {
                    heard_enough = true;
                }
            }
            None => heard_enough = player.finished(),
        }
        if heard_enough && player.finished() {
            break;
        }
    }
    if !player.finished() {
        let id = player.device_id().to_string();
        return device_problem(&DeviceError::Failed {
            direction: Direction::Output,
            id,
            reason: format!("the {PROBE_SECONDS} s probe was still not played after {:.1} s", wait.as_secs_f64()),
        });
    }
    player.stop();
    let (microphone, echo) = match listener {
        Some(l) => (Some(l.name), find_echo(&samples, &l.samples, played_at, rate)),
        None => (None, None),
    };
    verdict(SpeakerFigures { speaker, microphone, probe_ms: PROBE_SECONDS * 1000.0, echo })
}

/// A microphone capture that is delivering, with everything it delivered so far.
struct Listener {
    capture: Capture,
    name: String,
    samples: Vec<f32>,
    chunk: Vec<f32>,
}

impl Listener {
    /// `None` when the microphone delivers nothing within [`MIC_START_LIMIT`].
    fn start(capture: Capture, choice: &DeviceChoice) -> Option<Listener> {
        let name = match choice {
            DeviceChoice::Default => format!("default ({})", capture.device_id()),
            DeviceChoice::Id(id) => id.clone(),
        };
        let rate = capture.rate() as usize;
        let mut listener = Listener { capture, name, samples: Vec::with_capacity(rate * 3), chunk: Vec::new() };
        let deadline = Instant::now() + MIC_START_LIMIT;
        while listener.drain() == 0 {
            if Instant::now() >= deadline || listener.capture.health().failure().is_some() {
                return None;
            }
            std::thread::sleep(POLL);
        }
        Some(listener)
    }

    /// Moves what the capture delivered into `samples`; returns how many samples it holds now.
    fn drain(&mut self) -> usize {
        self.chunk.clear();
        self.capture.read(&mut self.chunk);
        self.samples.extend_from_slice(&self.chunk);
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    /// Deterministic noise in [-1, 1] (a linear congruential generator).
    fn noise(len: usize, amplitude: f32, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((state >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0) * amplitude
            })
            .collect()
    }

    /// A capture holding `lead` samples of noise, then the probe scaled by `gain` after
    /// `delay_ms`, then noise.
    fn capture_with_echo(lead: usize, delay_ms: f64, gain: f32, noise_amplitude: f32) -> Vec<f32> {
        let probe = probe(RATE);
        let delay = (delay_ms * f64::from(RATE) / 1000.0) as usize;
        let mut captured = noise(lead + delay + probe.len() + RATE as usize, noise_amplitude, 7);
        for (i, s) in probe.iter().enumerate() {
            captured[lead + delay + i] += s * gain;
        }
        captured
    }

    #[test]
    fn the_probe_is_a_clean_chirp_at_its_level() {
        let p = probe(RATE);
        assert_eq!(p.len(), (PROBE_SECONDS * f64::from(RATE)) as usize);
        assert!(p[0].abs() < 1e-3 && p[p.len() - 1].abs() < 1e-2, "faded edges");
        let peak = p.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - PROBE_PEAK).abs() < 0.01, "{peak}");
        assert!(!level::is_clipping(&p));
    }

    #[test]
    fn an_echo_is_found_at_its_delay_and_level() {
        for (delay_ms, gain) in [(0.0, 1.0), (37.5, 0.5), (180.0, 0.05), (950.0, 0.2)] {
            let captured = capture_with_echo(4_800, delay_ms, gain, 0.002);
            let echo = find_echo(&probe(RATE), &captured, 4_800, RATE).expect("heard");
            assert!((echo.delay_ms - delay_ms).abs() <= 0.1, "{delay_ms} ms: {echo:?}");
            let expected = level::rms_dbfs(&probe(RATE)) + 20.0 * f64::from(gain).log10();
            assert!((echo.level_dbfs - expected).abs() < 1.0, "{delay_ms} ms: {echo:?} vs {expected}");
            assert!(echo.correlation > 0.9, "{echo:?}");
        }
    }

    #[test]
    fn an_echo_under_room_noise_is_still_found() {
        // The probe's level 16 dB below the noise's: correlation still finds it, and measures
        // its level apart from the noise.
        let captured = capture_with_echo(0, 120.0, 0.05, 0.1);
        let echo = find_echo(&probe(RATE), &captured, 0, RATE).expect("heard under noise");
        assert!((echo.delay_ms - 120.0).abs() <= 0.1, "{echo:?}");
        let expected = level::rms_dbfs(&probe(RATE)) + 20.0 * 0.05f64.log10();
        assert!((echo.level_dbfs - expected).abs() < 1.0, "{echo:?} vs {expected}");
        assert!(echo.correlation < 0.5, "noise lowers the normalized correlation: {echo:?}");
    }

    #[test]
    fn noise_or_silence_alone_is_not_an_echo() {
        let len = RATE as usize * 2;
        assert_eq!(find_echo(&probe(RATE), &noise(len, 0.3, 3), 0, RATE), None);
        assert_eq!(find_echo(&probe(RATE), &vec![0.0; len], 0, RATE), None);
        // Too short to hold the probe, or nothing after the play point.
        assert_eq!(find_echo(&probe(RATE), &noise(1000, 0.3, 3), 0, RATE), None);
        assert_eq!(find_echo(&probe(RATE), &noise(len, 0.3, 3), len, RATE), None);
        assert_eq!(find_echo(&[], &noise(len, 0.3, 3), 0, RATE), None);
    }

    #[test]
    fn an_echo_later_than_the_longest_path_is_not_looked_for() {
        let captured = capture_with_echo(0, 1_500.0, 0.5, 0.0);
        assert_eq!(find_echo(&probe(RATE), &captured, 0, RATE), None);
    }

    #[test]
    fn verdicts_report_the_echo_or_its_absence_and_pass() {
        let echo = Echo { delay_ms: 42.0, level_dbfs: -30.0, correlation: 0.97 };
        let figures = |echo, microphone: Option<&str>| SpeakerFigures {
            speaker: "spk".into(),
            microphone: microphone.map(String::from),
            probe_ms: 600.0,
            echo,
        };
        let heard = verdict(figures(Some(echo), Some("mic")));
        assert_eq!(heard.verdict, Verdict::Pass);
        assert!(heard.summary.contains("after 42 ms at -30.0 dBFS"), "{}", heard.summary);
        let unheard = verdict(figures(None, Some("mic")));
        assert_eq!(unheard.verdict, Verdict::Pass);
        assert!(unheard.summary.contains("did not hear it"), "{}", unheard.summary);
        let alone = verdict(figures(None, None));
        assert!(alone.summary.contains("no microphone listened"), "{}", alone.summary);
    }

    #[test]
    fn plans_parse_and_null_is_not_checked() {
        assert_eq!(SpeakerPlan::parse("null"), Ok(SpeakerPlan::Null));
        assert_eq!(SpeakerPlan::parse("default"), Ok(SpeakerPlan::Device(DeviceChoice::Default)));
        let result = run(&SpeakerPlan::Null, &MicSource::default());
        assert_eq!((result.verdict, result.code), (Verdict::Warn, Some("speaker_not_checked")));
        assert!(result.remedy.unwrap().contains("--speaker"));
    }

    #[test]
    fn an_unknown_speaker_fails_with_a_remedy() {
        let plan = SpeakerPlan::Device(DeviceChoice::Id("nohost:calldock-no-such-speaker".into()));
        let result = run(&plan, &MicSource::Wav("unused.wav".into()));
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(result.remedy.is_some(), "{result:?}");
    }
}
