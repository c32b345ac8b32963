//! `cargo bench --bench desktop`: the desktop app beside headless Chromium rendering the same UI
//! build (issue 5's benchmark), and beside WebKitGTK on its own rendering it too (what the web
//! host costs before any of the app's code). Printed side by side, from runs taken alternately
//! in one go:
//!
//! - start to interactive: from asking the WebDriver server for a session (which launches the
//!   app, or Chromium and then loads the page) until the first-run form is on screen;
//! - memory, PSS summed over every process (the app with WebKit's web and network processes;
//!   Chromium's browser, zygotes, renderer, GPU and utility processes), idle on the contacts
//!   screen and during an echo test call.
//!
//! The app runs for real: the built-in server, the engine, a real echo call with a WAV file as
//! the microphone. Chromium and WebKitGTK alone run the UI with the shell faked in the page
//! (ui/e2e/harness.ts, the UI end-to-end tests' mock), so their "call" is only the UI of one: the
//! comparison is in their favour.
//!
//! Needs: Xvfb, dbus, WebKitWebDriver (webkit2gtk-driver), MiniBrowser (libwebkit2gtk-4.1-0),
//! chromedriver (chromium-driver),
//! tauri-driver (scripts/setup-desktop-driver), and the UI built with its node_modules
//! (scripts/test-ui).

#[allow(dead_code)]
#[path = "../tests/support/chromium.rs"]
mod chromium;
#[path = "../tests/support/desktop.rs"]
mod desktop;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chromium::{PageFile, PageServer};
use desktop::{Group, TauriDriver};
use fantoccini::{Client, Locator};

const RUNS: usize = 3;
const SETTLE: Duration = Duration::from_secs(3);
const IN_CALL: Duration = Duration::from_secs(5);
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WEBKIT_WEBDRIVER: &str = "/usr/bin/WebKitWebDriver";
const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

#[derive(Debug, Clone)]
struct Sample {
    interactive_ms: f64,
    idle_kib: u64,
    in_call_kib: u64,
    /// PSS by process name during the call, largest first.
    in_call_by_process: Vec<(String, u64)>,
}

fn workspace() -> PathBuf {
    // Read when run (cargo sets it), not when built: with one target dir shared by two clones,
    // cargo may reuse this binary for the other clone, and the built-in path is the first one's.
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}

async fn wait_for(client: &Client, locator: Locator<'_>, what: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .every(Duration::from_millis(10))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// PSS by process name (processes of one name summed), largest first.
fn pss_by_process(pids: &[u32]) -> Vec<(String, u64)> {
    let mut by_name: Vec<(String, u64)> = Vec::new();
    for &pid in pids {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
        let kib = desktop::pss_kib(pid);
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += kib,
            None => by_name.push((name, kib)),
        }
    }
    by_name.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    by_name
}

/// The steps both runs share: first run, contacts (idle), the echo test call (in a call).
async fn drive(
    client: &Client,
    measure: impl Fn() -> Vec<(String, u64)>,
    connected: impl AsyncFn(&Client),
) -> (Vec<(String, u64)>, Vec<(String, u64)>) {
    wait_for(client, Locator::Css("#display-name"), "the first-run form").await.send_keys("Sam Tester").await.unwrap();
    wait_for(client, Locator::Css("button[type=submit]"), "the submit button").await.click().await.unwrap();
    let call = wait_for(client, Locator::Css("button[aria-label='Call Echo test']"), "the contacts").await;
    tokio::time::sleep(SETTLE).await;
    let idle = measure();
    call.click().await.unwrap();
    wait_for(client, Locator::XPath("//button[contains(., 'Start audio call')]"), "the pre-join screen")
        .await
        .click()
        .await
        .unwrap();
    connected(client).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = match client.find(Locator::Css(".dock-state")).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if state.contains("Connected") {
            break;
        }
        assert!(Instant::now() < deadline, "the call did not connect: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(IN_CALL).await;
    let in_call = measure();
    wait_for(client, Locator::XPath("//button[contains(., 'End call')]"), "the end button")
        .await
        .click()
        .await
        .unwrap();
    (idle, in_call)
}

async fn run_app(mic: &Path) -> Sample {
    let home = tempfile::tempdir().unwrap();
    let display = desktop::xvfb();
    let bus = desktop::session_bus();
    let driver = TauriDriver::start(|command| {
        desktop::window_env(command, &display, &bus, home.path());
        command.env("CALLDOCK_VIRTUAL_MIC", mic).env("CALLDOCK_VIRTUAL_SPEAKER", "null");
    });
    let started = Instant::now();
    let client =
        desktop::webdriver_session(&driver.url, desktop::tauri_capabilities(Path::new(env!("CARGO_BIN_EXE_calldock"))))
            .await;
    wait_for(&client, Locator::Css("#display-name"), "the first-run form").await;
    let interactive_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (idle, in_call) = drive(&client, || pss_by_process(&driver.app_processes()), async |_: &Client| {}).await;
    let _ = client.close().await;
    Sample::new(interactive_ms, &idle, in_call)
}

/// ui/dist as served files, with the faked shell loaded before the app's script.
fn ui_files(harness: &str) -> &'static [PageFile] {
    let dist = workspace().join("ui/dist");
    let mut files = Vec::new();
    let mut stack = vec![dist.clone()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}; run scripts/test-ui first", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let url = format!("/{}", path.strip_prefix(&dist).unwrap().to_str().unwrap());
            let mut body = std::fs::read(&path).unwrap();
            let content_type = match path.extension().and_then(|e| e.to_str()) {
                Some("html") => {
                    let html = String::from_utf8(body).unwrap();
                    body = html.replacen("<head>", "<head><script src=\"/__harness.js\"></script>", 1).into_bytes();
                    "text/html"
                }
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                _ => "application/octet-stream",
            };
            files.push(PageFile {
                path: if url == "/index.html" { "/" } else { Box::leak(url.into_boxed_str()) },
                content_type,
                body: Box::leak(body.into_boxed_slice()),
            });
        }
    }
    let harness = format!("window.__scenario = {{ firstRun: true, noRecents: true }};\n{harness}");
    files.push(PageFile {
        path: "/__harness.js",
        content_type: "text/javascript",
        body: Box::leak(harness.into_bytes().into_boxed_slice()),
    });
    Box::leak(files.into_boxed_slice())
}

