//! The device boundary of a call. Virtual devices (a WAV file or silence as the microphone, a
//! WAV file or nothing as the speaker) and real ones (cpal, through `calldock-devices`) meet
//! the pipeline the same way: the microphone yields samples at its rate, the speaker takes
//! 20 ms frames when it has room. Virtual devices keep time by the session's clock; real ones
//! by their own.
//!
//! A real device that fails mid-call is replaced by the system default, and the session says
//! so ([`DeviceChange`]); when the user's chosen device comes back, the call returns to it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use calldock_audio::wav::{WavSpeaker, read_mono};
use calldock_audio::{FRAME_10MS, FRAME_20MS, SAMPLE_RATE};
use calldock_devices::{Capture, DeviceChoice, DeviceError, Direction, Playout};

/// What plays the microphone's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Microphone {
    Silence,
    /// A WAV file, played once from the start of media, then silence.
    Wav(PathBuf),
    /// A sound device.
    Device(DeviceChoice),
}

/// Where received audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    Null,
    /// Written as 48 kHz mono 16-bit; finished when the call ends.
    Wav(PathBuf),
    /// A sound device.
    Device(DeviceChoice),
}

/// A device in a call changed without the user asking: it failed and the default took over,
/// or the chosen one came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChange {
    pub direction: Direction,
    /// The device in use now (`none` when nothing could be opened).
    pub device: String,
    /// Why, in words a person can act on.
    pub reason: String,
}

impl DeviceChange {
    /// A switch the user asked for could not be made: the call stays on `current`.
    pub(crate) fn refused(direction: Direction, current: Option<&str>, reason: &str) -> DeviceChange {
        let device = current.unwrap_or(match direction {
            Direction::Input => "the current microphone",
            Direction::Output => "the current speaker",
        });
        DeviceChange { direction, device: device.to_string(), reason: format!("{reason}; the call stays on {device}") }
    }
}

/// How much received audio a device speaker keeps queued: enough to ride out a late tick of
/// the session's 10 ms clock, little enough not to add delay.
const PLAYOUT_QUEUE: usize = FRAME_20MS + FRAME_10MS;
/// A device whose callbacks stop for this long has gone, whether or not it said so.
const STALL: Duration = Duration::from_millis(1500);
/// A device may take longer to start (Bluetooth headsets, a sound server waking up).
const START_GRACE: Duration = Duration::from_secs(4);
/// How often a call looks at which devices are present: for a chosen device that was
/// unplugged (some sound servers move the stream to the default without telling), one that
/// came back, and a new system default.
const PRESENCE_CHECK: Duration = Duration::from_secs(2);

/// Opens a device off the async threads: opening can block for a while.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DeviceError> + Send + 'static,
) -> Result<T, DeviceError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(DeviceError::Enumerate(format!("the device thread stopped: {e}"))))
}

/// Notices a device that stopped calling back.
pub(crate) struct Watch {
    callbacks: u64,
    since: Instant,
}

impl Watch {
    fn new() -> Self {
        Self { callbacks: 0, since: Instant::now() }
    }

    /// Some(reason) when the stream failed or stalled.
    fn check(&mut self, health: &calldock_devices::StreamHealth, now: Instant) -> Option<String> {
        if let Some(failure) = health.failure() {
            return Some(failure);
        }
        self.check_progress(health.callbacks(), now)
    }

    /// Some(reason) when `callbacks` (the stream's count so far) stopped moving.
    fn check_progress(&mut self, callbacks: u64, now: Instant) -> Option<String> {
        if callbacks != self.callbacks {
            self.callbacks = callbacks;
            self.since = now;
            return None;
        }
        if callbacks == 0 {
            return (now.duration_since(self.since) >= START_GRACE).then(|| "it never started".to_string());
        }
        (now.duration_since(self.since) >= STALL).then(|| "it stopped delivering audio".to_string())
    }
}

/// A capture or playout stream, as [`Followed`] needs it.
pub(crate) trait DeviceStream: Sized + Send + 'static {
    const DIRECTION: Direction;
    fn open(choice: &DeviceChoice) -> Result<Self, DeviceError>;
    fn device_id(&self) -> &str;
    fn health(&self) -> &calldock_devices::StreamHealth;
}

