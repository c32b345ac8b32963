//! A private PulseAudio server with null sinks: real sound devices for cpal on a machine with
//! no sound card. Each sink `NAME` is a speaker (`pulseaudio:NAME`) and its monitor a
//! microphone (`pulseaudio:NAME.monitor`): audio played into a sink comes out of its monitor.
//! Every test gets its own server (its own socket), so tests running at once never share a
//! device. Processes reach it through `PULSE_SERVER`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct VirtualPulse {
    daemon: Child,
    /// `unix:/…/native`, for `PULSE_SERVER` and `--server`.
    pub server: String,
    /// Streams of zeros keeping each sink running: an idle null sink starts its first
    /// callbacks about two seconds late.
    keep_alive: Vec<(String, Child)>,
    _dir: tempfile::TempDir,
}

impl VirtualPulse {
    /// Starts PulseAudio (installed by scripts/test) with a 48 kHz mono null sink per name.
    pub fn start(sinks: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("native");
        let mut command = Command::new("pulseaudio");
        command
            .args(["--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no", "--disable-shm=yes"])
            .arg(format!("--load=module-native-protocol-unix auth-anonymous=1 socket={}", socket.display()))
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for sink in sinks {
            command.arg(format!("--load={}", sink_module_args(sink)));
        }
        let daemon = command.spawn().expect("pulseaudio is installed (scripts/test installs it)");
        let mut pulse =
            Self { daemon, server: format!("unix:{}", socket.display()), keep_alive: Vec::new(), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulse
            .tool("pactl")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "PulseAudio did not start within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        for sink in sinks {
            pulse.keep_running(sink);
        }
        if let Some(first) = sinks.first() {
            pulse.wait_until_audio_flows(first);
        }
        pulse
    }

    /// `parec` on a sink's monitor: raw 48 kHz mono s16le on its standard output.
    fn recorder(&self, sink: &str) -> Command {
        let mut command = self.tool("parec");
        command.args(["-d", &format!("{sink}.monitor"), "--rate=48000", "--channels=1", "--format=s16le"]);
        command.arg("--latency-msec=10");
        command
    }

    /// For a second or two after PulseAudio or a new sink starts, recording streams get
    /// nothing; tests go on once a monitor gives audio.
    fn wait_until_audio_flows(&self, sink: &str) {
        use std::io::Read;
        let mut child = self.recorder(sink).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("parec runs");
        let mut stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = [0u8; 960]; // 10 ms
            let _ = tx.send(stdout.read_exact(&mut first).is_ok());
        });
        let flowing = rx.recv_timeout(Duration::from_secs(10)).unwrap_or(false);
        let _ = child.kill();
        let _ = child.wait();
        assert!(flowing, "PulseAudio gave no audio within 10 s of starting");
    }

    /// A PulseAudio client tool (pactl, paplay, parec, pacat) aimed at this server.
    pub fn tool(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("PULSE_SERVER", &self.server);
        command
    }

    /// Makes `command` (a calldock process) use this server's devices.
    pub fn apply(&self, command: &mut Command) {
        command.env("PULSE_SERVER", &self.server);
    }

    /// Runs `pactl ARGS…`, returns its output; panics if it fails.
    pub fn pactl(&self, args: &[&str]) -> String {
        let out = self.tool("pactl").args(args).output().expect("pactl runs");
        assert!(out.status.success(), "pactl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds a sink after start (a device being plugged in); returns its module index.
    pub fn add_sink(&mut self, name: &str) -> String {
        let args = sink_module_args(name);
        let mut parts = args.splitn(2, ' ');
        let module = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.next().unwrap_or_default().split(' ').collect();
        let index = self.pactl(&[&["load-module", module][..], &rest[..]].concat()).trim().to_string();
        self.keep_running(name);
        self.wait_until_audio_flows(name);
        index
    }

    /// Removes a sink (a device being unplugged): streams on it lose their device.
    pub fn remove_sink(&mut self, name: &str) {
        if let Some(at) = self.keep_alive.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.keep_alive.remove(at);
            let _ = child.kill();
            let _ = child.wait();
        }
        let modules = self.pactl(&["list", "short", "modules"]);
        let index = modules
            .lines()
            .find(|l| l.contains(&format!("sink_name={name} ")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no module for sink {name} in {modules}"))
            .to_string();
        self.pactl(&["unload-module", &index]);
    }

    /// Starts recording what plays on a sink, as raw 48 kHz mono s16le into `out`.
    pub fn record(&self, sink: &str, out: &Path) -> Recording {
        let file = std::fs::File::create(out).expect("recording file");
        let child = self.recorder(sink).stdout(file).stderr(Stdio::null()).spawn().expect("parec runs");
        Recording { child: Some(child), path: out.to_path_buf(), started: Instant::now() }
    }

    /// Plays a WAV file into a sink (what a microphone on its monitor hears); returns at once.
    pub fn play(&self, sink: &str, wav: &Path) -> Child {
        self.tool("paplay")
            .args(["-d", sink, "--latency-msec=10"])
            .arg(wav)
            .stderr(Stdio::null())
            .spawn()
            .expect("paplay runs")
    }

    fn keep_running(&mut self, sink: &str) {
        let child = self
            .tool("pacat")
            .args(["--playback", "-d", sink, "--latency-msec=20", "--format=s16le", "--rate=48000", "--channels=1"])
            .arg("/dev/zero")
            .stderr(Stdio::null())
            .spawn()
            .expect("pacat runs");
        self.keep_alive.push((sink.to_string(), child));
    }
}

fn sink_module_args(name: &str) -> String {
    format!("module-null-sink sink_name={name} rate=48000 channels=1 sink_properties=device.description={name}")
}

impl Drop for VirtualPulse {
    fn drop(&mut self) {
        for (_, child) in &mut self.keep_alive {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A running `parec`: stop it to read what it heard.
pub struct Recording {
    child: Option<Child>,
    path: PathBuf,
    pub started: Instant,
}

/// What a recording heard, on the test's clock.
pub struct Heard {
    pub samples: Vec<f32>,
    /// The instant of the first sample. Taken from when recording stopped, minus what was
    /// recorded: a recording stream may start delivering a while after `parec` starts.
    pub start: Instant,
}

impl Recording {
    /// Stops recording; returns what it heard.
    pub fn stop(mut self) -> Heard {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stopped = Instant::now();
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let samples: Vec<f32> =
            bytes.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect();
        let length = Duration::from_secs_f64(samples.len() as f64 / 48_000.0);
        let start = stopped.checked_sub(length).unwrap_or(self.started).max(self.started);
        Heard { samples, start }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// RMS level in dBFS of `samples[from_s..to_s]` (seconds) of a 48 kHz recording.
pub fn level_between(samples: &[f32], from_s: f64, to_s: f64) -> f64 {
    let at = |s: f64| ((s.max(0.0) * 48_000.0) as usize).min(samples.len());
    calldock_media::level::rms_dbfs(&samples[at(from_s)..at(to_s)])
}
