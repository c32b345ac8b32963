//! The real app, end to end, driven the way a person uses it: the `calldock` window under Xvfb,
//! through tauri-driver and WebKitGTK's WebDriver. First run on the built-in server, the echo
//! test call with a WAV file as the microphone, the timer and the quality badge, hang up, the
//! summary, and the call in recent calls; the echoed speech is checked in the speaker WAV. And
//! a call ringing in: the dialog, the ringtone on a PulseAudio null sink, accept, silence.
//!
//! Screenshots of each screen go to `$CARGO_TARGET_TMPDIR/desktop-e2e/` (the key ones are
//! copied into docs/screenshots/ by hand when the UI changes).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use support::desktop::{self, START_WAIT, TauriDriver};

/// How long a screen may take to appear after the click that leads to it.
const STEP_WAIT: Duration = Duration::from_secs(20);

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("desktop-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn button_with_text(text: &str) -> String {
    format!("//button[contains(normalize-space(.), '{text}')]")
}

async fn wait_css(client: &Client, css: &str) -> fantoccini::elements::Element {
    let found = client.wait().at_most(STEP_WAIT).for_element(Locator::Css(css)).await;
    match found {
        Ok(element) => element,
        Err(e) => fail(client, &format!("{css} did not appear within {STEP_WAIT:?}: {e}")).await,
    }
}

/// Fails the test with a screenshot and the page's text, which say what was on screen instead.
async fn fail(client: &Client, why: &str) -> ! {
    let path = screenshots_dir().join("failure.png");
    desktop::screenshot(client, &path).await;
    let text = match client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("{why}\non screen ({}):\n{text}", path.display());
}

async fn wait_xpath(client: &Client, xpath: &str) -> fantoccini::elements::Element {
    let found = client.wait().at_most(STEP_WAIT).for_element(Locator::XPath(xpath)).await;
    match found {
        Ok(element) => element,
        Err(e) => fail(client, &format!("{xpath} did not appear within {STEP_WAIT:?}: {e}")).await,
    }
}

