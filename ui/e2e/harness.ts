// The shell, faked in the page for end-to-end tests: `mockIPC` answers every command of
// docs/desktop-ipc.md from an in-memory state and logs it; tests emit the shell's events through
// `window.__mock.emit`. Bundled as an IIFE and injected before the app's own script.

import { emit } from "@tauri-apps/api/event";
import { mockIPC } from "@tauri-apps/api/mocks";
import type {
  AppState,
  CallView,
  Contact,
  DeviceList,
  DoctorCheck,
  DoctorReport,
  IpcError,
  RecentCall,
  Settings,
} from "../src/ipc";
import { pictureMessage } from "../src/logic/video";
import type { Scenario, MockApi, Logged } from "./types";

declare global {
  interface Window {
    __scenario?: Scenario;
    __mock: MockApi;
    __csp: string[];
    /** What mockIPC installs: how a channel's messages reach the page. */
    __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void };
  }
}

const scenario: Scenario = window.__scenario ?? {};
let video: ReturnType<typeof setInterval> | undefined;
let ownVideo: ReturnType<typeof setInterval> | undefined;
const now = () => Date.now();

const settings: Settings = {
  server: { kind: "built_in" },
  user_id: "sam",
  display_name: "Sam Tester",
  processing: { echo_cancellation: true, noise_suppression: true, gain_control: true },
  microphone: "default",
  speaker: "default",
  camera: null,
  ringer: { device: "default", volume: 0.8 },
  theme: "system",
  ...scenario.settings,
};

const app: AppState = {
  first_run: scenario.firstRun ?? false,
  settings,
  signaling: scenario.signaling ?? { state: "connected", user: "sam", device: "dev-1", expires_at: now() + 3_600_000 },
  keychain: scenario.keychain ?? "ok",
  built_in_server_url: "http://127.0.0.1:7878",
  app_version: "0.1.0",
};

const contacts: Contact[] = [
  { user_id: "echo", display_name: "Echo test", presence: "online", is_echo: true },
  { user_id: "ada", display_name: "Ada Lovelace", presence: "online", is_echo: false },
  { user_id: "bob", display_name: "Bob Marley", presence: "offline", is_echo: false },
];

const recents: RecentCall[] = scenario.noRecents
  ? []
  : [
      {
        call_id: "r-missed",
        direction: "incoming",
        remote: "ada",
        remote_name: "Ada Lovelace",
        media: "audio",
        missed: true,
        started_at: now() - 3_600_000,
        answered_at: null,
        ended_at: now() - 3_540_000,
        end_reason: "missed",
      },
      {
        call_id: "r-echo",
        direction: "outgoing",
        remote: "echo",
        remote_name: "Echo test",
        media: "audio",
        missed: false,
        started_at: now() - 86_400_000,
        answered_at: now() - 86_398_000,
        ended_at: now() - 86_300_000,
        end_reason: "hangup",
      },
    ];

const devices: DeviceList = {
  devices: [
    { id: "pulseaudio:builtin-mic", name: "Built-in microphone", direction: "input", is_default: true, host: "pulseaudio", sample_rates: [8000, 48000], channels: [1, 2] },
    { id: "pulseaudio:usb-headset.mic", name: "USB headset microphone", direction: "input", is_default: false, host: "pulseaudio", sample_rates: [16000, 48000], channels: [1, 1] },
    { id: "pulseaudio:builtin-speaker", name: "Built-in speakers", direction: "output", is_default: true, host: "pulseaudio", sample_rates: [44100, 48000], channels: [2, 2] },
    { id: "pulseaudio:usb-headset.out", name: "USB headset", direction: "output", is_default: false, host: "pulseaudio", sample_rates: [48000, 48000], channels: [2, 2] },
  ],
  cameras: scenario.cameras ?? [],
};

const report: DoctorReport = {
  verdict: "fail",
  exit_code: 2,
  duration_ms: 6400,
  checks: [
    { check: "mic", verdict: "warn", code: "mic_too_quiet", summary: "Built-in microphone: level -48.2 dBFS, noise floor -70.1 dBFS, 2.4 s of sound in 5.0 s", remedy: "Move closer to the microphone or raise its input volume in the sound settings.", figures: null },
    { check: "speaker", verdict: "pass", code: null, summary: "played a 0.5 s test chirp on Built-in speakers; no microphone listened, so the echo path was not measured", remedy: null, figures: null },
    { check: "camera", verdict: "fail", code: "camera_missing", summary: "No camera was found.", remedy: "Connect a camera, or call with audio only.", figures: null },
    { check: "network", verdict: "pass", code: null, summary: "server 3 ms, echo call MOS 4.4 (excellent), direct", remedy: null, figures: null },
    { check: "codec", verdict: "pass", code: null, summary: "Opus encodes and decodes 64× faster than real time", remedy: null, figures: null },
  ],
};

const calls: CallView[] = scenario.calls ?? [];
const log: Logged[] = [];
const failures: Record<string, IpcError> = { ...(scenario.failures ?? {}) };
const accepted = new Map<string, number>();
let meter: ReturnType<typeof setInterval> | null = null;
let outgoing = 0;
// Whether the pre-join preview shows: as in the shell, also when its camera would not open, and
// `set_camera` then moves it to the new camera (failing as `start_camera_preview` would).
let previewWanted = false;

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fail(code: string, message: string): never {
  throw { code, message } satisfies IpcError;
}

