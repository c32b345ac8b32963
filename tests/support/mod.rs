//! Shared by the end-to-end tests: the real `calldock` binary, started as a server process, and
//! the raw protocol client from the conformance crate.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod chromium;
pub mod desktop;
pub mod lines;
pub mod overload;
pub mod pulse;

#[allow(unused_imports)]
pub use calldock_conformance::{Frame, RawClient};

pub mod lossy_relay;
pub mod turn_server;

pub const WAIT: Duration = Duration::from_secs(5);

pub fn calldock() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_calldock"));
    command.env("CALLDOCK_LOG", "warn");
    // Logs and the call log of test runs stay out of the home folder (one folder per test
    // binary; tests that read them set their own).
    command.env("CALLDOCK_DATA_DIR", test_data_dir());
    command
}

fn test_data_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("calldock-test-data").tempdir().expect("a temp dir"))
        .path()
        .to_path_buf()
}

/// A `calldock serve` process on a loopback port.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    pub port: u16,
    args: Vec<String>,
}

impl ServerProcess {
    /// Starts `calldock serve --listen 127.0.0.1:0 ARGS…` and waits for its "listening" line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", args.iter().map(|s| s.to_string()).collect())
    }

    fn start_on(listen: &str, args: Vec<String>) -> Self {
        let mut child = calldock()
            .args(["serve", "--listen", listen])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the calldock binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("server prints its address");
        let base = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected first line from the server: {line:?}");
        let port = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in the address");
        Self { child, base, port, args }
    }

    /// Stops the server with SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM and waits, as an orderly restart does.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// Starts the same server again, on the same port, with the same arguments.
    pub fn restart(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut last = None;
        // The old socket may linger for a moment after the process is gone.
        for _ in 0..50 {
            match std::panic::catch_unwind(|| Self::start_on(&listen, self.args.clone())) {
                Ok(s) => {
                    let old = std::mem::replace(self, s);
                    drop(old);
                    return;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::panic::resume_unwind(last.expect("at least one attempt"));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("calldock.db")
}

pub fn random_call_id() -> calldock_protocol::CallId {
    calldock_protocol::CallId(format!("{:032x}", rand::random::<u128>()))
}

/// Real speech from espeak-ng (installed by scripts/test): the WAV file it wrote, and the same
/// resampled to 48 kHz for comparing with what a call delivered.
pub fn speak(dir: &Path, name: &str, text: &str) -> (PathBuf, Vec<f32>) {
    let path = dir.join(name);
    let status = Command::new("espeak-ng")
        .args(["-w", path.to_str().expect("UTF-8 temp path"), text])
        .status()
        .expect("espeak-ng is installed (scripts/test installs it)");
    assert!(status.success());
    let (samples, rate) = calldock_audio::wav::read_mono(&path).expect("espeak-ng wrote a WAV");
    let mut resampler = calldock_audio::resample::Resampler::new(rate).expect("a resampler for its rate");
    let mut at48 = Vec::new();
    resampler.push(&samples, |f| at48.extend_from_slice(f)).expect("resampled");
    (path, at48)
}

/// A camera recording for `--camera`: `frames` pictures of calldock_video's numbered test
/// pattern, 640×480 at 30 fps, so whoever receives them can tell which frame each one is.
pub fn pattern_y4m(dir: &Path, name: &str, frames: u32) -> PathBuf {
    numbered_y4m(dir, name, 0..frames)
}

/// Like [`pattern_y4m`], with the pictures numbered `numbers` (a second camera's pictures tell
/// themselves from the first's).
pub fn numbered_y4m(dir: &Path, name: &str, numbers: std::ops::Range<u32>) -> PathBuf {
    let path = dir.join(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("a temp file"));
    let mut y4m = y4m::encode(640, 480, y4m::Ratio::new(30, 1)).write_header(file).expect("a Y4M header");
    for index in numbers {
        let picture = calldock_video::test_pattern::pattern(640, 480, index);
        let (u, v) = picture.chroma();
        y4m.write_frame(&y4m::Frame::new([picture.luma(), u, v], None)).expect("a Y4M frame");
    }
    path
}

/// The pictures of a 4:2:0 Y4M file (what `--video-out` writes), with their size.
pub fn read_y4m(path: &Path) -> (u32, u32, Vec<calldock_video::Picture>) {
    let mut decoder = y4m::decode(std::fs::File::open(path).expect("the Y4M file exists")).expect("a Y4M header");
    let (width, height) = (decoder.get_width() as u32, decoder.get_height() as u32);
    let mut pictures = Vec::new();
    while let Ok(frame) = decoder.read_frame() {
        let planes = [frame.get_y_plane(), frame.get_u_plane(), frame.get_v_plane()].concat();
        pictures.push(calldock_video::Picture::from_i420(width, height, planes).expect("a 4:2:0 picture"));
    }
    (width, height, pictures)
}

/// A child process that is killed if the test ends (or fails) before it exits.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Waits for the exit, at most `within`; returns the exit code.
    pub fn wait(&mut self, within: Duration) -> i32 {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait works") {
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "the process did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
