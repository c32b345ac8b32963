//! The microphone check (SPEC §6, after test.webrtc.org): take up to 5 s of audio and require
//! 2 s of sound in it; then judge its level, noise floor and clipping.
//!
//! The samples are cut into 50 ms windows. A window "has sound" when its RMS is above
//! [`SOUND_DBFS`]; the level is the RMS of those windows only, so pauses between words do not
//! make speech look quiet; the noise floor is a low percentile of all windows.
//!
//! Verdicts, in order: under 2 s of sound in the first 5 s → fail (nothing heard); more than six
//! full-scale samples in a row → warn (clipping); a level below −60 dBFS → warn (too quiet);
//! otherwise pass. [`MicSignal`] and [`verdict`] decide this from samples alone; [`run`] only
//! gets the samples, from a WAV file or a device.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use calldock_devices::{Capture, DeviceChoice, DeviceError};
use calldock_media::level;
use serde::Serialize;

use crate::{Check, CheckResult, Figures, Verdict};

/// The most audio judged: the first five seconds a device delivers, or of a file.
pub const LISTEN_SECONDS: u32 = 5;
/// Sound needed within [`LISTEN_SECONDS`] for a verdict on its level (test.webrtc.org).
pub const NEEDED_SOUND_SECONDS: f64 = 2.0;
/// Length of the windows levels are measured over.
pub const WINDOW_MS: u32 = 50;
/// A window with an RMS above this has sound. Well above 16-bit dither and the zeros of a muted
/// microphone (−90 dBFS and below), well below speech that any working microphone picks up, and
/// below the −60 dBFS "too quiet" line, so quiet speech is told apart from no sound at all.
pub const SOUND_DBFS: f64 = -80.0;
/// The noise floor is this percentile of the windows' levels: the quiet moments between words.
pub const NOISE_FLOOR_PERCENTILE: f64 = 0.10;
/// How often a device's ring is drained while listening; the ring holds half a second.
const POLL: Duration = Duration::from_millis(20);
/// The longest a device is listened to on the wall clock. Listening otherwise ends after five
/// seconds of *audio*, because a PulseAudio recording stream delivers nothing for its first
/// 1–4 s here (docs/audio-stack.md): five wall-clock seconds would judge as little as one of
/// audio. This cap keeps a whole doctor run under 10 s when a device is slow or delivers nothing.
pub const LISTEN_LIMIT: Duration = Duration::from_millis(7_500);

/// Where the microphone check gets its audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicSource {
    /// A sound device (`default` or an id from `calldock devices`).
    Device(DeviceChoice),
    /// A WAV file standing in for the microphone: replays a recorded problem on any machine.
    Wav(PathBuf),
}

impl Default for MicSource {
    fn default() -> Self {
        MicSource::Device(DeviceChoice::Default)
    }
}

impl MicSource {
    /// `default`, a device id as `calldock devices` prints it, or a path ending in `.wav`.
    pub fn parse(text: &str) -> Result<MicSource, String> {
        if text.to_lowercase().ends_with(".wav") {
            return Ok(MicSource::Wav(PathBuf::from(text)));
        }
        DeviceChoice::parse(text).map(MicSource::Device).ok_or_else(|| {
            format!("{text:?} is not a microphone: give `default`, a device id from `calldock devices`, or a WAV file")
        })
    }
}

