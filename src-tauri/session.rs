//! The headless call commands: `call`, `answer`, `hangup`, `history`. Each signs in through
//! the engine, prints what happens as a line (or a JSON line), and maps the outcome to an
//! exit code.

use std::io::Write;
use std::time::Duration;

use calldock_engine::call::{CallEvent, CallState, EndReason};
use calldock_engine::{Engine, EngineConfig, EngineError, EngineEvent, SignalingState};
use calldock_protocol::{CallId, Direction, Media};
use serde_json::json;
use tokio::sync::mpsc;

use calldock_audio::processing::ProcessingSwitches;
use calldock_devices::DeviceChoice;
use calldock_devices::camera::CameraSource;
use calldock_engine::media::{MediaConfig, Microphone, Speaker};
use calldock_journal::calls::{CallDirection, OngoingCall};

use crate::call_log;
use crate::cli::{Account, AnswerArgs, CallArgs, MediaArgs, exit};
use crate::sounds::{Outputs, Sounds};

fn say(json_mode: bool, human: impl AsRef<str>, value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    if json_mode {
        let _ = writeln!(out, "{value}");
    } else {
        let _ = writeln!(out, "{}", human.as_ref());
    }
    let _ = out.flush();
}

fn fail(error: &EngineError) -> u8 {
    eprintln!("calldock: {error} [{}]", error.code());
    match error {
        EngineError::BadServerUrl { .. } => exit::USAGE,
        EngineError::Command(_) => exit::UNSUCCESSFUL,
        _ => exit::SERVER,
    }
}

async fn connect(account: &Account) -> Result<(Engine, mpsc::Receiver<EngineEvent>), u8> {
    connect_with_media(account, MediaConfig::SignalingOnly).await
}

async fn connect_with_media(
    account: &Account,
    media: MediaConfig,
) -> Result<(Engine, mpsc::Receiver<EngineEvent>), u8> {
    let mut config = EngineConfig::new(account.server.clone(), account.user.as_str());
    config.display_name = account.name.clone();
    config.device = Some(account.device.as_str().into());
    config.media = media;
    Engine::connect(config).await.map_err(|e| fail(&e))
}

/// Signs in with the media the flags ask for; bad flags are a usage error.
async fn connect_for_calls(account: &Account, media: &MediaArgs) -> Result<(Engine, mpsc::Receiver<EngineEvent>), u8> {
    let media = media_config(media).map_err(|message| {
        eprintln!("calldock: {message}");
        exit::USAGE
    })?;
    connect_with_media(account, media).await
}

/// Turns `--mic`/`--speaker`/`--camera` into the engine's media setting, or says what is wrong.
fn media_config(args: &MediaArgs) -> Result<MediaConfig, String> {
    if args.mic.is_none() && args.speaker.is_none() && args.camera.is_none() {
        return Ok(MediaConfig::SignalingOnly);
    }
    let camera =
        CameraSource::parse(args.camera.as_deref().unwrap_or("default")).map_err(|e| format!("--camera {e}"))?;
    if let CameraSource::Y4m(path) = &camera
        && !path.is_file()
    {
        return Err(format!("--camera {}: no such file", path.display()));
    }
    let microphone = parse_microphone(args.mic.as_deref().unwrap_or("silence")).map_err(|e| format!("--mic {e}"))?;
    let speaker = parse_speaker(args.speaker.as_deref().unwrap_or("null")).map_err(|e| format!("--speaker {e}"))?;
    let peer = calldock_peer::PeerSettings {
        udp_bind: vec![args.bind.clone()],
        relay_only: args.relay_only,
        ..calldock_peer::PeerSettings::default()
    };
    let processing = if args.no_processing { ProcessingSwitches::OFF } else { ProcessingSwitches::default() };
    Ok(MediaConfig::Audio { microphone, speaker, peer, processing, camera })
}

fn is_wav(text: &str) -> bool {
    text.to_lowercase().ends_with(".wav")
}

