//! The desktop around the window: the tray icon (call state, quick mute), the incoming-call
//! notification, the global mute / push-to-talk shortcuts, deep links and the single instance.
//! Each of these may be missing on a desktop (no tray host, no notification daemon, shortcuts
//! taken by another app): that is logged and the app goes on.

use std::sync::{Arc, Mutex};

use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;

use super::deep_link;
use super::shell::{MuteSource, Outbox, Shell};

/// The main window's label (tauri.conf.json).
pub const MAIN_WINDOW: &str = "main";

/// Toggles the microphone's mute from anywhere.
pub const MUTE_SHORTCUT: &str = "CommandOrControl+Shift+M";
/// Push-to-talk: held, the microphone is open; released, muted again.
pub const PUSH_TO_TALK_SHORTCUT: &str = "CommandOrControl+Shift+Space";

const MENU_SHOW: &str = "show";
const MENU_MUTE: &str = "mute";
const MENU_QUIT: &str = "quit";

struct Tray {
    icon: TrayIcon<tauri::Wry>,
    status: MenuItem<tauri::Wry>,
    mute: CheckMenuItem<tauri::Wry>,
}

/// The app's [`Outbox`]: events to every window, call state to the tray, notifications.
pub struct Desktop {
    app: AppHandle,
    tray: Mutex<Option<Tray>>,
    /// The UI's channels for pictures (`watch_video`): the other side's, and our own camera's.
    video: Mutex<Option<Channel<InvokeResponseBody>>>,
    own_video: Mutex<Option<Channel<InvokeResponseBody>>>,
}

/// Which pictures a `watch_video` channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoView {
    /// The other side of a video call.
    Remote,
    /// Our camera: the self view in a call, the preview before one.
    Own,
}

impl Desktop {
    pub fn new(app: AppHandle) -> Self {
        Self { app, tray: Mutex::new(None), video: Mutex::new(None), own_video: Mutex::new(None) }
    }

    pub fn watch_video(&self, view: VideoView, frames: Channel<InvokeResponseBody>) {
        let slot = match view {
            VideoView::Remote => &self.video,
            VideoView::Own => &self.own_video,
        };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(frames);
    }
}

/// Sends a picture on a `watch_video` channel, if the UI opened one.
fn send_picture(channel: &Mutex<Option<Channel<InvokeResponseBody>>>, picture: &calldock_video::Picture) {
    let channel = channel.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(frames) = channel.as_ref()
        && let Err(e) = frames.send(InvokeResponseBody::Raw(video_message(picture)))
    {
        tracing::debug!(error = %e, "a video picture did not reach the window");
    }
}

/// A picture as the UI's `watch_video` channel carries it: width and height (u32 little-endian),
/// then the I420 planes.
pub fn video_message(picture: &calldock_video::Picture) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + picture.as_i420().len());
    message.extend_from_slice(&picture.width().to_le_bytes());
    message.extend_from_slice(&picture.height().to_le_bytes());
    message.extend_from_slice(picture.as_i420());
    message
}

impl Outbox for Desktop {
    fn emit(&self, event: &'static str, payload: serde_json::Value) {
        if let Err(e) = self.app.emit(event, payload) {
            tracing::warn!(event, error = %e, "cannot emit");
        }
    }

    fn calls_changed(&self, text: &str, muted: bool) {
        let tray = self.tray.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tray) = tray.as_ref() {
            let _ = tray.status.set_text(text);
            let _ = tray.mute.set_checked(muted);
            let _ = tray.icon.set_tooltip(Some(text));
        }
    }

    fn video_frame(&self, _call_id: &str, picture: &calldock_video::Picture) {
        send_picture(&self.video, picture);
    }

    fn own_picture(&self, picture: &calldock_video::Picture) {
        send_picture(&self.own_video, picture);
    }

    fn incoming_call(&self, from_name: &str, stacked: bool) {
        let body = if stacked {
            format!("{from_name} is calling. Answering ends your current call.")
        } else {
            format!("{from_name} is calling.")
        };
        if let Err(e) = self.app.notification().builder().title("Incoming call").body(body).show() {
            tracing::warn!(error = %e, "cannot show the incoming-call notification");
        }
    }
}