/// The UI end-to-end tests' faked shell, bundled by the esbuild the UI's build already has.
fn harness() -> String {
    let ui = workspace().join("ui");
    let out = Command::new(ui.join("node_modules/.bin/esbuild"))
        .args(["e2e/harness.ts", "--bundle", "--format=iife", "--target=es2021", "--log-level=error"])
        .current_dir(&ui)
        .output()
        .expect("esbuild from ui/node_modules runs (scripts/test-ui installs it)");
    assert!(out.status.success(), "esbuild: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// How Chromium renders: with `--disable-gpu` (no GL at all; the UI end-to-end tests' setting)
/// or with its GPU process on software GL (SwiftShader), as WebKitGTK here runs on Mesa's
/// software GL (llvmpipe) for want of a GPU.
#[derive(Clone, Copy)]
enum Gpu {
    Disabled,
    Software,
}

async fn run_chromium(pages: &PageServer, gpu: Gpu) -> Sample {
    let profile = tempfile::tempdir().unwrap();
    let port = desktop::free_port();
    let mut command = Command::new(CHROMEDRIVER);
    command.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
    let driver = Group::spawn(command).expect("chromedriver starts (Debian package chromium-driver)");
    wait_until_listening(port, "chromedriver");
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", match gpu { Gpu::Disabled => "--disable-gpu", Gpu::Software => "--enable-unsafe-swiftshader" },
                     "--window-size=1040,720", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let started = Instant::now();
    let client = desktop::webdriver_session(&format!("http://127.0.0.1:{port}"), caps).await;
    client.goto(&format!("http://127.0.0.1:{}/", pages.port)).await.expect("the UI loads");
    wait_for(&client, Locator::Css("#display-name"), "the first-run form").await;
    let interactive_ms = started.elapsed().as_secs_f64() * 1000.0;
    let browser = |pid: u32| {
        desktop::process_tree(pid)
            .into_iter()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "chromedriver"))
            .collect::<Vec<_>>()
    };
    let driver_pid = driver.id();
    let (idle, in_call) = drive(&client, || pss_by_process(&browser(driver_pid)), faked_call).await;
    let _ = client.close().await;
    drop(driver);
    Sample::new(interactive_ms, &idle, in_call)
}

/// Waits for a WebDriver server started on `port`: a session asked for earlier fails.
fn wait_until_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} does not listen on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The faked shell's call: connected, and stats every second as the engine sends them.
async fn faked_call(client: &Client) {
    client
        .execute(
            "const m = window.__mock; \
             m.emit('call', { type: 'state_changed', call_id: 'out-1', state: 'connected' }); \
             setInterval(() => m.emit('call-stats', { call_id: 'out-1', stats: { rtt_ms: 2, jitter_ms: 0.5, \
               loss_percent: 0, send_kbps: 33, receive_kbps: 32, codec: 'opus', local_candidate: 'host', \
               remote_candidate: 'host', audio_level_dbfs: -28, jitter_buffer_delay_ms: 20, \
               concealed_samples: 0, sent_loss_percent: 0, fec_percent: 0, mos: 4.4, \
               quality: 'excellent' } }), 1000);",
            vec![],
        )
        .await
        .expect("the faked shell takes events");
}