/// `silence`, a WAV file, `default` or a device id.
fn parse_microphone(text: &str) -> Result<Microphone, String> {
    if text == "silence" {
        return Ok(Microphone::Silence);
    }
    if let Some(device) = DeviceChoice::parse(text) {
        check_present(calldock_devices::Direction::Input, &device)?;
        return Ok(Microphone::Device(device));
    }
    if is_wav(text) {
        if !std::path::Path::new(text).is_file() {
            return Err(format!("{text}: no such file"));
        }
        return Ok(Microphone::Wav(text.into()));
    }
    Err(format!(
        "{text}: not a microphone; give a device id from `calldock devices`, `default`, a WAV file or `silence`"
    ))
}

/// `null`, a WAV file, `default` or a device id.
fn parse_speaker(text: &str) -> Result<Speaker, String> {
    if text == "null" {
        return Ok(Speaker::Null);
    }
    if let Some(device) = DeviceChoice::parse(text) {
        check_present(calldock_devices::Direction::Output, &device)?;
        return Ok(Speaker::Device(device));
    }
    if is_wav(text) {
        return Ok(Speaker::Wav(text.into()));
    }
    Err(format!("{text}: not a speaker; give a device id from `calldock devices`, `default`, a WAV file or `null`"))
}

/// A device named on the command line is looked for before any call is placed, so a typo or
/// an unplugged device is a usage error, not a failed call.
fn check_present(direction: calldock_devices::Direction, choice: &DeviceChoice) -> Result<(), String> {
    let present = calldock_devices::present(direction).map_err(|e| format!("{choice}: {e}"))?;
    match choice {
        DeviceChoice::Default if present.default.is_none() => {
            Err(format!("default: {}", calldock_devices::DeviceError::NoDefault { direction }))
        }
        DeviceChoice::Id(id) if !present.ids.contains(id) => {
            Err(format!("{}", calldock_devices::DeviceError::NotFound { direction, id: id.clone() }))
        }
        _ => Ok(()),
    }
}

/// `calldock devices`: what `--mic` and `--speaker` can name.
pub fn devices(json_mode: bool) -> u8 {
    let devices = match calldock_devices::list() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("calldock: {e} [{}]", e.code());
            return exit::INTERNAL;
        }
    };
    // A camera that cannot be listed must not hide the sound devices: said on stderr, listed as none.
    let cameras = calldock_devices::camera::list_cameras().unwrap_or_else(|e| {
        eprintln!("calldock: {e} [{}]", e.code());
        Vec::new()
    });
    if json_mode {
        // One list; each entry's `kind` (microphone, speaker, camera) says which fields it has.
        let with_kind = |kind: String, entry: serde_json::Value| match entry {
            serde_json::Value::Object(mut fields) => {
                fields.insert("kind".into(), kind.into());
                serde_json::Value::Object(fields)
            }
            other => other,
        };
        let entries: Vec<serde_json::Value> = devices
            .iter()
            .map(|d| with_kind(d.direction.to_string(), serde_json::to_value(d).unwrap_or_default()))
            .chain(cameras.iter().map(|c| with_kind("camera".into(), serde_json::to_value(c).unwrap_or_default())))
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries).unwrap_or_default());
        return exit::OK;
    }
    if devices.is_empty() {
        println!("no sound devices found");
    } else {
        println!("{:<10} {:<44} {:<7} {:<14} {:<8} name", "kind", "id", "default", "rates (Hz)", "channels");
    }
    for d in &devices {
        let channels = match d.channels {
            (one, same) if one == same => one.to_string(),
            (fewest, most) => format!("{fewest}-{most}"),
        };
        println!(
            "{:<10} {:<44} {:<7} {:<14} {:<8} {}",
            d.direction.to_string(),
            d.id,
            if d.is_default { "yes" } else { "" },
            format!("{}-{}", d.sample_rates.0, d.sample_rates.1),
            channels,
            d.name
        );
    }
    print_cameras(&cameras);
    // Virtual devices stand in for real ones on any machine (replaying a customer's problem,
    // testing with no sound card or camera); they take the same path after the device boundary.
    println!("virtual    microphone: silence, FILE.wav   speaker: null, FILE.wav   camera: pattern, FILE.y4m");
    exit::OK
}

