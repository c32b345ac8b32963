//! Build script of the `calldock` package: Tauri's code generation for the desktop shell.
//!
//! The command list is the app manifest: Tauri turns each name into an `allow-<name>`
//! permission, and `capabilities/default.json` grants exactly those to the main window, so the
//! UI can invoke nothing else (docs/desktop-ipc.md). It must list every command in
//! `tauri::generate_handler!` (src-tauri/app/mod.rs).

const COMMANDS: &[&str] = &[
    "get_app_state",
    "save_settings",
    "sign_in",
    "sign_out",
    "list_contacts",
    "add_contact",
    "remove_contact",
    "recent_calls",
    "list_calls",
    "start_call",
    "accept_call",
    "decline_call",
    "hang_up",
    "set_muted",
    "set_video",
    "watch_video",
    "set_camera",
    "start_camera_preview",
    "stop_camera_preview",
    "set_microphone",
    "set_speaker",
    "list_devices",
    "start_mic_meter",
    "stop_mic_meter",
    "test_ringer",
    "silence_ringer",
    "run_doctor",
];

fn main() {
    // tauri::generate_context! embeds the built UI; without it the macro panics with a message
    // that does not say how to get one.
    let index = std::path::Path::new("ui/dist/index.html");
    println!("cargo:rerun-if-changed=ui/dist");
    if !index.is_file() {
        println!(
            "cargo::error=ui/dist/index.html is missing: build the UI first (cd ui && npm ci && npm run build), \
             tauri.conf.json embeds ui/dist"
        );
        return;
    }
    let attributes = tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        println!("cargo::error=tauri-build: {e:#}");
    }
}