impl fmt::Display for MicSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MicSource::Device(choice) => write!(f, "{choice}"),
            MicSource::Wav(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Audio collected for the check: at most [`LISTEN_SECONDS`] of it, with each complete 50 ms
/// window's level measured as it arrives, so a listener can stop as soon as there is enough.
#[derive(Debug, Clone)]
pub struct MicSignal {
    rate: u32,
    window: usize,
    samples: Vec<f32>,
    /// RMS in dBFS of each complete window so far.
    window_dbfs: Vec<f64>,
}

impl MicSignal {
    pub fn new(sample_rate: u32) -> Self {
        let rate = sample_rate;
        let window = (rate as usize * WINDOW_MS as usize / 1000).max(1);
        Self {
            rate,
            window,
            samples: Vec::with_capacity(rate as usize * LISTEN_SECONDS as usize),
            window_dbfs: Vec::new(),
        }
    }

    /// Adds captured samples; whatever comes after the first [`LISTEN_SECONDS`] is left out.
    pub fn push(&mut self, samples: &[f32]) {
        let room = self.capacity() - self.samples.len();
        self.samples.extend_from_slice(&samples[..samples.len().min(room)]);
        while (self.window_dbfs.len() + 1) * self.window <= self.samples.len() {
            let start = self.window_dbfs.len() * self.window;
            self.window_dbfs.push(level::rms_dbfs(&self.samples[start..start + self.window]));
        }
    }

    fn capacity(&self) -> usize {
        self.rate as usize * LISTEN_SECONDS as usize
    }

    fn window_seconds(&self) -> f64 {
        self.window as f64 / self.rate_divisor()
    }

    /// A rate of zero (never from a file or a device that opened) holds no audio, since the
    /// capacity is zero; it must still not divide by zero.
    fn rate_divisor(&self) -> f64 {
        f64::from(self.rate.max(1))
    }

    /// Seconds of windows with sound so far.
    pub fn sound_seconds(&self) -> f64 {
        self.window_dbfs.iter().filter(|&&db| db > SOUND_DBFS).count() as f64 * self.window_seconds()
    }

    /// There is enough sound for a verdict on its level: listening can stop.
    pub fn has_enough_sound(&self) -> bool {
        self.sound_seconds() >= NEEDED_SOUND_SECONDS
    }

    /// [`LISTEN_SECONDS`] of audio are in: more would not be judged.
    pub fn is_full(&self) -> bool {
        self.samples.len() >= self.capacity()
    }

    pub fn analyse(&self) -> MicAnalysis {
        let sound: Vec<f32> = self
            .samples
            .chunks_exact(self.window)
            .zip(&self.window_dbfs)
            .filter(|&(_, &db)| db > SOUND_DBFS)
            .flat_map(|(window, _)| window.iter().copied())
            .collect();
        let mut sorted = self.window_dbfs.clone();
        sorted.sort_by(f64::total_cmp);
        let noise_floor = if sorted.is_empty() {
            level::FLOOR_DBFS
        } else {
            sorted[((sorted.len() - 1) as f64 * NOISE_FLOOR_PERCENTILE).round() as usize]
        };
        let longest_run = level::longest_full_scale_run(&self.samples);
        MicAnalysis {
            sample_rate: self.rate,
            analysed_seconds: self.samples.len() as f64 / self.rate_divisor(),
            sound_seconds: self.sound_seconds(),
            level_dbfs: level::rms_dbfs(&sound),
            noise_floor_dbfs: noise_floor,
            peak_dbfs: level::peak_dbfs(&self.samples),
            longest_full_scale_run: longest_run,
            clipping: longest_run > level::CLIPPING_RUN,
        }
    }
}

/// Measurements of a microphone's audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MicAnalysis {
    pub sample_rate: u32,
    /// Audio judged (at most [`LISTEN_SECONDS`]).
    pub analysed_seconds: f64,
    /// Of which windows with sound.
    pub sound_seconds: f64,
    /// RMS of the windows with sound ([`level::FLOOR_DBFS`] when there were none).
    pub level_dbfs: f64,
    pub noise_floor_dbfs: f64,
    pub peak_dbfs: f64,
    pub longest_full_scale_run: usize,
    pub clipping: bool,
}

/// Analyses samples at any rate (no resampling: levels and clipping runs are judged on what the
/// microphone gave, before a resampler could smooth a clipped edge).
pub fn analyse(samples: &[f32], sample_rate: u32) -> MicAnalysis {
    let mut signal = MicSignal::new(sample_rate);
    signal.push(samples);
    signal.analyse()
}

/// The microphone check's figures in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MicFigures {
    /// The device id or file judged.
    pub source: String,
    #[serde(flatten)]
    pub analysis: MicAnalysis,
}