async function handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  log.push({ cmd, args: JSON.parse(JSON.stringify(args ?? {})) });
  if (cmd === "start_camera_preview" || cmd === "stop_camera_preview") previewWanted = cmd === "start_camera_preview";
  const failure = failures[cmd];
  if (failure) throw failure;
  switch (cmd) {
    case "get_app_state":
      return structuredClone(app);
    case "save_settings": {
      const next = args["settings"] as Settings;
      if (next.server.kind === "url") {
        try {
          const u = new URL(next.server.url);
          if (!/^https?:$/.test(u.protocol)) throw new Error();
        } catch {
          fail("bad_server_url", `"${next.server.url}" is not a server URL: use http://HOST:PORT or https://HOST`);
        }
      }
      app.settings = next;
      app.first_run = false;
      app.signaling = { state: "connecting" };
      setTimeout(() => {
        app.signaling = { state: "connected", user: next.user_id, device: "dev-1", expires_at: now() + 3_600_000 };
        void emit("signaling", app.signaling);
      }, 50);
      return structuredClone(app);
    }
    case "sign_in":
      app.signaling = { state: "connecting" };
      void emit("signaling", app.signaling);
      setTimeout(() => {
        app.signaling = { state: "connected", user: app.settings.user_id, device: "dev-1", expires_at: now() + 3_600_000 };
        void emit("signaling", app.signaling);
      }, 50);
      return null;
    case "sign_out":
      return null;
    case "list_contacts":
      return structuredClone(contacts);
    case "add_contact":
      contacts.push({ user_id: String(args["userId"]), display_name: String(args["displayName"]), presence: "unknown", is_echo: false });
      return structuredClone(contacts);
    case "remove_contact":
      return structuredClone(contacts.filter((c) => c.user_id !== args["userId"]));
    case "recent_calls":
      return structuredClone(recents.slice(0, Number(args["limit"] ?? 50)));
    case "list_calls":
      return structuredClone(calls);
    case "start_call":
      outgoing += 1;
      return `out-${outgoing}`;
    case "accept_call":
      accepted.set(String(args["callId"]), now());
      return null;
    case "decline_call":
      return null;
    case "hang_up": {
      const id = String(args["callId"]);
      const answered = accepted.get(id) ?? now() - 30_000;
      const who = window.__mock.names[id] ?? { user: "ada", name: "Ada Lovelace" };
      recents.unshift({
        call_id: id,
        direction: id.startsWith("out-") ? "outgoing" : "incoming",
        remote: who.user,
        remote_name: who.name,
        media: "audio",
        missed: false,
        started_at: answered - 2000,
        answered_at: answered,
        ended_at: now(),
        end_reason: "hangup",
      });
      return null;
    }
    case "set_muted":
      void emit("mute-changed", { muted: Boolean(args["muted"]), source: "ui" });
      return null;
    case "set_video":
      return null;
    case "watch_video": {
      const frames = args["frames"] as { id: number };
      let index = 0;
      if (args["view"] === "own") {
        // Our camera, as the shell's thumbnails come: warm orange with a dark bar on the left
        // (so a mirrored view shows it on the right), 15 a second.
        if (ownVideo) clearInterval(ownVideo);
        ownVideo = setInterval(() => {
          const message = pictureMessage(160, 120, (x) => (x < 40 ? [40, 128, 128] : [160, 60, 200]));
          window.__TAURI_INTERNALS__.runCallback(frames.id, { message, index });
          index += 1;
        }, 66);
        return null;
      }
      // Pictures of the other side, as the shell sends them: a moving gradient, 15 a second.
      if (video) clearInterval(video);
      video = setInterval(() => {
        const shift = index * 8;
        const message = pictureMessage(160, 120, (x, y) => [16 + ((x + shift) % 200), 64 + (y % 128), 192]);
        window.__TAURI_INTERNALS__.runCallback(frames.id, { message, index });
        index += 1;
      }, 66);
      return null;
    }
    case "set_camera":
      app.settings = { ...app.settings, camera: (args["camera"] as string | null) ?? null };
      if (previewWanted && failures["start_camera_preview"]) void emit("camera-preview-failed", { error: failures["start_camera_preview"] });
      return null;
    case "start_camera_preview":
    case "stop_camera_preview":
      return null;
    case "set_microphone":
    case "set_speaker":
      return null;
    case "list_devices":
      return structuredClone(devices);
    case "start_mic_meter": {
      if (meter) clearInterval(meter);
      let t = 0;
      meter = setInterval(() => {
        t += 1;
        const level = -30 + 8 * Math.sin(t / 3);
        void emit("mic-level", { device: String(args["device"]), level_dbfs: level, peak_dbfs: level + 6, clipping: false });
      }, 100);
      return null;
    }
    case "stop_mic_meter":
      if (meter) clearInterval(meter);
      meter = null;
      return null;
    case "test_ringer":
    case "silence_ringer":
      return null;
    case "run_doctor": {
      for (const check of ["mic", "speaker", "camera", "network", "codec"] as DoctorCheck[]) {
        void emit("doctor-progress", { check });
        await wait(60);
      }
      return structuredClone(report);
    }
    default:
      fail("invalid_argument", `the mock shell has no command ${cmd}`);
  }
}

mockIPC((cmd, args) => handle(cmd, (args ?? {}) as Record<string, unknown>), { shouldMockEvents: true });

window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective}: ${e.blockedURI}`);
});

window.__mock = {
  log,
  names: {},
  emit: (event, payload) => emit(event, payload),
  calls: (cmd) => log.filter((l) => l.cmd === cmd).map((l) => l.args),
  fail: (cmd, error) => {
    if (error) failures[cmd] = error;
    else delete failures[cmd];
  },
  app: () => structuredClone(app),
};