/// WebKitGTK on its own: its MiniBrowser (shipped with libwebkit2gtk-4.1-0) showing the same UI
/// build as Chromium, with the same faked shell, under the same Xvfb. Set up as the app sets up
/// its web view (src-tauri/app/web_view.rs: compositing off, JavaScriptCore's interpreter only,
/// WebGL and the page cache off), so the difference to the app is what the app itself holds:
/// its code, the engine, the built-in server and the call.
async fn run_web_host(pages: &PageServer) -> Sample {
    let home = tempfile::tempdir().unwrap();
    let display = desktop::xvfb();
    let bus = desktop::session_bus();
    let port = desktop::free_port();
    let mut command = Command::new(WEBKIT_WEBDRIVER);
    command.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
    desktop::window_env(&mut command, &display, &bus, home.path());
    command.env("WEBKIT_DISABLE_COMPOSITING_MODE", "1").env("JSC_useJIT", "0");
    let driver = Group::spawn(command).expect("WebKitWebDriver starts (Debian package webkit2gtk-driver)");
    wait_until_listening(port, "WebKitWebDriver");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "webkitgtk:browserOptions".into(),
        serde_json::json!({
            "binary": MINIBROWSER,
            "args": ["--automation", "--enable-webgl=false", "--enable-page-cache=false"],
        }),
    );
    let started = Instant::now();
    let client = desktop::webdriver_session(&format!("http://127.0.0.1:{port}"), caps).await;
    client.goto(&format!("http://127.0.0.1:{}/", pages.port)).await.expect("the UI loads");
    wait_for(&client, Locator::Css("#display-name"), "the first-run form").await;
    let interactive_ms = started.elapsed().as_secs_f64() * 1000.0;
    let web_host = || {
        driver
            .members()
            .into_iter()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "WebKitWebDriver"))
            .collect::<Vec<_>>()
    };
    let (idle, in_call) = drive(&client, || pss_by_process(&web_host()), faked_call).await;
    let _ = client.close().await;
    Sample::new(interactive_ms, &idle, in_call)
}

impl Sample {
    fn new(interactive_ms: f64, idle: &[(String, u64)], in_call: Vec<(String, u64)>) -> Self {
        let total = |by: &[(String, u64)]| by.iter().map(|(_, kib)| kib).sum();
        Sample { interactive_ms, idle_kib: total(idle), in_call_kib: total(&in_call), in_call_by_process: in_call }
    }
}

fn print_run(run: usize, who: &str, s: &Sample, call: &str) {
    println!(
        "run {run}: {who:<22} {:>6.0} ms to interactive, {:>6.1} MiB idle, {:>6.1} MiB in {call}",
        s.interactive_ms,
        mib(s.idle_kib as f64),
        mib(s.in_call_kib as f64)
    );
    let parts: Vec<String> =
        s.in_call_by_process.iter().map(|(name, kib)| format!("{name} {:.1}", mib(*kib as f64))).collect();
    println!("       in the call, MiB by process: {}", parts.join(", "));
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mic = dir.path().join("speech.wav");
    let mut file = calldock_audio::wav::WavSpeaker::create(&mic).expect("a WAV file");
    file.write(&calldock_audio::pipeline::test_signal::speech_like(2.0)).expect("written");
    file.finish().expect("finished");
    let pages = PageServer::start(ui_files(&harness()));

    let (mut app, mut web_host, mut no_gpu, mut soft_gpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let a = run_app(&mic).await;
        print_run(run, "calldock", &a, "an echo call");
        let w = run_web_host(&pages).await;
        print_run(run, "WebKitGTK alone", &w, "a (faked) call");
        let c = run_chromium(&pages, Gpu::Disabled).await;
        print_run(run, "chromium --disable-gpu", &c, "a (faked) call");
        let g = run_chromium(&pages, Gpu::Software).await;
        print_run(run, "chromium software GL", &g, "a (faked) call");
        app.push(a);
        web_host.push(w);
        no_gpu.push(c);
        soft_gpu.push(g);
    }

    // Ratios to Chromium with --disable-gpu (the two Chromium setups cost the same here).
    let row = |name: &str, unit: &str, pick: &dyn Fn(&Sample) -> f64| {
        let [a, w, c, g] = [&app, &web_host, &no_gpu, &soft_gpu].map(|runs| median(runs.iter().map(pick).collect()));
        println!(
            "{name:<28} {a:>7.1} {unit:<3} {:>5.2}×  {w:>7.1} {unit:<3} {:>5.2}×  {c:>7.1} {unit:<3}  {g:>7.1} {unit:<3}",
            a / c,
            w / c
        );
    };
    println!(
        "\nmedians of {RUNS} runs              calldock        WebKitGTK alone   chromium --disable-gpu  chromium software GL"
    );
    row("start to interactive", "ms", &|s| s.interactive_ms);
    row("memory idle (PSS)", "MiB", &|s| mib(s.idle_kib as f64));
    row("memory in an echo call (PSS)", "MiB", &|s| mib(s.in_call_kib as f64));
    let own = |pick: &dyn Fn(&Sample) -> f64| {
        median(app.iter().map(pick).collect()) - median(web_host.iter().map(pick).collect())
    };
    println!(
        "the app's own, beyond WebKitGTK alone: {:.1} MiB idle, {:.1} MiB in the call",
        own(&|s| mib(s.idle_kib as f64)),
        own(&|s| mib(s.in_call_kib as f64))
    );
    println!("goal: calldock's memory at most 0.5× Chromium's");
}