const PICK_ANOTHER: &str = "or pick another one (`calldock devices` lists them)";

/// The verdict on a microphone's audio. `source` names it in the summary.
pub fn verdict(source: &str, analysis: MicAnalysis) -> CheckResult {
    let a = &analysis;
    let figures = format!(
        "level {:.1} dBFS, noise floor {:.1} dBFS, peak {:.1} dBFS, {:.1} s of sound in {:.1} s",
        a.level_dbfs, a.noise_floor_dbfs, a.peak_dbfs, a.sound_seconds, a.analysed_seconds
    );
    let (verdict, code, summary, remedy) = if a.analysed_seconds == 0.0 {
        (
            Verdict::Fail,
            "mic_no_audio",
            format!("{source}: no audio arrived at all"),
            format!("The microphone delivered nothing: close other programs that may hold it, {PICK_ANOTHER}"),
        )
    } else if a.sound_seconds < NEEDED_SOUND_SECONDS {
        let remedy = if a.sound_seconds == 0.0 {
            format!("Nothing was heard: unmute the microphone (on the device or in the sound settings), {PICK_ANOTHER}")
        } else {
            format!("Too little sound: speak throughout the test and check the microphone is unmuted, {PICK_ANOTHER}")
        };
        (
            Verdict::Fail,
            "mic_silent",
            format!("{source}: no sound from the microphone, needs {NEEDED_SOUND_SECONDS:.1} s; {figures}"),
            remedy,
        )
    } else if a.clipping {
        (
            Verdict::Warn,
            "mic_clipping",
            format!("{source}: clipping ({} full-scale samples in a row); {figures}", a.longest_full_scale_run),
            "The microphone is too loud and distorts: lower its input volume or move back from it".to_string(),
        )
    } else if a.level_dbfs < level::SILENCE_DBFS {
        (
            Verdict::Warn,
            "mic_too_quiet",
            format!("{source}: too quiet, below {:.0} dBFS; {figures}", level::SILENCE_DBFS),
            "Raise the microphone's input volume in the sound settings, or move closer to it".to_string(),
        )
    } else {
        let summary = format!("{source}: {figures}, no clipping");
        return CheckResult::pass(Check::Mic, summary, Some(mic_figures(source, analysis)));
    };
    CheckResult::problem(Check::Mic, verdict, code, summary, remedy, Some(mic_figures(source, analysis)))
}

fn mic_figures(source: &str, analysis: MicAnalysis) -> Figures {
    Figures::Microphone(MicFigures { source: source.to_string(), analysis })
}

/// The verdict when a device could not be opened or broke: what went wrong and what to do.
pub fn device_problem(error: &DeviceError) -> CheckResult {
    let remedy = match error {
        DeviceError::NotFound { .. } => "Pick a microphone that is present: `calldock devices` lists them".to_string(),
        DeviceError::NoDefault { .. } => {
            "No microphone found: connect one and check the sound server (PulseAudio or PipeWire) is running"
                .to_string()
        }
        DeviceError::Open { .. } => {
            format!("Another program may hold the microphone or access is denied: close it, {PICK_ANOTHER}")
        }
        DeviceError::Failed { .. } => {
            format!("The microphone stopped during the test: check it is still plugged in, {PICK_ANOTHER}")
        }
        DeviceError::Enumerate(_) => {
            "The sound system is not answering: check it is running (`pactl info` on Linux) and try again".to_string()
        }
    };
    CheckResult::problem(Check::Mic, Verdict::Fail, error.code(), error.to_string(), remedy, None)
}