/// The camera table: each camera's largest size per pixel format (`--json` has every mode), or
/// why it could not be opened.
fn print_cameras(cameras: &[calldock_devices::camera::CameraDevice]) {
    if cameras.is_empty() {
        println!("no cameras found");
        return;
    }
    println!("\n{:<10} {:<44} {:<7} {:<40} name", "kind", "id", "default", "largest mode of each format");
    for camera in cameras {
        let modes = match &camera.problem {
            Some(problem) => format!("unavailable [{}]", problem.code),
            // Modes come largest first within a format.
            None => camera
                .modes
                .iter()
                .filter(|m| camera.modes.iter().find(|first| first.format == m.format) == Some(m))
                .map(|m| {
                    format!("{} {}x{}@{}", m.format, m.width, m.height, m.frame_rates.first().copied().unwrap_or(0))
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let default = if camera.is_default { "yes" } else { "" };
        println!("{:<10} {:<44} {:<7} {:<40} {}", "camera", camera.id, default, modes, camera.name);
        if let Some(problem) = &camera.problem {
            println!("{:<10} {}", "", problem.message);
        }
    }
}

/// `calldock devices --watch`: after the list, one line per change until interrupted.
pub fn watch_devices(json_mode: bool, interval: std::time::Duration) -> u8 {
    use calldock_devices::{DeviceEvent, DeviceWatch};
    let (events, changes) = std::sync::mpsc::channel();
    let _watch = match DeviceWatch::start(interval, events) {
        Ok((watch, _first)) => watch,
        Err(e) => {
            eprintln!("calldock: {e} [{}]", e.code());
            return exit::INTERNAL;
        }
    };
    // Tells a script reading the output that changes from now on are reported.
    eprintln!("calldock: watching for device changes every {} ms", interval.as_millis());
    for event in changes.into_iter().flat_map(|c| c.events) {
        let line = if json_mode {
            serde_json::to_string(&event).unwrap_or_default()
        } else {
            match &event {
                DeviceEvent::Added { direction, id } => format!("added    {direction:<10} {id}"),
                DeviceEvent::Removed { direction, id } => format!("removed  {direction:<10} {id}"),
                DeviceEvent::DefaultChanged { direction, from, to } => format!(
                    "default  {direction:<10} {} -> {}",
                    from.as_deref().unwrap_or("(none)"),
                    to.as_deref().unwrap_or("(none)")
                ),
                DeviceEvent::Unavailable { reason } => format!("unavailable: {reason}"),
                DeviceEvent::Available => "available again".to_string(),
            }
        };
        println!("{line}");
        use std::io::Write;
        if std::io::stdout().flush().is_err() {
            break;
        }
    }
    exit::OK
}

fn reason_text(reason: EndReason, by_name: Option<&str>) -> String {
    let by = by_name.map(|n| format!(" by {n}")).unwrap_or_default();
    match reason {
        EndReason::HangupLocal => "you hung up".into(),
        EndReason::HangupRemote => format!("hung up{by}"),
        EndReason::Declined => format!("declined{by}"),
        EndReason::Busy => format!("busy{by}"),
        EndReason::Missed => "no answer".into(),
        EndReason::Canceled => format!("canceled{by}"),
        EndReason::AcceptedElsewhere => "answered on another device".into(),
        EndReason::DeclinedElsewhere => "declined on another device".into(),
        EndReason::Failed(kind) => format!("failed ({kind:?})").to_lowercase(),
        EndReason::TimeoutReconnect => "connection lost and not restored".into(),
    }
}

fn reason_code(reason: EndReason) -> String {
    match reason {
        EndReason::Failed(kind) => format!("failed({kind:?})").to_lowercase(),
        other => {
            let debug = format!("{other:?}");
            // HangupLocal -> hangup-local
            let mut out = String::new();
            for (i, c) in debug.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        }
    }
}

fn state_text(state: CallState) -> &'static str {
    match state {
        CallState::OutgoingRinging => "calling",
        CallState::IncomingRinging => "ringing",
        CallState::Connecting => "connecting",
        CallState::Connected => "connected",
        CallState::Reconnecting => "reconnecting",
        CallState::Ended(_) => "ended",
    }
}

/// Follows one call until it ends; hangs up after `duration` once connected.
struct CallWatch {
    call_id: CallId,
    connected: bool,
    duration: Option<Duration>,
    json: bool,
    stats: bool,
    /// What the local call log will say about the call when it ends.
    record: OngoingCall,
    /// `--video-out`: where received pictures go.
    video_out: Option<PictureFile>,
}

/// A Y4M file of the pictures a video call received, at the size of the first one (pictures
/// of another size, after the other side changed resolution, are left out and counted).
struct PictureFile {
    path: std::path::PathBuf,
    writer: Option<y4m::Encoder<std::io::BufWriter<std::fs::File>>>,
    size: (u32, u32),
    written: u64,
    skipped: u64,
}

impl PictureFile {
    fn new(path: std::path::PathBuf) -> Self {
        Self { path, writer: None, size: (0, 0), written: 0, skipped: 0 }
    }

    fn write(&mut self, picture: &calldock_video::Picture) -> Result<(), String> {
        let size = (picture.width(), picture.height());
        if self.writer.is_none() {
            let file = std::fs::File::create(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
            let encoder = y4m::encode(size.0 as usize, size.1 as usize, y4m::Ratio::new(30, 1))
                .with_colorspace(y4m::Colorspace::C420jpeg)
                .write_header(std::io::BufWriter::new(file))
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            self.writer = Some(encoder);
            self.size = size;
        }
        if size != self.size {
            self.skipped += 1;
            return Ok(());
        }
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let (u, v) = picture.chroma();
        writer
            .write_frame(&y4m::Frame::new([picture.luma(), u, v], None))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.written += 1;
        Ok(())
    }
}

fn print_stats(json_mode: bool, s: &calldock_engine::media::CallStats) {
    let rtt = s.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "-".into());
    let sent_loss = s.sent_loss_percent.map(|l| format!("{l:.1} %")).unwrap_or_else(|| "-".into());
    let path =
        format!("{}→{}", s.local_candidate.as_deref().unwrap_or("?"), s.remote_candidate.as_deref().unwrap_or("?"));
    say(
        json_mode,
        format!(
            "stats: rtt {rtt}, jitter {:.1} ms, loss {:.1} % (of what we sent: {sent_loss}), send {:.0} kb/s, \
             receive {:.0} kb/s, {}, {path}, level {:.0} dBFS, jitter buffer {} ms, concealed {}, \
             FEC for {} % loss, MOS {:.2} ({}){}",
            s.jitter_ms,
            s.loss_percent,
            s.send_kbps,
            s.receive_kbps,
            s.codec.as_deref().unwrap_or("-"),
            s.audio_level_dbfs,
            s.jitter_buffer_delay_ms,
            s.concealed_samples,
            s.fec_percent,
            s.mos,
            s.quality,
            s.video.as_ref().map_or(String::new(), |v| format!(
                "; video sent {:.0} fps at {}×{}{} at {} kb/s (path {}{}), received {:.0} fps at {}×{}, {} undecodable",
                v.sent_fps,
                v.sent_width,
                v.sent_height,
                if v.camera_off {
                    " (camera off)"
                } else if v.paused_for_bandwidth {
                    " (paused: the connection cannot carry video)"
                } else {
                    ""
                },
                v.target_kbps,
                v.estimate_kbps.map_or("not estimated yet".into(), |e| format!("{e:.0} kb/s")),
                v.limit_kbps.map_or(String::new(), |l| format!(", the other side takes at most {l:.0} kb/s")),
                v.received_fps,
                v.received_width,
                v.received_height,
                v.undecodable_frames
            ))
        ),
        {
            let mut line = serde_json::to_value(s).unwrap_or_default();
            line["event"] = "stats".into();
            line
        },
    );
}

impl CallWatch {
    fn new(call_id: CallId, record: OngoingCall, hang_up_after_seconds: Option<f64>, json: bool, stats: bool) -> Self {
        let duration = hang_up_after_seconds.map(Duration::from_secs_f64);
        Self { call_id, connected: false, duration, json, stats, record, video_out: None }
    }
}

enum Step {
    Continue,
    Done(u8),
}

impl CallWatch {
    /// Handles an event for the watched call; returns the exit code once it ended.
    fn on_event(&mut self, event: &CallEvent, hang_up_at: &mut Option<tokio::time::Instant>) -> Step {
        match event {
            CallEvent::Replaced { old, new } if *old == self.call_id => {
                self.call_id = new.clone();
                self.record.replaced_by(new.as_str());
                say(
                    self.json,
                    format!("both called at once; joined call {new}"),
                    json!({"event": "replaced", "old": old.as_str(), "new": new.as_str()}),
                );
            }
            CallEvent::RemoteRinging { call_id } if *call_id == self.call_id => {
                say(self.json, "ringing", json!({"event": "remote_ringing", "call_id": call_id.as_str()}));
            }
            CallEvent::StateChanged { call_id, state } if *call_id == self.call_id => {
                say(
                    self.json,
                    state_text(*state),
                    json!({"event": "state", "call_id": call_id.as_str(), "state": state_text(*state)}),
                );
                if *state == CallState::Connected && !self.connected {
                    self.connected = true;
                    self.record.connected(call_log::now_ms());
                    *hang_up_at = self.duration.map(|d| tokio::time::Instant::now() + d);
                }
            }
            CallEvent::Ended { call_id, reason, by_name } if *call_id == self.call_id => {
                say(
                    self.json,
                    format!("ended: {}", reason_text(*reason, by_name.as_deref())),
                    json!({"event": "ended", "call_id": call_id.as_str(), "reason": reason_code(*reason), "by_name": by_name}),
                );
                call_log::save(&self.record.finish(call_log::now_ms(), reason_code(*reason)));
                let good = self.connected && matches!(reason, EndReason::HangupLocal | EndReason::HangupRemote);
                return Step::Done(if good { exit::OK } else { exit::UNSUCCESSFUL });
            }
            _ => {}
        }
        Step::Continue
    }
}

fn on_signaling(state: &SignalingState, json_mode: bool) -> Option<u8> {
    match state {
        SignalingState::Connected { .. } => None,
        SignalingState::Reconnecting { attempt, retry_in, reason } => {
            say(
                json_mode,
                format!(
                    "signaling lost ({reason}); reconnecting in {:.1} s (attempt {attempt})",
                    retry_in.as_secs_f64()
                ),
                json!({"event": "reconnecting", "attempt": attempt, "reason": reason}),
            );
            None
        }
        SignalingState::Failed(e) => Some(fail(e)),
    }
}

pub async fn call(args: CallArgs) -> u8 {
    let (engine, mut events) = match connect_for_calls(&args.account, &args.media).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let media = if args.video { Media::Video } else { Media::Audio };
    let placed_at = call_log::now_ms();
    let call_id = match engine.call(args.to.as_str().into(), media).await {
        Ok(id) => id,
        Err(e) => return fail(&e),
    };
    say(
        args.json,
        format!("calling {} ({media:?})", args.to).to_lowercase(),
        json!({"event": "calling", "to": args.to, "call_id": call_id.as_str()}),
    );
    let record =
        OngoingCall::new(call_id.as_str(), &args.to, CallDirection::Outgoing, call_log::media_name(media), placed_at);
    let mut watch = CallWatch::new(call_id, record, args.duration, args.json, args.media.stats);
    watch.video_out = args.media.video_out.clone().map(PictureFile::new);
    let mut controls = control_lines();
    let mut sounds = match Sounds::new(&Outputs { ringer: None, speaker: speaker_device(&args.media) }, say_on_stderr) {
        Ok(sounds) => sounds,
        Err(e) => {
            eprintln!("calldock: {e}");
            return exit::INTERNAL;
        }
    };
    follow(&engine, &mut events, &mut controls, &mut watch, &mut sounds).await
}

/// The call's speaker when it is a sound device (cues play there); not a WAV file or `null`.
fn speaker_device(media: &MediaArgs) -> Option<DeviceChoice> {
    media.speaker.as_deref().filter(|text| !is_wav(text)).and_then(DeviceChoice::parse)
}

/// Lines typed (or piped) on standard input while a call runs: `mute`, `unmute`, `mic DEVICE`,
/// `speaker DEVICE`, `camera off|on|SOURCE`, `hangup`. Support and QA steer a headless call this way.
fn control_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    // A plain thread: tokio's blocking stdin read would keep the runtime from shutting down.
    let _ = std::thread::Builder::new().name("calldock stdin".into()).spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

const CONTROL_USAGE: &str = "commands: mute, unmute, mic DEVICE|FILE.wav|silence, speaker DEVICE|FILE.wav|null, \
     camera off|on|DEVICE|pattern|FILE.y4m, hangup";

/// Carries out one control line.
async fn control(engine: &Engine, watch: &CallWatch, line: &str) {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(w, r)| (w, r.trim()));
    let done = match (word, rest) {
        ("", _) => return,
        ("mute", "") => engine.set_muted(true).await.map(|()| "microphone muted".to_string()),
        ("unmute", "") => engine.set_muted(false).await.map(|()| "microphone on".to_string()),
        ("hangup", "") => engine.hangup(watch.call_id.clone()).await.map(|()| "hanging up".to_string()),
        ("mic", device) if !device.is_empty() => match parse_microphone(device) {
            Ok(m) => engine.set_microphone(m).await.map(|()| format!("microphone: {device}")),
            Err(e) => {
                say(watch.json, format!("mic {e}"), json!({"event": "control_error", "error": e}));
                return;
            }
        },
        ("camera", "off") => engine.set_camera_off(true).await.map(|()| "camera off".to_string()),
        ("camera", "on") => engine.set_camera_off(false).await.map(|()| "camera on".to_string()),
        ("camera", source) if !source.is_empty() => match CameraSource::parse(source) {
            Ok(camera) => engine.set_camera(camera).await.map(|()| format!("camera: {source}")),
            Err(e) => {
                say(watch.json, format!("camera {e}"), json!({"event": "control_error", "error": e}));
                return;
            }
        },
        ("speaker", device) if !device.is_empty() => match parse_speaker(device) {
            Ok(s) => engine.set_speaker(s).await.map(|()| format!("speaker: {device}")),
            Err(e) => {
                say(watch.json, format!("speaker {e}"), json!({"event": "control_error", "error": e}));
                return;
            }
        },
        _ => {
            say(
                watch.json,
                format!("unknown command {line:?}; {CONTROL_USAGE}"),
                json!({"event": "control_error", "error": CONTROL_USAGE}),
            );
            return;
        }
    };
    match done {
        Ok(text) => say(watch.json, &text, json!({"event": "control", "command": line, "result": text})),
        Err(e) => say(
            watch.json,
            format!("{line}: {e}"),
            json!({"event": "control_error", "command": line, "error": e.code()}),
        ),
    }
}

/// Follows the watched call until it ends, hanging up on Ctrl-C or after the duration, and
/// carrying out control lines.
async fn follow(
    engine: &Engine,
    events: &mut mpsc::Receiver<EngineEvent>,
    controls: &mut mpsc::Receiver<String>,
    watch: &mut CallWatch,
    sounds: &mut Sounds,
) -> u8 {
    let mut hang_up_at: Option<tokio::time::Instant> = None;
    let mut interrupted = false;
    let mut controls_open = true;
    loop {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            event = events.recv() => match event.inspect(|e| sounds.on_event(e)) {
                None => return fail(&EngineError::Stopped),
                Some(EngineEvent::Call(event)) => {
                    if let Step::Done(code) = watch.on_event(&event, &mut hang_up_at) {
                        return code;
                    }
                }
                Some(EngineEvent::Signaling(state)) => {
                    if let Some(code) = on_signaling(&state, watch.json) {
                        return code;
                    }
                }
                Some(EngineEvent::Stats { call_id, stats }) => {
                    if call_id == watch.call_id {
                        watch.record.add_stats(call_log::sample(&stats));
                        if watch.stats {
                            print_stats(watch.json, &stats);
                        }
                    }
                }
                Some(EngineEvent::Device { call_id, change }) => {
                    if call_id == watch.call_id {
                        say(
                            watch.json,
                            format!("{}: {}", change.direction, change.reason),
                            json!({"event": "device", "direction": change.direction, "device": change.device, "reason": change.reason}),
                        );
                    }
                }
                Some(EngineEvent::Video { call_id, picture }) => {
                    if call_id == watch.call_id
                        && let Some(file) = watch.video_out.as_mut()
                        && let Err(e) = file.write(&picture)
                    {
                        say(watch.json, format!("--video-out {e}"), json!({"event": "video_out_error", "error": e}));
                        watch.video_out = None;
                    }
                }
                Some(EngineEvent::CameraFailed { call_id, reason }) => {
                    if call_id == watch.call_id {
                        say(watch.json, format!("camera: {reason}"), json!({"event": "camera_failed", "reason": reason}));
                    }
                }
                Some(EngineEvent::CameraRefused { call_id, reason }) => {
                    if call_id == watch.call_id {
                        say(
                            watch.json,
                            format!("camera not switched: {reason}"),
                            json!({"event": "camera_refused", "reason": reason}),
                        );
                    }
                }
                // The command line watches no one's presence, and shows no self view.
                Some(EngineEvent::TokenRefreshed { .. } | EngineEvent::Presence { .. } | EngineEvent::SelfView { .. }) => {}
            },
            line = controls.recv(), if controls_open => match line {
                Some(line) => {
                    control(engine, watch, &line).await;
                    match line.trim() {
                        "mute" => sounds.on_muted(true),
                        "unmute" => sounds.on_muted(false),
                        _ => {}
                    }
                }
                None => controls_open = false,
            },
            _ = tokio::time::sleep_until(hang_up_at.unwrap_or(far)), if hang_up_at.is_some() => {
                hang_up_at = None;
                if let Err(e) = engine.hangup(watch.call_id.clone()).await {
                    return fail(&e);
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = engine.hangup(watch.call_id.clone()).await;
            }
        }
    }
}

pub async fn answer(args: AnswerArgs) -> u8 {
    let (engine, mut events) = match connect_for_calls(&args.account, &args.media).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    say(
        args.json,
        format!("signed in as {} on device {}; waiting for calls", engine.user(), engine.device()),
        json!({"event": "ready", "user": engine.user().as_str(), "device": engine.device().as_str()}),
    );
    let ringer = match args.ringer.as_deref().map(|text| (text, DeviceChoice::parse(text))) {
        None => None,
        Some((_, Some(device))) => Some((device, args.ringer_volume.clamp(0.0, 1.0))),
        Some((text, None)) => {
            eprintln!("calldock: --ringer {text} is not a device id; `calldock devices` lists them");
            return exit::USAGE;
        }
    };
    let Ok(ring_for) = Duration::try_from_secs_f64(args.ring_for) else {
        eprintln!("calldock: --ring-for takes a number of seconds, not {}", args.ring_for);
        return exit::USAGE;
    };
    let mut sounds = match Sounds::new(&Outputs { ringer, speaker: speaker_device(&args.media) }, say_on_stderr) {
        Ok(sounds) => sounds,
        Err(e) => {
            eprintln!("calldock: {e}");
            return exit::INTERNAL;
        }
    };
    let mut handled = 0;
    let mut last = exit::OK;
    let mut controls = control_lines();
    while handled < args.count {
        let incoming = loop {
            match events.recv().await.inspect(|e| sounds.on_event(e)) {
                None => return fail(&EngineError::Stopped),
                Some(EngineEvent::Call(CallEvent::Incoming { call_id, from, from_name, media, stacked, .. })) => {
                    say(
                        args.json,
                        format!(
                            "incoming {} call from {from_name} ({from}){}",
                            format!("{media:?}").to_lowercase(),
                            if stacked { ", while in another call" } else { "" }
                        ),
                        json!({"event": "incoming", "call_id": call_id.as_str(), "from": from.as_str(), "from_name": from_name}),
                    );
                    let rang_at = call_log::now_ms();
                    let media_name = call_log::media_name(media);
                    let record =
                        OngoingCall::new(call_id.as_str(), from.as_str(), CallDirection::Incoming, media_name, rang_at)
                            .with_peer_name(from_name);
                    break (call_id, media, record);
                }
                Some(EngineEvent::Signaling(state)) => {
                    if let Some(code) = on_signaling(&state, args.json) {
                        return code;
                    }
                }
                Some(_) => {}
            }
        };
        let (call_id, media, record) = incoming;
        handled += 1;
        if !ring_for.is_zero()
            && let Err(reason) = ring_a_while(&mut events, &mut sounds, &call_id, ring_for, args.json).await
        {
            if let Some(reason) = reason {
                call_log::save(&record.finish(call_log::now_ms(), reason_code(reason)));
            }
            last = exit::UNSUCCESSFUL;
            continue;
        }
        if args.decline {
            if let Err(e) = engine.decline(call_id).await {
                return fail(&e);
            }
            call_log::save(&record.finish(call_log::now_ms(), reason_code(EndReason::Declined)));
            say(args.json, "declined", json!({"event": "declined"}));
            continue;
        }
        if let Err(e) = engine.accept(call_id.clone(), media).await {
            // The call may have ended between ringing and the accept (caller canceled).
            say(args.json, format!("could not answer: {e}"), json!({"event": "accept_failed", "error": e.code()}));
            last = exit::UNSUCCESSFUL;
            continue;
        }
        let mut watch = CallWatch::new(call_id, record, args.duration, args.json, args.media.stats);
        watch.video_out = args.media.video_out.clone().map(PictureFile::new);
        last = follow(&engine, &mut events, &mut controls, &mut watch, &mut sounds).await;
    }
    engine.close().await;
    last
}

/// Lets a call ring for `ring_for` before it is answered. An error when it stopped ringing
/// first (the caller canceled, another device answered, it was missed), with the reason unless
/// the engine stopped.
async fn ring_a_while(
    events: &mut mpsc::Receiver<EngineEvent>,
    sounds: &mut Sounds,
    call_id: &CallId,
    ring_for: Duration,
    json_mode: bool,
) -> Result<(), Option<EndReason>> {
    let until = tokio::time::Instant::now() + ring_for;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Err(None) };
                sounds.on_event(&event);
                if let EngineEvent::Call(CallEvent::Ended { call_id: ended, reason, by_name }) = &event
                    && ended == call_id
                {
                    let why = reason_text(*reason, by_name.as_deref());
                    say(
                        json_mode,
                        format!("stopped ringing: {why}"),
                        json!({"event": "ended", "call_id": call_id.as_str(), "reason": reason_code(*reason), "by_name": by_name}),
                    );
                    return Err(Some(*reason));
                }
            }
            _ = tokio::time::sleep_until(until) => return Ok(()),
        }
    }
}