impl DeviceStream for Capture {
    const DIRECTION: Direction = Direction::Input;
    fn open(choice: &DeviceChoice) -> Result<Self, DeviceError> {
        Capture::open(choice)
    }
    fn device_id(&self) -> &str {
        Capture::device_id(self)
    }
    fn health(&self) -> &calldock_devices::StreamHealth {
        Capture::health(self)
    }
}

impl DeviceStream for Playout {
    const DIRECTION: Direction = Direction::Output;
    fn open(choice: &DeviceChoice) -> Result<Self, DeviceError> {
        Playout::open(choice)
    }
    fn device_id(&self) -> &str {
        Playout::device_id(self)
    }
    fn health(&self) -> &calldock_devices::StreamHealth {
        Playout::health(self)
    }
}

/// A device stream that follows the user's choice: the default stands in for a chosen device
/// that failed or went away, the chosen one returns when it is back, and a "default" choice
/// follows the system's default.
pub(crate) struct Followed<S> {
    pub(crate) stream: S,
    chosen: DeviceChoice,
    /// Set while the default stands in for a chosen device.
    standing_in: bool,
    watch: Watch,
    last_presence_check: Instant,
}

impl<S: DeviceStream> Followed<S> {
    pub(crate) async fn open(chosen: &DeviceChoice) -> Result<Self, DeviceError> {
        let wanted = chosen.clone();
        let stream = off_thread(move || S::open(&wanted)).await?;
        Ok(Self {
            stream,
            chosen: chosen.clone(),
            standing_in: false,
            watch: Watch::new(),
            last_presence_check: Instant::now(),
        })
    }

    fn name() -> &'static str {
        match S::DIRECTION {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }

    fn change(device: &str, reason: String) -> DeviceChange {
        DeviceChange { direction: S::DIRECTION, device: device.to_string(), reason }
    }

    /// Replaces the stream; `standing_in` says whether the new one is a stand-in.
    async fn switch_to(&mut self, choice: DeviceChoice, standing_in: bool) -> Result<(), DeviceError> {
        let stream = off_thread(move || S::open(&choice)).await?;
        self.stream = stream;
        self.watch = Watch::new();
        self.standing_in = standing_in;
        Ok(())
    }

    /// Keeps the call on a working device. `Ok(Some(change))` says what changed; `Err` means no
    /// device could be opened at all, with the reason.
    pub(crate) async fn keep_working(&mut self, now: Instant) -> Result<Option<DeviceChange>, DeviceChange> {
        let name = Self::name();
        if let Some(failure) = self.watch.check(self.stream.health(), now) {
            let gone = self.stream.device_id().to_string();
            let stand_in = self.chosen != DeviceChoice::Default;
            return match self.switch_to(DeviceChoice::Default, stand_in).await {
                Ok(()) => {
                    let device = self.stream.device_id().to_string();
                    let reason =
                        format!("the {name} {gone} stopped working ({failure}); now using the default, {device}");
                    Ok(Some(Self::change(&device, reason)))
                }
                Err(e) => Err(Self::change(
                    "none",
                    format!("the {name} {gone} stopped working ({failure}) and no other could be opened ({e})"),
                )),
            };
        }
        if now.duration_since(self.last_presence_check) < PRESENCE_CHECK {
            return Ok(None);
        }
        self.last_presence_check = now;
        let Ok(present) = off_thread(|| calldock_devices::present(S::DIRECTION)).await else { return Ok(None) };
        let current = self.stream.device_id().to_string();
        enum Why {
            Back,
            Unplugged(String),
            NewDefault,
        }
        let (go_to, standing_in, why) = match &self.chosen {
            DeviceChoice::Id(id) if self.standing_in && present.ids.contains(id) => {
                (self.chosen.clone(), false, Why::Back)
            }
            // Unplugged while the stream still runs: the sound server moved it elsewhere.
            DeviceChoice::Id(id) if !self.standing_in && !present.ids.contains(id) => {
                (DeviceChoice::Default, true, Why::Unplugged(id.clone()))
            }
            DeviceChoice::Default if present.default.as_ref().is_some_and(|d| *d != current) => {
                (DeviceChoice::Default, false, Why::NewDefault)
            }
            _ => return Ok(None),
        };
        if self.switch_to(go_to, standing_in).await.is_err() {
            return Ok(None); // tried again at the next check
        }
        let device = self.stream.device_id().to_string();
        let reason = match why {
            Why::Back => format!("{device} is back: the call uses it again"),
            Why::Unplugged(id) => format!("the {name} {id} was unplugged; now using the default, {device}"),
            Why::NewDefault => format!("the system's default {name} is now {device}; the call follows it"),
        };
        Ok(Some(Self::change(&device, reason)))
    }
}

