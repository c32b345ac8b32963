//! The desktop window's test bench: a private X server (Xvfb), a private D-Bus session, a
//! temporary home, and tauri-driver (the WebDriver server for Tauri apps, in front of WebKitGTK's
//! WebKitWebDriver) for tests and benchmarks that drive the real app.
//!
//! Nothing here touches the machine's own display, bus, keychain or home folder.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starting WebKit on a loaded 2-core machine takes seconds.
pub const START_WAIT: Duration = Duration::from_secs(60);

/// A process started with a piped stdout, whose first line says where it listens.
pub fn first_line(child: &mut Child, within: Duration, what: &str) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(within).unwrap_or_else(|_| panic!("{what} said nothing within {within:?}"))
}

/// A child process killed (with everything it started in its process group) when dropped.
pub struct Group(pub Child);

impl Group {
    /// Starts `command` as the leader of a new process group: WebKitWebDriver, the app and
    /// WebKit's own processes all land in it, so one signal ends them all.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        command.spawn().map(Group)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Every live process of the group, the leader included.
    pub fn members(&self) -> Vec<u32> {
        process_group_members(self.0.id())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.wait();
    }
}

/// A private X server; dropped, it is killed.
pub struct Display {
    _xvfb: Group,
    pub name: String,
}

pub fn xvfb() -> Display {
    assert!(
        Path::new("/usr/bin/Xvfb").exists(),
        "Xvfb is needed for the desktop tests: apt-get install xvfb (scripts/test installs it)"
    );
    let mut command = Command::new("/usr/bin/Xvfb");
    command
        .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut xvfb = Group::spawn(command).expect("Xvfb starts");
    let number = first_line(&mut xvfb.0, Duration::from_secs(20), "Xvfb");
    let number = number.trim();
    assert!(number.parse::<u32>().is_ok(), "Xvfb gave no display number: {number:?}");
    Display { _xvfb: xvfb, name: format!(":{number}") }
}

/// A private D-Bus session bus; dropped, it is killed.
pub struct SessionBus {
    _daemon: Group,
    pub address: String,
}

pub fn session_bus() -> SessionBus {
    let mut command = Command::new("dbus-daemon");
    command.args(["--session", "--nofork", "--print-address=1"]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut daemon = Group::spawn(command).expect("dbus-daemon starts (Debian package dbus)");
    let address = first_line(&mut daemon.0, Duration::from_secs(20), "dbus-daemon").trim().to_owned();
    assert!(address.starts_with("unix:"), "unexpected D-Bus address {address:?}");
    SessionBus { _daemon: daemon, address }
}

/// Sets the window's environment on `command`: the display, the bus, and `home` with its own
/// config, data, cache and runtime dirs (created here).
pub fn window_env(command: &mut Command, display: &Display, bus: &SessionBus, home: &Path) {
    for dir in ["config", "data", "cache", "runtime"] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.join("runtime"), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    command
        .env("DISPLAY", &display.name)
        .env_remove("WAYLAND_DISPLAY")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", home.join("runtime"))
        .env_remove("CALLDOCK_DATA_DIR")
        // Nothing about GL or JavaScriptCore: the app sets up its web view itself
        // (src-tauri/app/web_view.rs), so the tests and the benchmark run it as a user's machine
        // without a GPU would.
        .env_remove("WEBKIT_DISABLE_COMPOSITING_MODE")
        .env_remove("JSC_useJIT")
        .env_remove("LIBGL_ALWAYS_SOFTWARE")
        .env("CALLDOCK_LOG", "warn");
}

/// A free TCP port on loopback (free now; taken by whoever binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// Where tauri-driver is: `CALLDOCK_TAURI_DRIVER`, else scripts/setup-desktop-driver's place,
/// else `PATH`.
pub fn tauri_driver_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CALLDOCK_TAURI_DRIVER") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("CALLDOCK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/calldock")))
        .unwrap_or_default();
    let cached = cache.join("cargo-bin/bin/tauri-driver");
    if cached.is_file() { cached } else { PathBuf::from("tauri-driver") }
}