/// Puts the tray icon up. Without a tray host (or its library) the app works without it.
pub fn add_tray(app: &AppHandle, desktop: &Desktop, shell: Arc<Shell>) {
    let built = (|| -> tauri::Result<Tray> {
        let status = MenuItem::with_id(app, "status", "Calldock: no calls", false, None::<&str>)?;
        let mute = CheckMenuItem::with_id(app, MENU_MUTE, "Mute microphone", true, false, None::<&str>)?;
        let show = MenuItem::with_id(app, MENU_SHOW, "Show Calldock", true, None::<&str>)?;
        let quit = MenuItem::with_id(app, MENU_QUIT, "Quit Calldock", true, None::<&str>)?;
        let separator = PredefinedMenuItem::separator(app)?;
        let menu = Menu::with_items(app, &[&status, &mute, &separator, &show, &quit])?;
        let mut builder = TrayIconBuilder::with_id("calldock").menu(&menu).tooltip("Calldock: no calls");
        if let Some(icon) = app.default_window_icon() {
            builder = builder.icon(icon.clone());
        }
        let icon = builder
            .on_menu_event(move |app, event| match event.id().as_ref() {
                MENU_SHOW => focus_main_window(app),
                MENU_MUTE => {
                    let shell = shell.clone();
                    tauri::async_runtime::spawn(async move {
                        let muted = !shell.is_muted();
                        let _ = shell.set_muted(muted, MuteSource::Tray).await;
                    });
                }
                MENU_QUIT => app.exit(0),
                _ => {}
            })
            .build(app)?;
        Ok(Tray { icon, status, mute })
    })();
    match built {
        Ok(tray) => *desktop.tray.lock().unwrap_or_else(|p| p.into_inner()) = Some(tray),
        Err(e) => tracing::warn!(error = %e, "no tray icon"),
    }
}

/// Brings the window forward: a second launch, a deep link, the tray's "Show".
pub fn focus_main_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

/// What one press or release of a global shortcut does to the microphone: `Some(muted)` to
/// set, `None` to leave it. The mute shortcut toggles on press. Push-to-talk opens a muted
/// microphone while held and mutes it again on release; held while unmuted, it does nothing
/// (`talking` remembers which press opened the microphone).
pub fn shortcut_mute(is_mute_toggle: bool, pressed: bool, muted: bool, talking: &mut bool) -> Option<bool> {
    if is_mute_toggle {
        return pressed.then_some(!muted);
    }
    match (pressed, muted, *talking) {
        (true, true, _) => {
            *talking = true;
            Some(false)
        }
        (false, _, true) => {
            *talking = false;
            Some(true)
        }
        _ => None,
    }
}

/// The global mute shortcut and push-to-talk. One task takes the presses and releases in the
/// order they come and applies each before deciding the next, so a quick press and release (or
/// two quick toggles) always see the state the one before left.
pub fn global_shortcuts(shell: Arc<Shell>) -> tauri::plugin::TauriPlugin<tauri::Wry> {
    use tauri_plugin_global_shortcut::{Builder, Shortcut, ShortcutState};
    let (presses, mut inbox) = tokio::sync::mpsc::unbounded_channel::<(bool, bool)>();
    tauri::async_runtime::spawn(async move {
        let mut talking = false;
        while let Some((is_mute_toggle, pressed)) = inbox.recv().await {
            if let Some(muted) = shortcut_mute(is_mute_toggle, pressed, shell.is_muted(), &mut talking) {
                let _ = shell.set_muted(muted, MuteSource::Shortcut).await;
            }
        }
    });
    let mute_id = MUTE_SHORTCUT.parse::<Shortcut>().map(|s| s.id()).ok();
    Builder::new()
        .with_handler(move |_app, shortcut, event| {
            let _ = presses.send((Some(shortcut.id()) == mute_id, event.state() == ShortcutState::Pressed));
        })
        .build()
}

/// Registers the shortcuts; another app holding one is a warning, not a failure.
pub fn register_shortcuts(app: &AppHandle) {
    use tauri_plugin_global_shortcut::GlobalShortcutExt;
    for shortcut in [MUTE_SHORTCUT, PUSH_TO_TALK_SHORTCUT] {
        if let Err(e) = app.global_shortcut().register(shortcut) {
            tracing::warn!(shortcut, error = %e, "global shortcut unavailable");
        }
    }
}

/// A `calldock://` link from the OS: the UI opens pre-join for that user (never calls by
/// itself). Anything but a call link is ignored.
pub fn open_link(app: &AppHandle, shell: &Shell, url: &str) {
    match deep_link::parse(url) {
        Ok(link) => {
            focus_main_window(app);
            shell.open_deep_link(link);
        }
        Err(e) => tracing::warn!(error = %e, "ignoring a link"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mute_shortcut_toggles_on_press() {
        let mut talking = false;
        assert_eq!(shortcut_mute(true, true, false, &mut talking), Some(true));
        assert_eq!(shortcut_mute(true, false, true, &mut talking), None);
        assert_eq!(shortcut_mute(true, true, true, &mut talking), Some(false));
    }

    #[test]
    fn push_to_talk_opens_a_muted_microphone_while_held() {
        let mut talking = false;
        assert_eq!(shortcut_mute(false, true, true, &mut talking), Some(false));
        assert!(talking);
        assert_eq!(shortcut_mute(false, false, false, &mut talking), Some(true));
        assert!(!talking);
        // Held while unmuted: nothing, and the release does not mute.
        assert_eq!(shortcut_mute(false, true, false, &mut talking), None);
        assert_eq!(shortcut_mute(false, false, false, &mut talking), None);
    }
}
