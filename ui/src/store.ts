// The app's state and the actions on it. Events from the shell come in through `ipc.on`; the
// components read the model and call actions. Nothing here touches the DOM.

import {
  call,
  on,
  type AppState,
  type CallEventPayload,
  type Contact,
  type DeviceChoice,
  type DeviceList,
  type DoctorCheck,
  type DoctorReport,
  type IpcError,
  type Media,
  type MicLevel,
  type RecentCall,
  type Settings,
  type Source,
} from "./ipc";
import * as calls from "./logic/calls";
import { describeError, type Fix, type Problem } from "./logic/errors";

export type Screen = { name: "home" } | { name: "prejoin"; contact: Contact | null };

export interface Notice {
  id: number;
  tone: "info" | "warn" | "error";
  title: string;
  action: string;
  detail: string;
  fix: Fix;
}

export interface Doctor {
  running: boolean;
  current: DoctorCheck | null;
  report: DoctorReport | null;
  error: Problem | null;
}

export interface Model {
  boot: "loading" | "ready" | "failed";
  bootError: Problem | null;
  app: AppState | null;
  screen: Screen;
  settingsOpen: boolean;
  /** The in-call device menu is open. */
  dockDevices: boolean;
  calls: calls.CallsModel;
  contacts: Contact[];
  contactsError: Problem | null;
  recents: RecentCall[];
  recentsError: Problem | null;
  devices: DeviceList;
  devicesError: Problem | null;
  micLevel: MicLevel | null;
  meterError: Problem | null;
  doctor: Doctor;
  muted: boolean;
  talking: boolean;
  video: boolean;
  /** Our camera stopped in this call: picking a camera starts it again. */
  cameraFailed: boolean;
  /** Messages shown until dismissed (or replaced). */
  notices: Notice[];
  /** The latest live-region sentences; `n` changes with each so repeats are announced. */
  polite: { text: string; n: number };
  assertive: { text: string; n: number };
  now: number;
}

const EMPTY_DEVICES: DeviceList = { devices: [], cameras: [] };

export function initialModel(now: number): Model {
  return {
    boot: "loading",
    bootError: null,
    app: null,
    screen: { name: "home" },
    settingsOpen: false,
    dockDevices: false,
    calls: calls.EMPTY,
    contacts: [],
    contactsError: null,
    recents: [],
    recentsError: null,
    devices: EMPTY_DEVICES,
    devicesError: null,
    micLevel: null,
    meterError: null,
    doctor: { running: false, current: null, report: null, error: null },
    muted: false,
    talking: false,
    video: false,
    cameraFailed: false,
    notices: [],
    polite: { text: "", n: 0 },
    assertive: { text: "", n: 0 },
    now,
  };
}

const RECENT_LIMIT = 50;

export class Store {
  model: Model;
  private listeners = new Set<() => void>();
  private noticeSeq = 0;
  private unlisten: Array<() => void> = [];