pub(crate) enum MicrophoneInput {
    Silence,
    /// At 48 kHz.
    Wav {
        samples: Vec<f32>,
        position: usize,
    },
    Device(Followed<Capture>),
}

impl MicrophoneInput {
    pub(crate) async fn open(microphone: &Microphone) -> Result<Self, String> {
        Ok(match microphone {
            Microphone::Silence => MicrophoneInput::Silence,
            Microphone::Wav(path) => {
                let (samples, rate) = read_mono(path).map_err(|e| e.to_string())?;
                let mut resampler = calldock_audio::resample::Resampler::new(rate).map_err(|e| e.to_string())?;
                let mut at48 = Vec::with_capacity(samples.len() * 2);
                resampler.push(&samples, |f| at48.extend_from_slice(f)).map_err(|e| e.to_string())?;
                MicrophoneInput::Wav { samples: at48, position: 0 }
            }
            Microphone::Device(choice) => {
                MicrophoneInput::Device(Followed::open(choice).await.map_err(|e| e.to_string())?)
            }
        })
    }

    /// Sample rate of what [`MicrophoneInput::read`] yields.
    pub(crate) fn rate(&self) -> u32 {
        match self {
            MicrophoneInput::Device(device) => device.stream.rate(),
            _ => SAMPLE_RATE,
        }
    }

    /// Appends what was captured: for a virtual microphone, `due` 10 ms chunks; for a device,
    /// whatever it delivered since the last read.
    pub(crate) fn read(&mut self, due: usize, out: &mut Vec<f32>) {
        match self {
            MicrophoneInput::Silence => out.resize(out.len() + due * FRAME_10MS, 0.0),
            MicrophoneInput::Wav { samples, position } => {
                let want = due * FRAME_10MS;
                let end = (*position + want).min(samples.len());
                out.extend_from_slice(&samples[*position..end]);
                out.resize(out.len() + want - (end - *position), 0.0);
                *position = end;
            }
            MicrophoneInput::Device(device) => {
                device.stream.read(out);
            }
        }
    }

    /// Before media flows: a device's backlog is dropped so the call starts with fresh audio.
    pub(crate) fn discard(&mut self) {
        if let MicrophoneInput::Device(device) = self {
            device.stream.discard();
        }
    }

    pub(crate) fn device_id(&self) -> Option<&str> {
        match self {
            MicrophoneInput::Device(device) => Some(device.stream.device_id()),
            _ => None,
        }
    }

    /// See [`Followed::keep_working`]; with no microphone left, the call sends silence.
    pub(crate) async fn keep_working(&mut self, now: Instant) -> Option<DeviceChange> {
        let MicrophoneInput::Device(device) = self else { return None };
        match device.keep_working(now).await {
            Ok(change) => change,
            Err(mut change) => {
                *self = MicrophoneInput::Silence;
                change.reason.push_str(": the other side hears silence until you pick a microphone");
                Some(change)
            }
        }
    }
}

pub(crate) enum SpeakerOutput {
    Null,
    Wav(WavSpeaker),
    Device(Followed<Playout>),
}

