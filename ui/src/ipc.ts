// The one module of the UI that talks to the Tauri shell: every `invoke` and every `listen`.
// It mirrors docs/desktop-ipc.md exactly; change both together.

import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

// ---- Scalars -------------------------------------------------------------------------------

export type UnixMillis = number;
export type CallId = string;
export type UserId = string;
/** `"default"` (follow the system default) or an `AudioDevice.id`. */
export type DeviceChoice = string;
export type Media = "audio" | "video";

// ---- Errors --------------------------------------------------------------------------------

/** Every code the shell may send (docs/desktop-ipc.md), plus the UI's own `ipc_unavailable` / `unknown`. */
export type ErrorCode =
  | "bad_server_url"
  | "server_unreachable"
  | "version_mismatch"
  | "token_expired"
  | "session_refused"
  | "login_refused"
  | "request_refused"
  | "protocol_error"
  | "invalid_command"
  | "engine_stopped"
  | "not_configured"
  | "not_signed_in"
  | "keychain_locked"
  | "keychain_unavailable"
  | "settings_unwritable"
  | "device_not_found"
  | "no_default_device"
  | "device_open_failed"
  | "device_failed"
  | "device_enumeration_failed"
  | "camera_failed"
  | "doctor_busy"
  | "invalid_argument"
  | "ipc_unavailable"
  | "unknown";

export interface IpcError {
  code: ErrorCode | (string & {});
  message: string;
}

// ---- Calls ---------------------------------------------------------------------------------

export type CallState =
  | "outgoing-ringing"
  | "incoming-ringing"
  | "connecting"
  | "connected"
  | "reconnecting"
  | "ended";

export type FailureKind = "ice" | "dtls" | "signaling" | "media" | "permission";

export type EndReason =
  | "hangup-local"
  | "hangup-remote"
  | "declined"
  | "busy"
  | "missed"
  | "canceled"
  | "accepted-elsewhere"
  | "declined-elsewhere"
  | `failed(${FailureKind})`
  | "timeout-reconnect";

export type Direction = "outgoing" | "incoming";

export interface CallView {
  id: CallId;
  direction: Direction;
  remote: UserId;
  remote_name: string;
  remote_device: string | null;
  media: Media;
  state: CallState;
  end_reason: EndReason | null;
  started_at: UnixMillis;
  ring_deadline: UnixMillis | null;
  connected_at: UnixMillis | null;
  ended_at: UnixMillis | null;
  remote_ringing: boolean;
}

export type QualityLabel = "excellent" | "good" | "fair" | "poor" | "bad";
export type CandidateType = "host" | "srflx" | "prflx" | "relay";

export interface CallStats {
  rtt_ms: number | null;
  jitter_ms: number;
  loss_percent: number;
  /** Of the packets we send, the share the other side last reported losing; null until it has. */
  sent_loss_percent: number | null;
  send_kbps: number;
  receive_kbps: number;
  codec: string | null;
  local_candidate: CandidateType | null;
  remote_candidate: CandidateType | null;
  audio_level_dbfs: number;
  jitter_buffer_delay_ms: number;
  concealed_samples: number;
  /** The loss the sent audio's in-band FEC protects against, percent; 0 when there is none. */
  fec_percent: number;
  mos: number;
  quality: QualityLabel;
  /** In a video call. */
  video?: VideoStats | null;
}

export interface VideoStats {
  sent_fps: number;
  /** Of the last picture sent (smaller on a narrow path); 0 before the first. */
  sent_width: number;
  sent_height: number;
  received_fps: number;
  /** Of the last picture shown; 0 before the first. */
  received_width: number;
  received_height: number;
  undecodable_frames: number;
  camera_off: boolean;
  /** What the path carries, by the congestion controller, kbit/s; null before its first estimate. */
  estimate_kbps: number | null;
  /** The most the other side asked us to send (a forwarding server's limit), kbit/s; the estimate stays under it. null when it asked nothing. */
  limit_kbps: number | null;
  /** The video encoder's target now, kbit/s. */
  target_kbps: number;
  /** No video is sent: the connection cannot carry it (audio goes on). */
  paused_for_bandwidth: boolean;
}