  constructor(private readonly clock: () => number = Date.now) {
    this.model = initialModel(clock());
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(patch: Partial<Model> | ((m: Model) => Partial<Model>)): void {
    const change = typeof patch === "function" ? patch(this.model) : patch;
    this.model = { ...this.model, ...change };
    for (const listener of this.listeners) listener();
  }

  tick(): void {
    this.set({ now: this.clock() });
  }

  // ---- Start-up ----------------------------------------------------------------------------

  async boot(): Promise<void> {
    this.set({ boot: "loading", bootError: null });
    try {
      if (this.unlisten.length === 0) await this.listenAll();
      const app = await call("get_app_state");
      this.set({ app, boot: "ready" });
      applyTheme(app.settings.theme);
      if (app.keychain !== "ok") {
        const p = describeError({ code: app.keychain === "locked" ? "keychain_locked" : "keychain_unavailable", message: "" });
        this.notify({ tone: "warn", ...p });
      }
      if (!app.first_run) await this.loadSignedIn();
    } catch (e) {
      this.set({ boot: "failed", bootError: describeError(e as IpcError) });
    }
  }

  private async listenAll(): Promise<void> {
    const subs = await Promise.all([
      on("call", (e) => this.onCallEvent(e)),
      on("call-stats", (e) => this.set((m) => ({ calls: calls.applyStats(m.calls, e.call_id, e.stats) }))),
      on("signaling", (state) => {
        this.set((m) => (m.app ? { app: { ...m.app, signaling: state } } : {}));
        if (state.state === "connected") void this.refreshLists();
      }),
      on("device-fallback", (e) => {
        const what = e.direction === "input" ? "microphone" : "speaker";
        this.notify({
          tone: "warn",
          title: `Your ${what} changed during the call: now using ${e.device === "none" ? "no device" : e.device}.`,
          action: e.device === "none" ? `Connect a ${what} or pick another one from the device menu.` : "The call goes on. Pick another device from the device menu if this one is wrong.",
          detail: e.reason,
          fix: "devices",
        });
        this.say(`Your ${what} changed: now using ${e.device}.`, true);
      }),
      on("camera-failed", (e) => {
        const p = describeError(e.error);
        this.notify({ tone: "warn", ...p });
        this.set({ video: false, cameraFailed: true });
        this.say("Your camera stopped.", true);
      }),
      on("camera-refused", (e) => {
        this.notify({ tone: "warn", ...describeError(e.error) });
        this.say("That camera cannot be used; the call keeps the camera it had.", true);
      }),
      on("devices-changed", (e) => {
        this.set({ devices: { devices: e.devices, cameras: e.cameras }, devicesError: null });
        if (e.added.length || e.removed.length) {
          const parts = [];
          if (e.added.length) parts.push(`${e.added.length} device${e.added.length > 1 ? "s" : ""} connected`);
          if (e.removed.length) parts.push(`${e.removed.length} device${e.removed.length > 1 ? "s" : ""} removed`);
          this.say(`${parts.join(", ")}.`);
        }
      }),
      on("mic-level", (level) => this.set({ micLevel: level })),
      on("doctor-progress", (e) => this.set((m) => ({ doctor: { ...m.doctor, current: e.check } }))),
      on("mute-changed", (e) => this.onMuteChanged(e.muted, e.source)),
      on("presence", (e) =>
        this.set((m) => ({
          contacts: m.contacts.map((c) => (c.user_id === e.user_id ? { ...c, presence: e.presence } : c)),
        })),
      ),
      on("deep-link", (e) => {
        const contact = this.model.contacts.find((c) => c.user_id === e.user_id) ?? {
          user_id: e.user_id,
          display_name: e.user_id,
          presence: "unknown" as const,
          is_echo: false,
        };
        this.openPreJoin(contact);
      }),
    ]);
    this.unlisten = subs;
  }

  private async loadSignedIn(): Promise<void> {
    await Promise.all([this.loadCalls(), this.loadDevices(), this.refreshLists()]);
  }

  private async loadCalls(): Promise<void> {
    try {
      const views = await call("list_calls");
      // Events may have arrived meanwhile: the snapshot only fills in what they did not say.
      this.set((m) => {
        const snapshot = calls.fromViews(views);
        return { calls: { ...snapshot, calls: { ...snapshot.calls, ...m.calls.calls }, seq: Math.max(snapshot.seq, m.calls.seq), summary: m.calls.summary } };
      });
    } catch {
      // Not signed in yet: calls come as events once connected.
    }
  }

  async loadDevices(): Promise<void> {
    try {
      this.set({ devices: await call("list_devices"), devicesError: null });
    } catch (e) {
      this.set({ devicesError: describeError(e as IpcError) });
    }
  }

  async refreshLists(): Promise<void> {
    await Promise.all([
      call("list_contacts").then(
        (contacts) => this.set({ contacts, contactsError: null }),
        (e: IpcError) => this.set({ contactsError: describeError(e) }),
      ),
      call("recent_calls", { limit: RECENT_LIMIT }).then(
        (recents) => this.set({ recents, recentsError: null }),
        (e: IpcError) => this.set({ recentsError: describeError(e) }),
      ),
    ]);
  }

  // ---- Calls -------------------------------------------------------------------------------

  private onCallEvent(event: CallEventPayload): void {
    const before = this.model.calls;
    const after = calls.applyEvent(before, event, this.clock());
    this.set({ calls: after });
    const id = event.type === "replaced" ? event.new : event.call_id;
    const entry = after.calls[id];
    if (!entry) return;
    const old = before.calls[id];
    if (event.type === "incoming") {
      this.say(calls.announcement(entry), true);
    } else if (event.type === "remote_ringing" || (old?.state ?? null) !== entry.state) {
      if (event.type !== "replaced") this.say(calls.announcement(entry));
    }
    if (event.type === "ended") {
      if (!calls.dockCall(after)) this.set({ muted: false, talking: false, video: false, cameraFailed: false, dockDevices: false });
      void this.refreshLists();
      this.set((m) => ({ calls: calls.prune(m.calls) }));
    }
  }

  async startCall(contact: Contact, media: Media): Promise<void> {
    try {
      await call("stop_mic_meter").catch(() => null);
      await this.cameraForCall(media);
      const id = await call("start_call", { to: contact.user_id, media });
      this.set((m) => ({
        calls: calls.startOutgoing(m.calls, id, contact.user_id, contact.display_name, media, this.clock()),
        screen: { name: "home" },
      }));
      const entry = this.model.calls.calls[id];
      if (entry) this.say(calls.announcement(entry));
    } catch (e) {
      this.fail(e, "The call could not be started.");
    }
  }

  async accept(id: string, media: Media): Promise<void> {
    try {
      this.set((m) => ({ calls: calls.markAccepted(m.calls, id, media) }));
      await this.cameraForCall(media);
      await call("accept_call", { callId: id, media });
    } catch (e) {
      this.fail(e, "The call could not be answered.");
    }
  }

  /** A video call starts with the camera on, whatever the last call left it at. */
  private async cameraForCall(media: Media): Promise<void> {
    if (media !== "video") return;
    await call("set_video", { enabled: true });
    this.set({ video: true });
  }

  async decline(id: string): Promise<void> {
    try {
      await call("decline_call", { callId: id });
    } catch (e) {
      this.fail(e, "The call could not be declined.");
    }
  }

  async hangUp(id: string): Promise<void> {
    try {
      await call("hang_up", { callId: id });
    } catch (e) {
      this.fail(e, "The call could not be ended.");
    }
  }

  dismissSummary(): void {
    this.set((m) => ({ calls: calls.prune(calls.dismissSummary(m.calls)), screen: { name: "home" } }));
    void this.refreshLists();
  }

  async setMuted(muted: boolean): Promise<void> {
    const was = this.model.muted;
    this.onMuteChanged(muted, "ui");
    try {
      await call("set_muted", { muted });
    } catch (e) {
      this.set({ muted: was });
      this.fail(e, "The microphone could not be muted.");
    }
  }

  toggleMute(): Promise<void> {
    return this.setMuted(!this.model.muted);
  }

  private onMuteChanged(muted: boolean, source: Source): void {
    // While push-to-talk holds the microphone open, the shell's echo of that unmute is not a
    // change of the user's mute setting.
    if (this.model.talking && source === "ui") return;
    if (muted === this.model.muted) return;
    this.set({ muted, talking: false });
    this.say(muted ? "Microphone muted." : "Microphone on.");
  }

  /** Space held while muted: the microphone is on until it is released. */
  async talkStart(): Promise<void> {
    if (!this.model.muted || this.model.talking) return;
    this.set({ talking: true });
    try {
      await call("set_muted", { muted: false });
    } catch (e) {
      this.set({ talking: false });
      this.fail(e, "Push-to-talk could not turn the microphone on.");
    }
  }

  async talkStop(): Promise<void> {
    if (!this.model.talking) return;
    this.set({ talking: false });
    try {
      await call("set_muted", { muted: true });
    } catch (e) {
      this.fail(e, "The microphone could not be muted again.");
    }
  }

  async toggleVideo(): Promise<void> {
    const current = calls.dockCall(this.model.calls);
    if (current && current.media !== "video") {
      // The camera joins video calls only: an audio call carries no picture to turn on.
      this.notify({
        tone: "info",
        title: "This is an audio call: there is no camera in it.",
        action: "To be seen, hang up and call again with video.",
        detail: "",
        fix: null,
      });
      return;
    }
    const enabled = !this.model.video;
    try {
      await call("set_video", { enabled });
      this.set({ video: enabled });
      this.say(enabled ? "Camera on." : "Camera off.");
    } catch (e) {
      this.fail(e, "The camera could not be switched.");
    }
  }

  async setMicrophone(device: DeviceChoice): Promise<void> {
    this.patchSettings({ microphone: device });
    try {
      await call("set_microphone", { device });
    } catch (e) {
      this.fail(e, "The microphone could not be switched.");
    }
  }

  /** The camera for video calls (`null`: the default one), the call in progress included. */
  async setCamera(camera: string | null): Promise<void> {
    this.patchSettings({ camera });
    try {
      await call("set_camera", { camera });
      if (this.model.cameraFailed) {
        // The stopped camera's replacement starts: the picture is on again.
        await call("set_video", { enabled: true });
        this.set({ video: true, cameraFailed: false });
        this.say("Camera on.");
      }
    } catch (e) {
      this.fail(e, "The camera could not be switched.");
    }
  }

  async setSpeaker(device: DeviceChoice): Promise<void> {
    this.patchSettings({ speaker: device });
    try {
      await call("set_speaker", { device });
    } catch (e) {
      this.fail(e, "The speaker could not be switched.");
    }
  }

  private patchSettings(patch: Partial<Settings>): void {
    this.set((m) => (m.app ? { app: { ...m.app, settings: { ...m.app.settings, ...patch } } } : {}));
  }

  setDockDevices(open: boolean): void {
    this.set({ dockDevices: open });
  }

  // ---- Pre-join ----------------------------------------------------------------------------

  openPreJoin(contact: Contact | null): void {
    this.set({ screen: { name: "prejoin", contact }, doctor: { running: false, current: null, report: null, error: null } });
  }

  goHome(): void {
    this.set({ screen: { name: "home" } });
    void this.refreshLists();
  }

  async startMeter(device: DeviceChoice): Promise<void> {
    try {
      await call("start_mic_meter", { device });
      this.set({ meterError: null, micLevel: null });
    } catch (e) {
      this.set({ meterError: describeError(e as IpcError), micLevel: null });
    }
  }

  async stopMeter(): Promise<void> {
    await call("stop_mic_meter").catch(() => null);
    this.set({ micLevel: null });
  }

  async runDoctor(): Promise<void> {
    if (this.model.doctor.running) return;
    this.set({ doctor: { running: true, current: null, report: null, error: null } });
    this.say("Checking your setup. This takes about ten seconds.");
    try {
      const report = await call("run_doctor", { checks: null });
      this.set({ doctor: { running: false, current: null, report, error: null } });
      const fails = report.checks.filter((c) => c.verdict === "fail").length;
      const warns = report.checks.filter((c) => c.verdict === "warn").length;
      this.say(
        fails + warns === 0
          ? "Setup check done: everything passed."
          : `Setup check done: ${fails} failed, ${warns} with warnings. Details follow in the results list.`,
      );
    } catch (e) {
      this.set({ doctor: { running: false, current: null, report: null, error: describeError(e as IpcError) } });
    }
  }

  async testRinger(device: DeviceChoice, volume: number): Promise<Problem | null> {
    try {
      await call("test_ringer", { device, volume });
      return null;
    } catch (e) {
      return describeError(e as IpcError);
    }
  }

  // ---- Settings and session ------------------------------------------------------------------

  openSettings(): void {
    this.set({ settingsOpen: true });
  }

  closeSettings(): void {
    this.set({ settingsOpen: false });
  }

  /** Saves; returns the problem to show beside the form, or null when saved. */
  async saveSettings(settings: Settings): Promise<Problem | null> {
    try {
      const app = await call("save_settings", { settings });
      const wasFirstRun = this.model.app?.first_run ?? false;
      this.set({ app, settingsOpen: false });
      applyTheme(app.settings.theme);
      this.say("Settings saved.");
      if (wasFirstRun || app.signaling.state === "connected") void this.loadSignedIn();
      return null;
    } catch (e) {
      return describeError(e as IpcError);
    }
  }

  async signIn(): Promise<void> {
    try {
      await call("sign_in");
    } catch (e) {
      this.fail(e, "Signing in did not work.");
    }
  }

  async signOut(): Promise<void> {
    try {
      await call("sign_out");
      this.set((m) => ({ settingsOpen: false, app: m.app ? { ...m.app, signaling: { state: "signed_out" } } : m.app }));
    } catch (e) {
      this.fail(e, "Signing out did not work.");
    }
  }

  async addContact(userId: string, displayName: string): Promise<Problem | null> {
    try {
      this.set({ contacts: await call("add_contact", { userId, displayName }) });
      return null;
    } catch (e) {
      return describeError(e as IpcError);
    }
  }

  // ---- Messages ----------------------------------------------------------------------------

  notify(notice: Omit<Notice, "id">): void {
    const id = ++this.noticeSeq;
    // One message per title: a repeat replaces the old one instead of piling up.
    this.set((m) => ({ notices: [...m.notices.filter((n) => n.title !== notice.title), { ...notice, id }].slice(-4) }));
  }

  dismissNotice(id: number): void {
    this.set((m) => ({ notices: m.notices.filter((n) => n.id !== id) }));
  }

  private fail(thrown: unknown, context: string): void {
    const p = describeError(thrown as IpcError);
    const title = p.title === "Something went wrong." ? context : p.title;
    this.notify({ tone: "error", title, action: p.action, detail: p.detail, fix: p.fix });
  }

  say(text: string, urgent = false): void {
    if (urgent) this.set((m) => ({ assertive: { text, n: m.assertive.n + 1 } }));
    else this.set((m) => ({ polite: { text, n: m.polite.n + 1 } }));
  }
}

/** The theme setting as a `data-theme` attribute; "system" leaves it to prefers-color-scheme. */
export function applyTheme(theme: Settings["theme"]): void {
  if (typeof document === "undefined") return;
  const root = document.documentElement;
  if (theme === "system") root.removeAttribute("data-theme");
  else root.setAttribute("data-theme", theme);
  try {
    localStorage.setItem("calldock.theme", theme);
  } catch {
    // Storage may be off; the setting still applies now.
  }
}
