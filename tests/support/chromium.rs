//! Headless Chromium as a foreign WebRTC peer (tests/interop_chromium.rs) and as the yardstick
//! of the media benchmark (benches/media.rs): the flags, the browser process, and a small web
//! server that serves a page and takes what it posts back.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags for a headless Chromium that talks to nothing but loopback, grants the microphone by
/// itself, and offers WebRTC host candidates webrtc-rs can use. Why each: docs/interop.md.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
];

/// Headless Chromium on one page, in a process group of its own so that the whole browser
/// (zygote, renderers, utility processes) goes when the test ends, passes or fails.
pub struct Browser {
    child: Child,
    stderr: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url`, with `microphone` (a WAV file) as the fake capture device, played once.
    pub fn launch(url: &str, microphone: &Path, logs: &Path) -> Self {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: Debian's chromium is the foreign WebRTC peer of these tests \
             (`apt-get install chromium`; scripts/test installs it when run as root)"
        );
        let profile = tempfile::tempdir().expect("a fresh Chromium profile");
        let stderr = logs.join("chromium.log");
        let child = Command::new(CHROMIUM)
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            // `%noloop`: play the file once, then silence (by default it loops).
            .arg(format!("--use-file-for-fake-audio-capture={}%noloop", microphone.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("Chromium's log file"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        Self { child, stderr, _profile: profile }
    }

    /// The browser process; its renderers and helpers are in its process group.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group's id is the browser's pid (process_group(0)).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            // Without sound cards, D-Bus or a GPU, Chromium logs a lot that does not matter here.
            let relevant: Vec<&str> = log
                .lines()
                .filter(|l| {
                    !["ALSA lib", "alsa_util", "dbus", "zygote", "/usr/bin/chromium"].iter().any(|n| l.contains(n))
                })
                .collect();
            eprintln!("Chromium's log (last lines):\n{}", relevant[relevant.len().saturating_sub(40)..].join("\n"));
        }
    }
}

/// A file the page server hands out.
pub struct PageFile {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Something the page posted: its path and body.
pub struct Posted {
    pub path: String,
    pub body: Vec<u8>,
}

/// The harness's own web server on loopback: serves the page's files and passes on every POST.
pub struct PageServer {
    pub port: u16,
    inbox: Receiver<Posted>,
}

impl PageServer {
    pub fn start(files: &'static [PageFile]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the page");
        let port = listener.local_addr().expect("bound").port();
        let (tx, inbox) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve_one(stream, files, &tx) {
                        let body = format!("(harness) request failed: {e}").into_bytes();
                        let _ = tx.send(Posted { path: "/log".into(), body });
                    }
                });
            }
        });
        Self { port, inbox }
    }

    /// The next POST, if one comes within `within`.
    pub fn next(&self, within: Duration) -> Option<Posted> {
        self.inbox.recv_timeout(within).ok()
    }
}

/// One HTTP/1.1 request (the page sends small, simple ones), answered with `Connection: close`.
fn serve_one(stream: TcpStream, files: &[PageFile], page: &Sender<Posted>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(()); // a speculative connection that sent nothing
    }
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default().to_owned(), words.next().unwrap_or_default().to_owned());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(256 << 20)];
    reader.read_exact(&mut body)?;
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let (status, content_type, reply): (&str, &str, &[u8]) = match method.as_str() {
        "GET" => match files.iter().find(|f| f.path == path) {
            Some(file) => ("200 OK", file.content_type, file.body),
            None => ("404 Not Found", "text/plain", b"not found"),
        },
        "POST" => {
            let _ = page.send(Posted { path, body });
            ("200 OK", "text/plain", b"")
        }
        _ => ("405 Method Not Allowed", "text/plain", b""),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        reply.len()
    )?;
    stream.write_all(reply)?;
    stream.flush()
}

/// A process and all its descendants, from /proc, each with its CPU time (user + system) in
/// seconds.
fn process_tree(root: u32) -> Vec<(u32, f64)> {
    let ticks_per_second = 100.0; // USER_HZ: 100 on every Linux architecture Debian ships
    let mut parent_of = std::collections::HashMap::new();
    let mut seconds = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ppid(1) … utime(11) stime(12).
        let (Some(ppid), Some(utime), Some(stime)) = (fields.get(1), fields.get(11), fields.get(12)) else { continue };
        parent_of.insert(pid, ppid.parse::<u32>().unwrap_or(0));
        let ticks = utime.parse::<u64>().unwrap_or(0) + stime.parse::<u64>().unwrap_or(0);
        seconds.insert(pid, ticks as f64 / ticks_per_second);
    }
    let in_tree = |mut pid: u32| {
        while pid != 0 {
            if pid == root {
                return true;
            }
            pid = parent_of.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    seconds.into_iter().filter(|(pid, _)| in_tree(*pid)).collect()
}

/// CPU time (user + system) of a process and all its descendants, from /proc, in seconds.
pub fn process_tree_cpu_seconds(root: u32) -> f64 {
    process_tree(root).iter().map(|(_, seconds)| seconds).sum()
}

/// How many threads of a process and its descendants bear this name (/proc/…/task/…/comm,
/// which Linux cuts to 15 bytes): how the media benchmark sees how many audio capture and
/// processing pipelines Chromium runs.
pub fn threads_named(root: u32, name: &str) -> usize {
    process_tree(root)
        .iter()
        .flat_map(|(pid, _)| std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten())
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name))
        .count()
}