export type CallEventPayload =
  | { type: "state_changed"; call_id: CallId; state: Exclude<CallState, "incoming-ringing" | "ended"> }
  | {
      type: "incoming";
      call_id: CallId;
      from: UserId;
      from_name: string;
      media: Media;
      stacked: boolean;
      ring_deadline: UnixMillis;
    }
  | { type: "remote_ringing"; call_id: CallId }
  | { type: "replaced"; old: CallId; new: CallId }
  | { type: "ended"; call_id: CallId; reason: EndReason; by_name: string | null };

// ---- Devices -------------------------------------------------------------------------------

export interface AudioDevice {
  id: string;
  name: string;
  direction: "input" | "output";
  is_default: boolean;
  host: string;
  sample_rates: [number, number];
  channels: [number, number];
}

export type VideoView = "remote" | "own";

/** The `camera` setting for the test pattern; `null` is the default camera. */
export const CAMERA_PATTERN = "pattern";

export interface CameraDevice {
  id: string;
  name: string;
  is_default: boolean;
}

export interface DeviceList {
  devices: AudioDevice[];
  cameras: CameraDevice[];
}

export interface DevicesChanged extends DeviceList {
  added: string[];
  removed: string[];
  default_input: string | null;
  default_output: string | null;
  default_changed: boolean;
}

export interface DeviceFallback {
  call_id: CallId;
  direction: "input" | "output";
  device: string;
  reason: string;
}

export interface MicLevel {
  device: string;
  level_dbfs: number;
  peak_dbfs: number;
  clipping: boolean;
}

// ---- Doctor --------------------------------------------------------------------------------

export type DoctorCheck = "mic" | "speaker" | "camera" | "network" | "codec";
export type Verdict = "pass" | "warn" | "fail";

export interface CheckResult {
  check: DoctorCheck;
  verdict: Verdict;
  code: string | null;
  summary: string;
  remedy: string | null;
  figures: Record<string, unknown> | null;
}

export interface DoctorReport {
  verdict: Verdict;
  exit_code: 0 | 1 | 2;
  duration_ms: number;
  checks: CheckResult[];
}

// ---- App state and settings ----------------------------------------------------------------

export type ServerSetting = { kind: "built_in" } | { kind: "url"; url: string };
export type Theme = "system" | "light" | "dark";

export interface ProcessingSwitches {
  echo_cancellation: boolean;
  noise_suppression: boolean;
  gain_control: boolean;
}

export interface Settings {
  server: ServerSetting;
  user_id: UserId;
  display_name: string;
  processing: ProcessingSwitches;
  microphone: DeviceChoice;
  speaker: DeviceChoice;
  camera: string | null;
  ringer: { device: DeviceChoice; volume: number };
  theme: Theme;
}

export type SignalingState =
  | { state: "signed_out" }
  | { state: "connecting" }
  | { state: "connected"; user: UserId; device: string; expires_at: UnixMillis }
  | { state: "reconnecting"; attempt: number; retry_in_ms: number; reason: string; error: IpcError | null }
  | { state: "failed"; error: IpcError };

export type KeychainStatus = "ok" | "locked" | "unavailable";

export interface AppState {
  first_run: boolean;
  settings: Settings;
  signaling: SignalingState;
  keychain: KeychainStatus;
  built_in_server_url: string | null;
  app_version: string;
}

export type Presence = "online" | "offline" | "busy" | "unknown";

export interface Contact {
  user_id: UserId;
  display_name: string;
  presence: Presence;
  is_echo: boolean;
}

export type WireEndReason =
  | "hangup"
  | "declined"
  | "busy"
  | "missed"
  | "canceled"
  | "accepted-elsewhere"
  | "declined-elsewhere"
  | "replaced"
  | "failed"
  | "timeout-reconnect";

export interface RecentCall {
  call_id: CallId;
  direction: Direction;
  remote: UserId;
  remote_name: string;
  media: Media;
  missed: boolean;
  started_at: UnixMillis;
  answered_at: UnixMillis | null;
  ended_at: UnixMillis | null;
  end_reason: WireEndReason | null;
}

// ---- Commands ------------------------------------------------------------------------------