pub async fn hangup(account: Account) -> u8 {
    let (engine, _events) = match connect(&account).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = engine.hang_up_all().await;
    engine.close().await;
    match result {
        Ok(n) => {
            println!("ended {n} call{}", if n == 1 { "" } else { "s" });
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

pub async fn history(account: Account, limit: usize, json_mode: bool) -> u8 {
    let (engine, _events) = match connect(&account).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let history = engine.history(limit).await;
    engine.close().await;
    let history = match history {
        Ok(h) => h,
        Err(e) => return fail(&e),
    };
    if json_mode {
        println!("{}", serde_json::to_string_pretty(&history).unwrap_or_default());
        return exit::OK;
    }
    if history.calls.is_empty() {
        println!("no calls yet");
        return exit::OK;
    }
    println!("{:<24} {:<9} {:<20} {:<12} {:>8}", "when (UTC)", "direction", "with", "result", "duration");
    for entry in &history.calls {
        let call = &entry.call;
        let with = match entry.direction {
            Direction::Outgoing => call.participants.first().map(|p| p.display_name.clone()).unwrap_or_default(),
            Direction::Incoming => call.caller_name.clone(),
        };
        let result = if entry.missed {
            "missed".to_owned()
        } else {
            call.end_reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", call.phase).to_lowercase())
        };
        let duration = match (call.answered_at, call.ended_at) {
            (Some(a), Some(e)) => format!("{}s", e.saturating_sub(a) / 1000),
            _ => "-".into(),
        };
        println!(
            "{:<24} {:<9} {:<20} {:<12} {:>8}",
            utc(call.created_at.0),
            format!("{:?}", entry.direction).to_lowercase(),
            with,
            result,
            duration
        );
    }
    exit::OK
}

/// RFC 3339 UTC time, to the second, for Unix milliseconds.
fn utc(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// What the alert player could not play, for a person at the terminal.
fn say_on_stderr(problem: String) {
    eprintln!("calldock: {problem}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn reason_codes_are_kebab_case() {
        assert_eq!(reason_code(EndReason::HangupRemote), "hangup-remote");
        assert_eq!(reason_code(EndReason::Failed(calldock_protocol::FailureKind::Dtls)), "failed(dtls)");
    }
}