/// Runs the microphone check: reads the file, or listens to the device for up to 5 s of audio
/// (less once 2 s of sound are in; never longer than [`LISTEN_LIMIT`]).
pub fn run(source: &MicSource) -> CheckResult {
    match source {
        MicSource::Wav(path) => {
            let unreadable = |reason: String| {
                CheckResult::problem(
                    Check::Mic,
                    Verdict::Fail,
                    "mic_file_unreadable",
                    reason,
                    "Give a readable WAV file (16-bit PCM or 32-bit float), or a device from `calldock devices`".into(),
                    None,
                )
            };
            match calldock_audio::wav::read_mono(path) {
                Ok((samples, _)) if samples.is_empty() => unreadable(format!("{}: holds no audio", path.display())),
                Ok((samples, rate)) => verdict(&path.display().to_string(), analyse(&samples, rate)),
                Err(e) => unreadable(e.to_string()),
            }
        }
        MicSource::Device(choice) => listen(choice),
    }
}

fn listen(choice: &DeviceChoice) -> CheckResult {
    let mut capture = match Capture::open(choice) {
        Ok(capture) => capture,
        Err(e) => return device_problem(&no_default_instead(choice, e)),
    };
    let source = match choice {
        DeviceChoice::Default => format!("default ({})", capture.device_id()),
        DeviceChoice::Id(id) => id.clone(),
    };
    let mut signal = MicSignal::new(capture.rate());
    let mut buffer = Vec::with_capacity(capture.rate() as usize);
    let deadline = Instant::now() + LISTEN_LIMIT;
    loop {
        std::thread::sleep(POLL);
        buffer.clear();
        capture.read(&mut buffer);
        signal.push(&buffer);
        if let Some(reason) = capture.health().failure() {
            return device_problem(&DeviceError::Failed {
                direction: calldock_devices::Direction::Input,
                id: source,
                reason,
            });
        }
        if signal.has_enough_sound() || signal.is_full() || Instant::now() >= deadline {
            break;
        }
    }
    verdict(&source, signal.analyse())
}

