//! The desktop app: a Tauri 2 shell around the call dock UI (`ui/`, built into `ui/dist`).
//!
//! Only this module knows Tauri (ARCHITECTURE.md). It is thin: [`commands`] are the IPC
//! commands of docs/desktop-ipc.md, each a call on [`shell::Shell`], which drives the engine,
//! devices and doctor crates and turns engine events into UI events; [`os`] is the desktop
//! around the window (tray, notifications, shortcuts, deep links, single instance).
//!
//! `calldock` with no command (or with only a `calldock://` link, as the OS launches it) runs
//! this; every other command stays headless and never reaches this module, so it never touches
//! the display.

mod built_in_server;
mod call_board;
mod commands;
mod contacts;
pub mod deep_link;
mod device_watch;
mod keychain;
mod mic_meter;
mod os;
mod ringing;
mod settings;
mod shell;
mod transport;
mod web_view;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tauri::Manager;
use tauri_plugin_deep_link::DeepLinkExt;

use self::keychain::Keychain;
use self::settings::ConfigDir;
use self::shell::{Shell, VirtualDevices};
pub use self::web_view::prepare_environment;

/// How long the app may take to hang up, sign out and stop its server at exit.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Opens the window and runs until it is closed (or Quit in the tray).
pub fn run() -> ExitCode {
    let built = tauri::Builder::default()
        // First: a second launch hands its arguments (a deep link, with the plugin's
        // `deep-link` feature) to this one and exits before opening anything.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| os::focus_main_window(app)))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(tauri::generate_handler![
            commands::get_app_state,
            commands::save_settings,
            commands::sign_in,
            commands::sign_out,
            commands::list_contacts,
            commands::add_contact,
            commands::remove_contact,
            commands::recent_calls,
            commands::list_calls,
            commands::start_call,
            commands::accept_call,
            commands::decline_call,
            commands::hang_up,
            commands::set_muted,
            commands::set_video,
            commands::watch_video,
            commands::set_camera,
            commands::start_camera_preview,
            commands::stop_camera_preview,
            commands::set_microphone,
            commands::set_speaker,
            commands::list_devices,
            commands::start_mic_meter,
            commands::stop_mic_meter,
            commands::test_ringer,
            commands::silence_ringer,
            commands::run_doctor,
        ])
        .setup(setup)
        .build(tauri::generate_context!());
    let app = match built {
        Ok(app) => app,
        Err(e) => {
            eprintln!("calldock: cannot open the window: {e}");
            return ExitCode::from(crate::cli::exit::INTERNAL);
        }
    };
    app.run(|app, event| {
        if let tauri::RunEvent::Exit = event
            && let Some(shell) = app.try_state::<Arc<Shell>>()
        {
            let shell = shell.inner().clone();
            tauri::async_runtime::block_on(async move {
                if tokio::time::timeout(EXIT_WAIT, shell.shutdown()).await.is_err() {
                    tracing::warn!("exit: gave up waiting for calls and the server to close");
                }
            });
        }
    });
    ExitCode::SUCCESS
}

fn setup(app: &mut tauri::App) -> Result<(), Box<dyn std::error::Error>> {
    let handle = app.handle().clone();
    let desktop = Arc::new(os::Desktop::new(handle.clone()));
    let shell = Shell::new(
        ConfigDir::new(app.path().app_config_dir()?),
        app.path().app_data_dir()?,
        Keychain::native(),
        desktop.clone(),
        tauri::async_runtime::handle().inner().clone(),
        VirtualDevices::from_env(),
    );
    app.manage(shell.clone());
    app.manage(desktop.clone());

    // The window is made here, after the shell is managed, so its first command finds it
    // (tauri.conf.json has `create: false` for it).
    let window = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == os::MAIN_WINDOW)
        .cloned()
        .ok_or("tauri.conf.json has no main window")?;
    let main_window = tauri::WebviewWindowBuilder::from_config(&handle, &window)?.build()?;
    web_view::configure(&main_window);

    os::add_tray(&handle, &desktop, shell.clone());
    match handle.plugin(os::global_shortcuts(shell.clone())) {
        Ok(()) => os::register_shortcuts(&handle),
        Err(e) => tracing::warn!(error = %e, "no global shortcuts"),
    }

    // A link the app was launched with, and links while it runs (a second launch forwards its
    // link here through the single-instance plugin).
    let links = handle.deep_link();
    if let Ok(Some(urls)) = links.get_current() {
        for url in urls {
            os::open_link(&handle, &shell, url.as_str());
        }
    }
    let (link_app, link_shell) = (handle.clone(), shell.clone());
    links.on_open_url(move |event| {
        for url in event.urls() {
            os::open_link(&link_app, &link_shell, url.as_str());
        }
    });

    shell.start();
    shell.watch_devices();
    Ok(())
}
