// Errors as a person reads them: what happened and what to do. The UI matches on codes only;
// the shell's message is kept as details.

import type { IpcError, SignalingState } from "../ipc";

/** A follow-up the UI can offer as a button next to the message. */
export type Fix = "sign_in" | "settings" | "retry" | "devices" | "reload" | null;

export interface Problem {
  /** What happened, one sentence. */
  title: string;
  /** What to do, one sentence. */
  action: string;
  /** The shell's own words, shown under "Details" (empty when there are none). */
  detail: string;
  fix: Fix;
}

type Entry = [title: string, action: string, fix: Fix];

const KNOWN: Record<string, Entry> = {
  bad_server_url: [
    "The server address is not a valid URL.",
    "Enter an address like http://server:7878 or https://calls.example.com, or use the built-in server.",
    "settings",
  ],
  server_unreachable: [
    "The server is not answering.",
    "Check the address in Settings and that the server is running. Calldock keeps trying.",
    "settings",
  ],
  version_mismatch: [
    "The server speaks a different version of the Calldock protocol.",
    "Update Calldock or the server so that both match.",
    "settings",
  ],
  token_expired: ["Your session has expired.", "Sign in again to keep receiving calls.", "sign_in"],
  session_refused: ["The server no longer accepts your session.", "Sign in again.", "sign_in"],
  login_refused: [
    "The server refused to sign you in.",
    "Check your user name in Settings, or ask the server's administrator.",
    "settings",
  ],
  request_refused: ["The server refused the request.", "Try again in a moment.", "retry"],
  protocol_error: [
    "The address does not lead to a Calldock server.",
    "Check the server address in Settings.",
    "settings",
  ],
  invalid_command: [
    "That call changed in the meantime.",
    "It may have been answered elsewhere or ended; nothing else needs doing.",
    null,
  ],
  engine_stopped: ["The call engine stopped.", "Sign in again to restart it.", "sign_in"],
  not_configured: ["Calldock is not set up yet.", "Choose a server and your name in Settings.", "settings"],
  not_signed_in: ["You are not signed in.", "Sign in to make and receive calls.", "sign_in"],
  keychain_locked: [
    "The system keychain is locked, so your session cannot be stored.",
    "Unlock the keychain (your desktop login), then sign in again.",
    "sign_in",
  ],
  keychain_unavailable: [
    "There is no system keychain to keep your session in.",
    "Install or start one (GNOME Keyring or KWallet). Until then Calldock signs in at every start.",
    null,
  ],
  settings_unwritable: [
    "Your settings could not be saved.",
    "Check free disk space and the permissions of Calldock's configuration folder, then save again.",
    "retry",
  ],
  device_not_found: ["That device is no longer connected.", "Plug it back in, or pick another device.", "devices"],
  no_default_device: [
    "There is no default sound device.",
    "Connect a microphone or speaker, or pick one from the list.",
    "devices",
  ],
  device_open_failed: [
    "The device cannot be opened; another program may be using it.",
    "Close the other program, or pick another device.",
    "devices",
  ],
  device_failed: ["The device stopped working.", "Pick another device, or reconnect this one.", "devices"],
  device_enumeration_failed: [
    "Sound devices cannot be listed.",
    "Check that the system's sound service (PulseAudio or PipeWire) is running.",
    "retry",
  ],
  camera_failed: [
    "Your camera stopped: the other side no longer sees you.",
    "The call goes on with audio. Reconnect the camera or close the program using it, then pick it again in the device menu, or pick another camera.",
    "devices",
  ],
  camera_unavailable: [
    "Your camera cannot be shown.",
    "Reconnect it or close the program using it, or pick another camera. Calls work with audio alone.",
    "devices",
  ],
  camera_refused: [
    "That camera cannot be used: the call goes on with the camera you had.",
    "Reconnect it, or close the program using it, then pick it again.",
    "devices",
  ],
  doctor_busy: ["A setup check is already running.", "Wait for it to finish.", null],
  invalid_argument: [
    "Calldock sent itself something it did not understand.",
    "Try again; if it keeps happening, please report it.",
    "retry",
  ],
  ipc_unavailable: [
    "This window is not connected to the Calldock app.",
    "Close the window and start Calldock again.",
    "reload",
  ],
};

const FALLBACK: Entry = ["Something went wrong.", "Try again. If it keeps happening, restart Calldock.", "retry"];

/** The message for an error; unknown codes get a generic one, never a blank. */
export function describeError(error: IpcError): Problem {
  const [title, action, fix] = KNOWN[error.code] ?? FALLBACK;
  return { title, action, fix, detail: cleanDetail(error.message, title) };
}

/** The shell's sentence, unless it is empty or repeats the title. */
function cleanDetail(message: string, title: string): string {
  const text = (message ?? "").trim();
  if (!text || text === title) return "";
  return text.length > 300 ? `${text.slice(0, 297)}…` : text;
}

export function isKnownCode(code: string): boolean {
  return code in KNOWN;
}

/** The banner for the signaling connection; `null` when all is well. */
export interface SignalingBanner {
  tone: "info" | "warn" | "error";
  title: string;
  action: string;
  detail: string;
  fix: Fix;
}

export function signalingBanner(state: SignalingState): SignalingBanner | null {
  switch (state.state) {
    case "connected":
      return null;
    case "signed_out":
      return { tone: "warn", title: "You are signed out.", action: "Sign in to make and receive calls.", detail: "", fix: "sign_in" };
    case "connecting":
      return { tone: "info", title: "Connecting to the server…", action: "", detail: "", fix: null };
    case "reconnecting": {
      const secs = Math.max(1, Math.round(state.retry_in_ms / 1000));
      const base = state.error ? describeError(state.error) : null;
      return {
        tone: "warn",
        title: base ? base.title : "The connection to the server was lost.",
        action: `Trying again in ${secs} s (attempt ${state.attempt}). ${base ? base.action : "Calls in progress continue."}`.trim(),
        detail: state.reason,
        fix: base?.fix === "settings" ? "settings" : null,
      };
    }
    case "failed": {
      const p = describeError(state.error);
      return { tone: "error", title: p.title, action: p.action, detail: p.detail, fix: p.fix };
    }
  }
}

/** Checks a server address the way the engine will; returns the problem, or null when usable. */
export function serverUrlProblem(input: string): string | null {
  const text = input.trim();
  if (!text) return "Enter the server's address, for example http://192.168.1.20:7878.";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${text}" is not a web address. Use http://HOST:PORT or https://HOST.`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `The address must start with http:// or https://, not ${url.protocol}//.`;
  }
  if (!url.hostname) return "The address needs a host name, for example https://calls.example.com.";
  return null;
}

/** User ids: what the server accepts as a sign-in name (letters, digits, . _ -). */
export function userIdProblem(input: string): string | null {
  const text = input.trim();
  if (!text) return "Enter a user name, for example alice.";
  // The server's rule (and the shell's check_user_name): lowercase, starting with a letter or digit.
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(text)) {
    return "Use lowercase letters, digits, dots, dashes or underscores, starting with a letter or digit (up to 64).";
  }
  return null;
}

/** A user id made from a display name: "Ada Lovelace" → "ada.lovelace". */
export function suggestUserId(displayName: string): string {
  return displayName
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .trim()
    .replace(/\s+/g, ".")
    .replace(/[^a-z0-9._-]/g, "")
    .replace(/^[._-]+/, "")
    .slice(0, 64);
}