/// tauri-driver in front of WebKitWebDriver, on free loopback ports, in its own process group
/// (WebKitWebDriver, the app it launches and WebKit's processes join it). Dropped, all of them
/// are killed.
pub struct TauriDriver {
    group: Group,
    pub url: String,
}

impl TauriDriver {
    /// `command_env` sets the app's environment: the app inherits tauri-driver's.
    pub fn start(command_env: impl FnOnce(&mut Command)) -> Self {
        assert!(
            Path::new("/usr/bin/WebKitWebDriver").exists(),
            "WebKitWebDriver is needed: apt-get install webkit2gtk-driver (scripts/test installs it)"
        );
        let (port, native_port) = (free_port(), free_port());
        let mut command = Command::new(tauri_driver_path());
        command
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command_env(&mut command);
        let group = Group::spawn(command).unwrap_or_else(|e| {
            panic!(
                "tauri-driver starts ({e}); scripts/setup-desktop-driver installs it into ~/.cache/calldock/cargo-bin"
            )
        });
        // tauri-driver forwards to WebKitWebDriver, which it starts: a request before both
        // listen fails.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (port, what) in [(port, "tauri-driver"), (native_port, "WebKitWebDriver")] {
            while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
                assert!(Instant::now() < deadline, "{what} does not listen on port {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        TauriDriver { group, url: format!("http://127.0.0.1:{port}") }
    }

    /// The processes of the app: everything in the group but the two WebDriver servers.
    pub fn app_processes(&self) -> Vec<u32> {
        self.group
            .members()
            .into_iter()
            .filter(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                !matches!(comm.trim(), "tauri-driver" | "WebKitWebDriver")
            })
            .collect()
    }
}

/// The live processes whose process group is `pgid`.
pub fn process_group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // Field 5 of /proc/PID/stat, counted after the parenthesized command name.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first().is_some_and(|state| *state != "Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

/// Proportional set size in KiB (shared pages split between their users), from
/// /proc/PID/smaps_rollup; 0 for a process that is gone.
pub fn pss_kib(pid: u32) -> u64 {
    let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else { return 0 };
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every process in the tree under `root`, `root` included.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        // Each thread lists the children it started: a process's children are the union.
        for task in std::fs::read_dir(format!("/proc/{parent}/task")).into_iter().flatten().flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    all
}

/// The WebDriver session capabilities that make tauri-driver launch `application`.
pub fn tauri_capabilities(application: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "tauri:options".into(),
        serde_json::json!({ "application": application.to_str().expect("a UTF-8 path") }),
    );
    caps
}

/// A WebDriver session through `driver_url` (plain HTTP on loopback).
pub async fn webdriver_session(
    driver_url: &str,
    capabilities: serde_json::Map<String, serde_json::Value>,
) -> fantoccini::Client {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .unwrap_or_else(|e| panic!("a WebDriver session through {driver_url}: {e}"))
}

/// A PNG of the window. WebKitGTK answers a screenshot only after its next repaint, and a page
/// with nothing moving never repaints: an invisible style flip for two seconds gives it one.
pub async fn screenshot(client: &fantoccini::Client, path: &Path) {
    client
        .execute(
            "let n = 0; const t = setInterval(() => { \
               document.body.style.outline = n++ % 2 ? '' : '1px solid transparent'; \
               if (n > 40) { clearInterval(t); document.body.style.outline = ''; } }, 50);",
            vec![],
        )
        .await
        .expect("the page runs a script");
    let png = tokio::time::timeout(Duration::from_secs(20), client.screenshot())
        .await
        .unwrap_or_else(|_| panic!("no screenshot within 20 s for {}", path.display()))
        .expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    std::fs::write(path, png).expect("the screenshot is saved");
}