/** Command name → [arguments (camelCase, as Tauri 2 expects), result]. */
export interface Commands {
  get_app_state: [Record<string, never>, AppState];
  save_settings: [{ settings: Settings }, AppState];
  sign_in: [Record<string, never>, null];
  sign_out: [Record<string, never>, null];
  list_contacts: [Record<string, never>, Contact[]];
  add_contact: [{ userId: UserId; displayName: string }, Contact[]];
  remove_contact: [{ userId: UserId }, Contact[]];
  recent_calls: [{ limit: number }, RecentCall[]];
  list_calls: [Record<string, never>, CallView[]];
  start_call: [{ to: UserId; media: Media }, CallId];
  accept_call: [{ callId: CallId; media: Media }, null];
  decline_call: [{ callId: CallId }, null];
  hang_up: [{ callId: CallId }, null];
  set_muted: [{ muted: boolean }, null];
  set_video: [{ enabled: boolean }, null];
  watch_video: [{ view: VideoView; frames: Channel<ArrayBuffer> }, null];
  set_camera: [{ camera: string | null }, null];
  start_camera_preview: [Record<string, never>, null];
  stop_camera_preview: [Record<string, never>, null];
  set_microphone: [{ device: DeviceChoice }, null];
  set_speaker: [{ device: DeviceChoice }, null];
  list_devices: [Record<string, never>, DeviceList];
  start_mic_meter: [{ device: DeviceChoice }, null];
  stop_mic_meter: [Record<string, never>, null];
  test_ringer: [{ device: DeviceChoice; volume: number }, null];
  silence_ringer: [Record<string, never>, null];
  run_doctor: [{ checks: DoctorCheck[] | null }, DoctorReport];
}

export type CommandName = keyof Commands;

/** Any thrown value as `{code, message}`: the UI never shows a raw string or an exception. */
export function toIpcError(thrown: unknown): IpcError {
  if (typeof thrown === "object" && thrown !== null && "code" in thrown) {
    const { code, message } = thrown as { code: unknown; message?: unknown };
    if (typeof code === "string") {
      return { code, message: typeof message === "string" ? message : "" };
    }
  }
  if (typeof thrown === "string") return { code: "unknown", message: thrown };
  if (thrown instanceof TypeError && !hasTauri()) {
    return { code: "ipc_unavailable", message: "This window is not connected to the Calldock app." };
  }
  if (thrown instanceof Error) return { code: "unknown", message: thrown.message };
  return { code: "unknown", message: String(thrown) };
}

function hasTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

/** Calls a shell command; rejects with an {@link IpcError} only. */
export async function call<K extends CommandName>(
  command: K,
  ...args: Commands[K][0] extends Record<string, never> ? [] : [Commands[K][0]]
): Promise<Commands[K][1]> {
  if (!hasTauri()) throw toIpcError(new TypeError("no Tauri IPC"));
  try {
    return await invoke<Commands[K][1]>(command, args[0] ?? {});
  } catch (thrown) {
    throw toIpcError(thrown);
  }
}

// ---- Events --------------------------------------------------------------------------------

export type Source = "ui" | "shortcut" | "tray";

/** Event name → payload. */
export interface Events {
  call: CallEventPayload;
  "call-stats": { call_id: CallId; stats: CallStats };
  "device-fallback": DeviceFallback;
  /** Our camera stopped mid-call; the call goes on without our picture. */
  "camera-failed": { call_id: CallId; error: IpcError };
  /** A camera switch failed; the call goes on with the camera it had. */
  "camera-refused": { call_id: CallId; error: IpcError };
  /** The pre-join preview's camera stopped. */
  "camera-preview-failed": { error: IpcError };
  signaling: SignalingState;
  "token-refreshed": { expires_at: UnixMillis };
  "devices-changed": DevicesChanged;
  "mic-level": MicLevel;
  "doctor-progress": { check: DoctorCheck };
  "mute-changed": { muted: boolean; source: Source };
  presence: { user_id: UserId; presence: Presence };
  "deep-link": { action: "call"; user_id: UserId };
}

export type EventName = keyof Events;

/** Subscribes to a shell event; resolves to the function that unsubscribes. */
export async function on<E extends EventName>(event: E, handler: (payload: Events[E]) => void): Promise<UnlistenFn> {
  if (!hasTauri()) return () => {};
  return listen<Events[E]>(event, (e) => handler(e.payload));
}

/**
 * Pictures as they come (docs/desktop-ipc.md, `watch_video`): the other side's in a video call
 * (`remote`), or thumbnails of our own camera (`own`: the self view, the pre-join preview).
 * Each message is the picture's width and height (u32 little-endian) and its I420 planes. A new
 * watch of a view replaces the previous one.
 */
export async function watchVideo(view: VideoView, onPicture: (message: ArrayBuffer) => void): Promise<void> {
  const frames = new Channel<ArrayBuffer>();
  frames.onmessage = onPicture;
  await call("watch_video", { view, frames });
}