async fn wait_gone(client: &Client, css: &str) {
    let deadline = Instant::now() + STEP_WAIT;
    while client.find(Locator::Css(css)).await.is_ok() {
        if Instant::now() > deadline {
            fail(client, &format!("{css} is still there after {STEP_WAIT:?}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the text of `css` until `accept` takes it; returns it.
async fn wait_text(client: &Client, css: &str, what: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + STEP_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if accept(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fail(client, &format!("{what}: {css} still reads {last:?} after {STEP_WAIT:?}")).await
}

/// Nothing went wrong behind the screen: no error banner (an IPC call the UI did not expect to
/// fail, a command the capabilities refuse).
async fn assert_no_error_banner(client: &Client, when: &str) {
    let body = client.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(
        !body.contains("Something went wrong") && !body.contains("Something did not work"),
        "an error banner {when}: {body}"
    );
}

/// `m:ss` as seconds.
fn timer_seconds(text: &str) -> Option<u32> {
    let (m, s) = text.trim().split_once(':')?;
    Some(m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_app_makes_an_echo_test_call_and_lists_it_in_recent_calls() {
    let home = tempfile::tempdir().unwrap();
    let (mic, said) = support::speak(
        home.path(),
        "mic.wav",
        "Hello from the desktop test. The echo bot sends every word of this sentence back to the caller.",
    );
    let ear = home.path().join("speaker.wav");
    let display = desktop::xvfb();
    let bus = desktop::session_bus();
    let driver = TauriDriver::start(|command| {
        desktop::window_env(command, &display, &bus, home.path());
        command.env("CALLDOCK_VIRTUAL_MIC", &mic).env("CALLDOCK_VIRTUAL_SPEAKER", &ear);
    });
    let shots = screenshots_dir();

    // Launch: the session starts the app; the first screen is interactive when its form is.
    let started = Instant::now();
    let client = tokio::time::timeout(
        START_WAIT,
        desktop::webdriver_session(&driver.url, desktop::tauri_capabilities(Path::new(env!("CARGO_BIN_EXE_calldock")))),
    )
    .await
    .expect("the app's window is up within a minute");
    let name = wait_css(&client, "#display-name").await;
    println!("launch to first-run form: {} ms", started.elapsed().as_millis());
    let heading = wait_css(&client, "h1").await.text().await.unwrap();
    assert_eq!(heading, "Welcome to Calldock");
    desktop::screenshot(&client, &shots.join("first-run.png")).await;

    // First run: the built-in server is the default choice; a name is all it needs.
    name.send_keys("Sam Tester").await.unwrap();
    let user = wait_css(&client, "#user-id").await.prop("value").await.unwrap().unwrap_or_default();
    assert_eq!(user, "sam.tester", "the user name is suggested from the display name");
    wait_css(&client, "button[type=submit]").await.click().await.unwrap();

    // Contacts: the echo test is there at once, from the built-in server.
    wait_css(&client, "button[aria-label='Call Echo test']").await;
    wait_text(&client, "header.topbar", "signed in", |t| t.contains("Online as Sam Tester")).await;
    let recents = wait_css(&client, "ul[aria-label='Recent calls']").await;
    assert!(recents.find_all(Locator::Css("li")).await.unwrap().is_empty(), "a first run has no calls yet");
    desktop::screenshot(&client, &shots.join("home.png")).await;
    assert_no_error_banner(&client, "after the first run").await;

    // The page renders on the CPU (src-tauri/app/web_view.rs): WebKit's web process holds about
    // 90 MiB here; with WebKit's defaults it composited through Mesa's software GL at 185 MiB.
    let web = driver
        .app_processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() == "WebKitWebProces"
        })
        .map(|pid| (pid, desktop::pss_kib(pid)))
        .max_by_key(|&(_, pss)| pss)
        .expect("WebKit's web process runs");
    println!("web process PSS: {} MiB", web.1 / 1024);
    assert!(web.1 < 150 * 1024, "the web process holds {} MiB: is it compositing with GL again?", web.1 / 1024);
    // JavaScriptCore's JIT is off (web_view::prepare_environment): with it on, the web process
    // maps a 1 GiB region that is writable and executable at once.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", web.0)).expect("the web process's maps");
    let jit: Vec<&str> =
        maps.lines().filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.starts_with("rwx"))).collect();
    assert!(jit.is_empty(), "the web process has writable and executable memory (JavaScriptCore's JIT?): {jit:?}");

    // Settings: audio processing off. The microphone is a WAV file and the echo bot plays it
    // back 50 ms later, which echo cancellation would rightly take for an echo of the speaker.
    wait_xpath(&client, &button_with_text("Settings")).await.click().await.unwrap();
    wait_css(&client, "[role=dialog]").await;
    for switch in ["Echo cancellation", "Noise suppression", "Automatic gain control"] {
        let input = wait_xpath(&client, &format!("//label[contains(., '{switch}')]//input[@type='checkbox']")).await;
        assert_eq!(input.prop("checked").await.unwrap().as_deref(), Some("true"), "{switch} is on by default");
        input.click().await.unwrap();
    }
    desktop::screenshot(&client, &shots.join("settings.png")).await;
    wait_xpath(&client, "//div[@role='dialog']//button[normalize-space(.)='Save']").await.click().await.unwrap();
    wait_gone(&client, "[role=dialog]").await;
    wait_text(&client, "header.topbar", "signed in again with the new switches", |t| {
        t.contains("Online as Sam Tester")
    })
    .await;
    let settings = std::fs::read_to_string(home.path().join("config/dev.calldock.desktop/settings.json"))
        .expect("saving writes settings.json");
    assert!(settings.contains("\"echo_cancellation\": false"), "{settings}");
    assert!(!settings.to_lowercase().contains("token"), "no credentials in the settings file: {settings}");
    wait_css(&client, "button[aria-label='Call Echo test']").await.click().await.unwrap();

    // Pre-join: device pickers and the live meter, then the call.
    wait_xpath(&client, "//h1[contains(., 'Echo test')]").await;
    wait_css(&client, "[role=meter][aria-label='Microphone level']").await;
    desktop::screenshot(&client, &shots.join("pre-join.png")).await;
    wait_xpath(&client, &button_with_text("Start audio call")).await.click().await.unwrap();

    // In the call: connected, the timer runs, the badge rates the call from real stats.
    let state = wait_text(&client, ".dock-state", "the call connects", |t| t.contains("Connected")).await;
    println!("dock: {state}");
    let timer_css = ".dock-timer [role=timer]";
    let first = wait_text(&client, timer_css, "the timer", |t| timer_seconds(t).is_some()).await;
    let first = timer_seconds(&first).unwrap();
    let later =
        wait_text(&client, timer_css, "the timer runs", |t| timer_seconds(t).is_some_and(|s| s >= first + 2)).await;
    println!("timer: {first} s, then {later}");
    let badge = wait_text(&client, "button.badge", "the quality badge", |t| {
        ["Excellent", "Good", "Fair", "Poor", "Bad"].iter().any(|label| t.contains(label))
    })
    .await;
    println!("badge: {badge}");
    wait_css(&client, "button.badge").await.click().await.unwrap();
    let details = wait_css(&client, "[role=region][aria-label='Call quality details']").await.text().await.unwrap();
    println!("quality details: {}", details.replace('\n', " | "));
    for row in ["Round trip", "Jitter", "Packet loss", "MOS", "Direct (", "opus"] {
        assert!(details.to_lowercase().contains(&row.to_lowercase()), "the quality popover shows {row}: {details:?}");
    }
    desktop::screenshot(&client, &shots.join("in-call.png")).await;

    // Let the whole sentence go out and come back before hanging up.
    tokio::time::sleep(Duration::from_secs_f64(said.len() as f64 / 48_000.0 + 1.0)).await;
    wait_xpath(&client, &button_with_text("End call")).await.click().await.unwrap();

    // The summary, then back to contacts, where the call is the first recent call.
    let summary = wait_css(&client, "#summary-title").await.text().await.unwrap();
    assert_eq!(summary, "Call with Echo test ended");
    let facts = wait_css(&client, "main dl").await.text().await.unwrap();
    assert!(facts.contains("Excellent") || facts.contains("Good"), "the summary rates the call: {facts:?}");
    desktop::screenshot(&client, &shots.join("summary.png")).await;
    wait_xpath(&client, &button_with_text("Back to contacts")).await.click().await.unwrap();
    let recent =
        wait_text(&client, "ul[aria-label='Recent calls'] li", "the call in recent calls", |t| t.contains("Echo test"))
            .await;
    println!("recent call: {}", recent.replace('\n', " | "));
    assert!(recent.contains("Outgoing audio"), "{recent:?}");
    assert!(!recent.contains("Missed"), "{recent:?}");
    desktop::screenshot(&client, &shots.join("recent-calls.png")).await;
    println!("screenshots in {}", shots.display());

    let _ = client.close().await;
    drop(driver);

    // The speaker WAV holds the caller's own speech, back from the echo bot.
    let (heard, rate) = calldock_audio::wav::read_mono(&ear).expect("the speaker WAV was written when the call ended");
    assert_eq!(rate, 48_000);
    let (delay, ncc) = calldock_media::analysis::delay_ms(&said, &heard, 48_000, 2000).expect("audio to compare");
    println!("echo through the window's call: ncc {ncc:.3}, mouth-to-ear {delay:.0} ms");
    assert!(ncc >= 0.8, "the echoed speech matches what the microphone said: ncc {ncc}");
}

/// The window of a returning user, signed up on the built-in server as Sam Tester with these
/// settings besides, launched with `env` set (virtual devices) and signed in.
struct ReturningUser {
    client: Client,
    _driver: TauriDriver,
    _display: desktop::Display,
    _bus: desktop::SessionBus,
}

async fn returning_user(
    home: &Path,
    mut settings: serde_json::Value,
    env: impl FnOnce(&mut std::process::Command),
) -> ReturningUser {
    let config = home.join("config/dev.calldock.desktop");
    std::fs::create_dir_all(&config).unwrap();
    settings["server"] = serde_json::json!({ "kind": "built_in" });
    settings["user_id"] = "sam".into();
    settings["display_name"] = "Sam Tester".into();
    std::fs::write(config.join("settings.json"), settings.to_string()).unwrap();
    let display = desktop::xvfb();
    let bus = desktop::session_bus();
    let driver = TauriDriver::start(|command| {
        desktop::window_env(command, &display, &bus, home);
        env(command);
    });
    let client = tokio::time::timeout(
        START_WAIT,
        desktop::webdriver_session(&driver.url, desktop::tauri_capabilities(Path::new(env!("CARGO_BIN_EXE_calldock")))),
    )
    .await
    .expect("the app's window is up within a minute");
    wait_text(&client, "header.topbar", "signed in", |t| t.contains("Online as Sam Tester")).await;
    ReturningUser { client, _driver: driver, _display: display, _bus: bus }
}

/// A video echo call in the real window: with no camera chosen the test pattern stands in, the
/// echo bot sends the pictures back, and the window draws them (through the shell's
/// `watch_video` channel) while the stats count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_app_makes_a_video_echo_call_and_shows_the_picture() {
    let home = tempfile::tempdir().unwrap();
    let window = returning_user(home.path(), serde_json::json!({ "camera": null }), |command| {
        command.env("CALLDOCK_VIRTUAL_MIC", "silence").env("CALLDOCK_VIRTUAL_SPEAKER", "null");
    })
    .await;
    let client = &window.client;
    wait_css(client, "button[aria-label='Call Echo test']").await.click().await.unwrap();
    wait_xpath(client, "//h1[contains(., 'Echo test')]").await;
    // Pre-join: the preview shows what the call will send (no camera here: the test pattern),
    // as thumbnails from the shell.
    let preview = wait_css(client, "canvas.camera[data-showing='yes']").await;
    assert_eq!(preview.attr("width").await.unwrap().as_deref(), Some("320"), "a thumbnail of the 640×480 pattern");
    assert!(grey_levels(client, "canvas.camera").await > 20, "the preview is drawn");
    wait_xpath(client, &button_with_text("Start video call")).await.click().await.unwrap();

    wait_text(client, ".dock-state", "the video call connects", |t| {
        t.contains("Connected") && t.contains("Video call")
    })
    .await;
    // The self view: our own pictures in the corner, from the camera the call sends.
    let own = wait_css(client, "canvas.self-picture[data-showing='yes']").await;
    assert_eq!(own.attr("width").await.unwrap().as_deref(), Some("320"));
    assert!(grey_levels(client, "canvas.self-picture").await > 20, "the self view is drawn");
    let picture = wait_css(client, "canvas.remote-picture[data-showing='yes']").await;
    assert_eq!(picture.attr("width").await.unwrap().as_deref(), Some("640"), "the pattern's size");
    // The test pattern's grey stripes, back through the echo bot: many grey levels, not a
    // blank canvas.
    let levels = grey_levels(client, "canvas.remote-picture").await;
    assert!(levels > 50, "the picture has {levels} grey levels: is it drawn?");
    tokio::time::sleep(Duration::from_secs(2)).await;
    desktop::screenshot(client, &screenshots_dir().join("in-call-video.png")).await;
    wait_css(client, "button.badge").await.click().await.unwrap();
    let details = wait_css(client, "[role=region][aria-label='Call quality details']").await.text().await.unwrap();
    println!("quality details: {}", details.replace('\n', " | "));
    assert!(details.contains("Video"), "the quality popover shows the video figures: {details:?}");
    wait_xpath(client, &button_with_text("End call")).await.click().await.unwrap();
    wait_css(client, "#summary-title").await;
    let _ = window.client.clone().close().await;
    drop(window);
}

/// How many red levels a canvas shows (sampled): a blank one shows one.
async fn grey_levels(client: &Client, selector: &str) -> u64 {
    let levels = client
        .execute(
            "const c = document.querySelector(arguments[0]); \
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i]); return seen.size;",
            vec![serde_json::json!(selector)],
        )
        .await
        .expect("the page runs a script");
    levels.as_u64().unwrap_or(0)
}

/// A call ringing in to the window: the incoming dialog with its countdown, the ringtone on the
/// ringer device (a PulseAudio null sink, recorded from its monitor by parec), accept with
/// audio from the dialog, and the ringing stops as the call connects. The caller is a headless
/// `calldock call` against the window's built-in server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_rings_in_the_window_until_it_is_accepted() {
    let pulse = support::pulse::VirtualPulse::start(&["ring"]);
    let home = tempfile::tempdir().unwrap();
    let (mic, _) = support::speak(home.path(), "mic.wav", "Hello from the window.");
    // Ringing on the null sink.
    let ringer = serde_json::json!({ "ringer": { "device": "pulseaudio:ring", "volume": 0.8 } });
    let window = returning_user(home.path(), ringer, |command| {
        pulse.apply(command);
        command.env("CALLDOCK_VIRTUAL_MIC", &mic).env("CALLDOCK_VIRTUAL_SPEAKER", "null");
    })
    .await;
    let client = &window.client;
    // The built-in server's address, from the shell itself (the UI shows it in Settings).
    let server = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             window.__TAURI_INTERNALS__.invoke('get_app_state').then((s) => done(s.built_in_server_url), (e) => done(null));",
            vec![],
        )
        .await
        .expect("the page runs a script");
    let server = server.as_str().expect("the built-in server runs").to_owned();

    let recording = pulse.record("ring", &home.path().join("ring.raw"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut caller = support::calldock();
    caller.args(["call", "sam", "--server", &server, "--user", "bob", "--mic", "silence", "--speaker", "null"]);
    caller.args(["--bind", "127.0.0.1:0", "--duration", "3"]).stdout(std::process::Stdio::null());
    let mut caller = support::Running(caller.spawn().unwrap());

    let dialog = wait_css(client, "[role=alertdialog]").await;
    let rang_at = Instant::now();
    let text = dialog.text().await.unwrap();
    assert!(text.contains("bob"), "the dialog names the caller: {text:?}");
    let countdown =
        wait_text(client, "[role=alertdialog] [role=timer]", "the countdown", |t| t.ends_with("s left to answer"))
            .await;
    println!("incoming: {countdown}");
    desktop::screenshot(client, &screenshots_dir().join("incoming.png")).await;
    assert_no_error_banner(client, "while a call rings in").await;
    // Let it ring two seconds, then answer from the dialog.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_xpath(
        client,
        "//button[starts-with(@aria-label, 'Accept call from') and contains(@aria-label, 'with audio')]",
    )
    .await
    .click()
    .await
    .unwrap();
    wait_text(client, ".dock-state", "the answered call connects", |t| t.contains("Connected")).await;
    let connected_at = Instant::now();
    assert_eq!(caller.wait(Duration::from_secs(20)), 0, "the caller held the call for its duration");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rang = recording.stop();
    let _ = window.client.clone().close().await;
    drop(window);

    let at = |instant: Instant| instant.saturating_duration_since(rang.start).as_secs_f64();
    let ringing = support::pulse::level_between(&rang.samples, at(rang_at) + 0.3, at(rang_at) + 1.8);
    let after =
        support::pulse::level_between(&rang.samples, at(connected_at) + 0.5, rang.samples.len() as f64 / 48_000.0);
    println!("ringer sink: {ringing:.1} dBFS while the call rang, {after:.1} dBFS once it was answered");
    assert!(ringing > -40.0, "the ringtone plays while the call rings: {ringing:.1} dBFS");
    assert!(after < -70.0, "the ringing stops once the call is answered: {after:.1} dBFS");
}
