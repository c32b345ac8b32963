//! The IPC commands of docs/desktop-ipc.md, one thin function each over [`Shell`]. Arguments
//! come through [`Arg`], so a malformed one is `invalid_argument`, never a bare string; results
//! and errors are JSON (`{code, message}` on failure).

use std::sync::Arc;

use calldock_doctor::Report;
use calldock_protocol::Media;
use tauri::State;
use tauri::ipc::{Channel, InvokeResponseBody};

use super::contacts::Contact;
use super::os::{Desktop, VideoView};
use super::settings::Settings;
use super::shell::{AppState, DeviceList, MuteSource, Shell};
use super::transport::{Arg, CallViewJson, IpcError, RecentCallJson};

type Reply<T> = Result<T, IpcError>;

#[tauri::command]
pub fn get_app_state(shell: State<'_, Arc<Shell>>) -> AppState {
    if let Some(link) = shell.ui_ready() {
        shell.deliver_deep_link_later(link);
    }
    shell.app_state()
}

#[tauri::command]
pub async fn save_settings(shell: State<'_, Arc<Shell>>, settings: Arg<Settings>) -> Reply<AppState> {
    shell.save_settings(settings.0).await
}

#[tauri::command]
pub async fn sign_in(shell: State<'_, Arc<Shell>>) -> Reply<()> {
    shell.sign_in().await
}

#[tauri::command]
pub async fn sign_out(shell: State<'_, Arc<Shell>>) -> Reply<()> {
    shell.sign_out().await
}

#[tauri::command]
pub async fn list_contacts(shell: State<'_, Arc<Shell>>) -> Reply<Vec<Contact>> {
    shell.list_contacts().await
}

#[tauri::command]
pub async fn add_contact(
    shell: State<'_, Arc<Shell>>,
    user_id: Arg<String>,
    display_name: Arg<String>,
) -> Reply<Vec<Contact>> {
    shell.add_contact(user_id.0, display_name.0).await
}

#[tauri::command]
pub async fn remove_contact(shell: State<'_, Arc<Shell>>, user_id: Arg<String>) -> Reply<Vec<Contact>> {
    shell.remove_contact(user_id.0).await
}

#[tauri::command]
pub async fn recent_calls(shell: State<'_, Arc<Shell>>, limit: Arg<usize>) -> Reply<Vec<RecentCallJson>> {
    shell.recent_calls(limit.0).await
}

#[tauri::command]
pub async fn list_calls(shell: State<'_, Arc<Shell>>) -> Reply<Vec<CallViewJson>> {
    shell.list_calls().await
}

#[tauri::command]
pub async fn start_call(shell: State<'_, Arc<Shell>>, to: Arg<String>, media: Arg<Media>) -> Reply<String> {
    shell.start_call(to.0, media.0).await
}

#[tauri::command]
pub async fn accept_call(shell: State<'_, Arc<Shell>>, call_id: Arg<String>, media: Arg<Media>) -> Reply<()> {
    shell.accept_call(call_id.0, media.0).await
}

#[tauri::command]
pub async fn decline_call(shell: State<'_, Arc<Shell>>, call_id: Arg<String>) -> Reply<()> {
    shell.decline_call(call_id.0).await
}

#[tauri::command]
pub async fn hang_up(shell: State<'_, Arc<Shell>>, call_id: Arg<String>) -> Reply<()> {
    shell.hang_up(call_id.0).await
}

#[tauri::command]
pub async fn set_muted(shell: State<'_, Arc<Shell>>, muted: Arg<bool>) -> Reply<()> {
    shell.set_muted(muted.0, MuteSource::Ui).await
}

#[tauri::command]
pub async fn set_video(shell: State<'_, Arc<Shell>>, enabled: Arg<bool>) -> Reply<()> {
    shell.set_video(enabled.0).await
}

/// Where pictures go: the other side's in a video call (`remote`), or our camera's (`own`: the
/// self view, the pre-join preview). Each message is 8 bytes (width and height, u32
/// little-endian) and the picture in I420 (docs/desktop-ipc.md). A later call for the same view
/// replaces its channel (a screen opens one each time it shows).
#[tauri::command]
pub fn watch_video(
    desktop: State<'_, Arc<Desktop>>,
    view: Arg<VideoView>,
    frames: Channel<InvokeResponseBody>,
) -> Reply<()> {
    desktop.watch_video(view.0, frames);
    Ok(())
}

#[tauri::command]
pub async fn set_camera(shell: State<'_, Arc<Shell>>, camera: Arg<Option<String>>) -> Reply<()> {
    shell.set_camera(camera.0).await
}

#[tauri::command]
pub async fn start_camera_preview(shell: State<'_, Arc<Shell>>) -> Reply<()> {
    shell.start_camera_preview().await
}

#[tauri::command]
pub fn stop_camera_preview(shell: State<'_, Arc<Shell>>) {
    shell.stop_camera_preview();
}

#[tauri::command]
pub async fn set_microphone(shell: State<'_, Arc<Shell>>, device: Arg<String>) -> Reply<()> {
    shell.set_microphone(device.0).await
}

#[tauri::command]
pub async fn set_speaker(shell: State<'_, Arc<Shell>>, device: Arg<String>) -> Reply<()> {
    shell.set_speaker(device.0).await
}

#[tauri::command]
pub async fn list_devices(shell: State<'_, Arc<Shell>>) -> Reply<DeviceList> {
    shell.list_devices().await
}

#[tauri::command]
pub async fn start_mic_meter(shell: State<'_, Arc<Shell>>, device: Arg<String>) -> Reply<()> {
    shell.start_mic_meter(device.0).await
}

#[tauri::command]
pub fn stop_mic_meter(shell: State<'_, Arc<Shell>>) {
    shell.stop_mic_meter();
}

#[tauri::command]
pub async fn test_ringer(shell: State<'_, Arc<Shell>>, device: Arg<String>, volume: Arg<f32>) -> Reply<()> {
    shell.test_ringer(device.0, volume.0).await
}

#[tauri::command]
pub fn silence_ringer(shell: State<'_, Arc<Shell>>) {
    shell.silence_ringer();
}

#[tauri::command]
pub async fn run_doctor(shell: State<'_, Arc<Shell>>, checks: Arg<Option<Vec<String>>>) -> Reply<Report> {
    shell.run_doctor(checks.0).await
}