/// Without a sound server, cpal's ALSA host still offers a default microphone that no card
/// backs, and opening it fails as if it were busy. When the default will not open and is not
/// among the devices present, the truth is that there is no microphone.
fn no_default_instead(choice: &DeviceChoice, error: DeviceError) -> DeviceError {
    let direction = calldock_devices::Direction::Input;
    match (choice, &error) {
        (DeviceChoice::Default, DeviceError::Open { id, .. }) => match calldock_devices::present(direction) {
            Ok(present) if !present.ids.contains(id) => DeviceError::NoDefault { direction },
            _ => error,
        },
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use calldock_audio::pipeline::test_signal::speech_like;

    use super::*;

    const RATE: u32 = 48_000;

    fn scaled(samples: &[f32], gain: f32) -> Vec<f32> {
        samples.iter().map(|s| s * gain).collect()
    }

    /// Speech scaled so the check measures its level at `dbfs`.
    fn speech_at(dbfs: f64, seconds: f32) -> Vec<f32> {
        let speech = speech_like(seconds);
        let measured = analyse(&speech, RATE).level_dbfs;
        scaled(&speech, 10f32.powf(((dbfs - measured) / 20.0) as f32))
    }

    #[test]
    fn speech_passes_with_its_figures() {
        let result = run_on(&speech_like(5.0));
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        assert_eq!((result.code, result.remedy.as_deref()), (None, None));
        let Some(Figures::Microphone(f)) = &result.figures else { panic!("figures: {result:?}") };
        assert!(f.analysis.sound_seconds >= NEEDED_SOUND_SECONDS, "{f:?}");
        assert!(f.analysis.level_dbfs > -30.0 && f.analysis.level_dbfs < -5.0, "{f:?}");
        assert!(!f.analysis.clipping);
        assert!(result.summary.contains("dBFS") && result.summary.contains("s of sound"), "{}", result.summary);
    }

    fn run_on(samples: &[f32]) -> CheckResult {
        verdict("test", analyse(samples, RATE))
    }

    #[test]
    fn digital_silence_fails_with_a_remedy() {
        let result = run_on(&vec![0.0; RATE as usize * 5]);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("mic_silent")));
        let remedy = result.remedy.unwrap();
        assert!(remedy.contains("Nothing was heard") && remedy.contains("calldock devices"), "{remedy}");
        assert!(result.summary.contains("no sound from the microphone"), "{}", result.summary);
    }

    #[test]
    fn sound_must_last_two_seconds_within_the_first_five() {
        // 1.5 s of speech, then silence: some sound, not enough.
        let mut samples = speech_at(-25.0, 1.5);
        let sound = analyse(&samples, RATE).sound_seconds;
        assert!(sound > 0.5 && sound < NEEDED_SOUND_SECONDS, "{sound}");
        samples.resize(RATE as usize * 5, 0.0);
        let result = run_on(&samples);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("mic_silent")));
        assert!(result.remedy.unwrap().contains("Too little sound"));

        // Plenty of speech that starts only after 5 s is not heard in time.
        let mut late = vec![0.0; RATE as usize * 5];
        late.extend(speech_like(5.0));
        assert_eq!(run_on(&late).verdict, Verdict::Fail);
        assert_eq!(analyse(&late, RATE).analysed_seconds, 5.0);
    }

    #[test]
    fn clipped_speech_warns() {
        let clipped: Vec<f32> = speech_like(5.0).iter().map(|s| (s * 8.0).clamp(-1.0, 1.0)).collect();
        let result = run_on(&clipped);
        assert_eq!((result.verdict, result.code), (Verdict::Warn, Some("mic_clipping")), "{result:?}");
        assert!(result.remedy.unwrap().contains("lower its input volume"));
    }

    #[test]
    fn six_full_scale_samples_in_a_row_are_not_clipping_seven_are() {
        let mut speech = speech_at(-20.0, 5.0);
        speech[1000..1006].fill(1.0);
        assert_eq!(run_on(&speech).verdict, Verdict::Pass);
        speech[30_000..30_007].fill(-1.0);
        let result = run_on(&speech);
        assert_eq!(result.code, Some("mic_clipping"));
        assert!(result.summary.contains("7 full-scale samples"), "{}", result.summary);
    }

    #[test]
    fn speech_at_minus_62_dbfs_is_too_quiet_and_at_minus_58_is_fine() {
        let quiet = speech_at(-62.0, 5.0);
        let analysis = analyse(&quiet, RATE);
        assert!((analysis.level_dbfs + 62.0).abs() < 0.5, "{analysis:?}");
        let result = verdict("test", analysis);
        assert_eq!((result.verdict, result.code), (Verdict::Warn, Some("mic_too_quiet")), "{result:?}");
        assert!(result.remedy.unwrap().contains("Raise the microphone's input volume"));

        assert_eq!(run_on(&speech_at(-58.0, 5.0)).verdict, Verdict::Pass);
    }

    #[test]
    fn the_level_ignores_pauses_and_the_noise_floor_finds_them() {
        // Speech at −20 dBFS over −70 dBFS hiss: the level stays near the speech's, the floor is
        // the hiss heard between words.
        let mut noise = 0x1234_5678u32;
        let amplitude = 10f32.powf(-70.0 / 20.0) * 3f32.sqrt(); // uniform noise: RMS = a/√3
        let samples: Vec<f32> = speech_at(-20.0, 5.0)
            .into_iter()
            .map(|s| {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                s + amplitude * ((noise as f32 / u32::MAX as f32) * 2.0 - 1.0)
            })
            .collect();
        let a = analyse(&samples, RATE);
        assert!((a.level_dbfs + 20.0).abs() < 3.0, "hiss counts as sound but barely moves the level: {a:?}");
        assert!((a.noise_floor_dbfs + 70.0).abs() < 1.5, "{a:?}");
        assert_eq!(a.analysed_seconds, 5.0);
    }

    #[test]
    fn the_sample_rate_is_taken_as_given() {
        // The same speech at 16 kHz (every third sample): the same verdict and the same durations.
        let speech: Vec<f32> = speech_like(5.0).into_iter().step_by(3).collect();
        let a = analyse(&speech, 16_000);
        assert_eq!(a.analysed_seconds, 5.0);
        assert_eq!(verdict("t", a).verdict, Verdict::Pass);
    }

    #[test]
    fn a_listener_can_stop_once_two_seconds_of_sound_are_in() {
        let speech = speech_at(-20.0, 5.0);
        let mut signal = MicSignal::new(RATE);
        let mut pushed = 0;
        for chunk in speech.chunks(480) {
            signal.push(chunk);
            pushed += chunk.len();
            if signal.has_enough_sound() {
                break;
            }
        }
        assert!(signal.has_enough_sound());
        assert!(pushed < speech.len(), "stopped before the end: {pushed}");
        assert!(!signal.is_full());
        assert_eq!(verdict("t", signal.analyse()).verdict, Verdict::Pass);
        signal.push(&vec![0.1; RATE as usize * 10]);
        assert!(signal.is_full());
        assert_eq!(signal.analyse().analysed_seconds, f64::from(LISTEN_SECONDS));
    }

    #[test]
    fn empty_and_strange_input_gives_verdicts_not_panics() {
        let empty = verdict("t", analyse(&[], RATE));
        assert_eq!((empty.verdict, empty.code), (Verdict::Fail, Some("mic_no_audio")));
        assert_eq!(run_on(&vec![f32::NAN; 48_000]).verdict, Verdict::Fail);
        assert_eq!(run_on(&vec![f32::INFINITY; 48_000]).verdict, Verdict::Fail);
        assert_eq!(verdict("t", analyse(&[0.5; 100], 0)).verdict, Verdict::Fail);
    }

    #[test]
    fn device_problems_fail_with_codes_and_remedies() {
        use calldock_devices::Direction::Input;
        let cases = [
            (DeviceError::NotFound { direction: Input, id: "pulseaudio:gone".into() }, "calldock devices"),
            (DeviceError::NoDefault { direction: Input }, "connect one"),
            (DeviceError::Open { direction: Input, id: "x".into(), reason: "busy".into() }, "Another program"),
            (DeviceError::Failed { direction: Input, id: "x".into(), reason: "unplugged".into() }, "plugged in"),
            (DeviceError::Enumerate("no server".into()), "pactl info"),
        ];
        for (error, hint) in cases {
            let result = device_problem(&error);
            assert_eq!(result.verdict, Verdict::Fail);
            assert_eq!(result.code, Some(error.code()));
            assert_eq!(result.summary, error.to_string());
            assert!(result.remedy.as_deref().unwrap().contains(hint), "{result:?}");
        }
    }

    #[test]
    fn sources_parse_from_what_users_type() {
        assert_eq!(MicSource::parse("default"), Ok(MicSource::Device(DeviceChoice::Default)));
        assert_eq!(MicSource::parse("Quiet.WAV"), Ok(MicSource::Wav("Quiet.WAV".into())));
        assert_eq!(
            MicSource::parse("pulseaudio:vmic.monitor"),
            Ok(MicSource::Device(DeviceChoice::Id("pulseaudio:vmic.monitor".into())))
        );
        assert!(MicSource::parse("loud").unwrap_err().contains("calldock devices"));
    }

    #[test]
    fn files_are_read_and_unreadable_ones_fail_with_a_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("speech.wav");
        let mut wav = calldock_audio::wav::WavSpeaker::create(&path).unwrap();
        wav.write(&speech_like(5.0)).unwrap();
        wav.finish().unwrap();
        let result = run(&MicSource::Wav(path.clone()));
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        assert!(result.summary.starts_with(&path.display().to_string()));

        let empty = dir.path().join("empty.wav");
        calldock_audio::wav::WavSpeaker::create(&empty).unwrap().finish().unwrap();
        let empty = run(&MicSource::Wav(empty));
        assert_eq!(empty.code, Some("mic_file_unreadable"));
        assert!(empty.summary.contains("holds no audio"), "{}", empty.summary);

        let missing = run(&MicSource::Wav(dir.path().join("missing.wav")));
        assert_eq!((missing.verdict, missing.code), (Verdict::Fail, Some("mic_file_unreadable")));
        assert!(missing.summary.contains("missing.wav"), "{}", missing.summary);
        assert!(missing.remedy.unwrap().contains("WAV"));
    }
}