impl SpeakerOutput {
    pub(crate) async fn open(speaker: &Speaker) -> Result<Self, String> {
        Ok(match speaker {
            Speaker::Null => SpeakerOutput::Null,
            Speaker::Wav(path) => SpeakerOutput::Wav(WavSpeaker::create(path).map_err(|e| e.to_string())?),
            Speaker::Device(choice) => SpeakerOutput::Device(Followed::open(choice).await.map_err(|e| e.to_string())?),
        })
    }

    /// How many 20 ms frames to play now: a virtual speaker takes the `due` ones, a device
    /// enough to keep its queue short but never empty.
    pub(crate) fn frames_wanted(&self, due: usize) -> usize {
        match self {
            SpeakerOutput::Device(device) => PLAYOUT_QUEUE.saturating_sub(device.stream.queued()).div_ceil(FRAME_20MS),
            _ => due,
        }
    }

    pub(crate) fn play(&mut self, frame: &[f32; FRAME_20MS]) -> Result<(), String> {
        match self {
            SpeakerOutput::Null => {}
            SpeakerOutput::Wav(file) => file.write(frame).map_err(|e| e.to_string())?,
            SpeakerOutput::Device(device) => {
                // A full queue means the device stalled; the watch notices, nothing to do here.
                device.stream.write(frame);
            }
        }
        Ok(())
    }

    pub(crate) fn device_id(&self) -> Option<&str> {
        match self {
            SpeakerOutput::Device(device) => Some(device.stream.device_id()),
            _ => None,
        }
    }

    /// Samples of silence a device played for want of audio (underruns), for the log.
    pub(crate) fn underrun_samples(&self) -> u64 {
        match self {
            SpeakerOutput::Device(device) => device.stream.health().dropped_samples(),
            _ => 0,
        }
    }

    /// See [`Followed::keep_working`]; with no speaker left, received audio is dropped.
    pub(crate) async fn keep_working(&mut self, now: Instant) -> Option<DeviceChange> {
        let SpeakerOutput::Device(device) = self else { return None };
        match device.keep_working(now).await {
            Ok(change) => change,
            Err(mut change) => {
                *self = SpeakerOutput::Null;
                change.reason.push_str(": pick a speaker to hear the call");
                Some(change)
            }
        }
    }

    pub(crate) fn finish(self) {
        if let SpeakerOutput::Wav(file) = self {
            let _ = file.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wav_microphone_plays_once_then_silence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mic.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..FRAME_10MS * 3 {
            writer.write_sample(i16::MAX / 2).unwrap();
        }
        writer.finalize().unwrap();
        let mut mic = MicrophoneInput::open(&Microphone::Wav(path)).await.unwrap();
        let mut out = Vec::new();
        mic.read(2, &mut out);
        assert_eq!(out.len(), 2 * FRAME_10MS);
        mic.read(2, &mut out);
        assert_eq!(out.len(), 4 * FRAME_10MS, "the end of the file is padded with silence");
        assert!(out[..3 * FRAME_10MS - 200].iter().all(|s| s.abs() > 0.3), "the file's samples come first");
        assert!(out[3 * FRAME_10MS + 200..].iter().all(|s| s.abs() < 1e-3), "then silence");
    }

    #[tokio::test]
    async fn an_unknown_device_is_refused_with_a_reason() {
        let error = MicrophoneInput::open(&Microphone::Device(DeviceChoice::Id("alsa:no-such-device".into())))
            .await
            .err()
            .expect("no such device");
        assert!(error.contains("calldock devices"), "{error}");
    }

    #[test]
    fn a_stalled_device_is_noticed() {
        let start = Instant::now();
        let mut watch = Watch { callbacks: 0, since: start };
        assert_eq!(watch.check_progress(0, start + STALL), None, "a device gets longer to start");
        assert_eq!(watch.check_progress(0, start + START_GRACE).as_deref(), Some("it never started"));
        let mut watch = Watch { callbacks: 0, since: start };
        assert_eq!(watch.check_progress(3, start + Duration::from_millis(10)), None, "running");
        assert_eq!(watch.check_progress(7, start + Duration::from_millis(500)), None, "running");
        let stalled = start + Duration::from_millis(500) + STALL;
        assert_eq!(watch.check_progress(7, stalled).as_deref(), Some("it stopped delivering audio"));
    }
}
