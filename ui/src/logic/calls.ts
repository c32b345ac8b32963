// The calls as the UI knows them: built from `list_calls` and the `call` / `call-stats` events.
// Pure: every function returns a new model and takes the time as an argument.

import type { CallEventPayload, CallId, CallState, CallStats, CallView, EndReason, Media, UserId } from "../ipc";
import { addSample, EMPTY_SUMMARY, type QualitySummary } from "./quality";

export interface CallEntry extends CallView {
  /** Arrival order on this device: the incoming stack is sorted by it. */
  seq: number;
  /** The call is (or was) the one in the dock: placed here, or accepted here. */
  docked: boolean;
  by_name: string | null;
  /** Rang while another call was active (call waiting): accepting ends that one. */
  stacked: boolean;
  stats: CallStats | null;
  quality: QualitySummary;
}

export interface CallsModel {
  calls: Record<CallId, CallEntry>;
  seq: number;
  /** The docked call that ended last, for the post-call summary (until dismissed). */
  summary: CallId | null;
}

export const EMPTY: CallsModel = { calls: {}, seq: 0, summary: null };

const ACTIVE: ReadonlySet<CallState> = new Set(["connecting", "connected", "reconnecting"]);

export function isActive(state: CallState): boolean {
  return ACTIVE.has(state);
}

function put(model: CallsModel, entry: CallEntry): CallsModel {
  return { ...model, calls: { ...model.calls, [entry.id]: entry } };
}

function blank(id: CallId, now: number, seq: number): CallEntry {
  return {
    id,
    direction: "incoming",
    remote: "",
    remote_name: "",
    remote_device: null,
    media: "audio",
    state: "connecting",
    end_reason: null,
    started_at: now,
    ring_deadline: null,
    connected_at: null,
    ended_at: null,
    remote_ringing: false,
    seq,
    docked: false,
    by_name: null,
    stacked: false,
    stats: null,
    quality: EMPTY_SUMMARY,
  };
}

/** The model from a `list_calls` snapshot (app start, or after the window reloads). */
export function fromViews(views: CallView[]): CallsModel {
  let model = EMPTY;
  const busy = views.some((v) => isActive(v.state));
  for (const view of views) {
    const seq = model.seq + 1;
    const docked = view.direction === "outgoing" || isActive(view.state);
    const entry: CallEntry = { ...view, seq, docked, by_name: null, stacked: busy && view.state === "incoming-ringing", stats: null, quality: EMPTY_SUMMARY };
    model = { ...put(model, entry), seq };
  }
  return model;
}

/** A call this device just placed (`start_call` resolved with its id). */
export function startOutgoing(model: CallsModel, id: CallId, to: UserId, name: string, media: Media, now: number): CallsModel {
  const existing = model.calls[id];
  if (existing) {
    // Events came first (the echo bot answers before start_call resolves): keep the state they
    // gave and add who the call is with, so the dock and the summary can name them.
    const known: CallEntry = {
      ...existing,
      direction: "outgoing",
      remote: to,
      remote_name: existing.remote_name || name || to,
      media,
      docked: true,
    };
    return { ...put(model, known), summary: existing.state === "ended" ? id : null };
  }
  const seq = model.seq + 1;
  const entry: CallEntry = {
    ...blank(id, now, seq),
    direction: "outgoing",
    remote: to,
    remote_name: name || to,
    media,
    state: "outgoing-ringing",
    docked: true,
  };
  return { ...put(model, entry), seq, summary: null };
}

/** Marks a ringing incoming call as the one going to the dock (the user accepted it). */
export function markAccepted(model: CallsModel, id: CallId, media: Media): CallsModel {
  const entry = model.calls[id];
  if (!entry) return model;
  return { ...put(model, { ...entry, docked: true, media }), summary: null };
}

export function applyEvent(model: CallsModel, event: CallEventPayload, now: number): CallsModel {
  switch (event.type) {
    case "incoming": {
      const existing = model.calls[event.call_id];
      if (existing && existing.state !== "incoming-ringing") return model;
      const seq = existing?.seq ?? model.seq + 1;
      const entry: CallEntry = {
        ...(existing ?? blank(event.call_id, now, seq)),
        direction: "incoming",
        remote: event.from,
        remote_name: event.from_name || event.from,
        media: event.media,
        state: "incoming-ringing",
        ring_deadline: event.ring_deadline,
        stacked: event.stacked,
      };
      return { ...put(model, entry), seq: Math.max(seq, model.seq) };
    }
    case "state_changed": {
      const existing = model.calls[event.call_id];
      const seq = existing ? model.seq : model.seq + 1;
      const base = existing ?? blank(event.call_id, now, seq);
      if (base.state === "ended") return model; // late event for a finished call
      const entry: CallEntry = {
        ...base,
        state: event.state,
        // Accepted (here or by the remote side): the call is in the dock from now on.
        docked: base.docked || isActive(event.state) || event.state === "outgoing-ringing",
        connected_at: event.state === "connected" && base.connected_at === null ? now : base.connected_at,
        direction: event.state === "outgoing-ringing" ? "outgoing" : base.direction,
      };
      return { ...put(model, entry), seq };
    }
    case "remote_ringing": {
      const existing = model.calls[event.call_id];
      if (!existing) return model;
      return put(model, { ...existing, remote_ringing: true });
    }
    case "replaced": {
      const old = model.calls[event.old];
      if (!old) return model;
      const rest = { ...model.calls };
      delete rest[event.old];
      const successor = model.calls[event.new];
      const entry: CallEntry = successor
        ? { ...successor, docked: successor.docked || old.docked }
        : { ...old, id: event.new };
      return {
        ...model,
        calls: { ...rest, [event.new]: entry },
        summary: model.summary === event.old ? event.new : model.summary,
      };
    }
    case "ended": {
      const existing = model.calls[event.call_id];
      if (!existing) return model;
      if (existing.state === "ended") return model;
      const entry: CallEntry = {
        ...existing,
        state: "ended",
        end_reason: event.reason,
        by_name: event.by_name,
        ended_at: now,
      };
      const next = put(model, entry);
      // A call that never reached the dock (declined, missed, canceled while ringing) has no summary.
      return entry.docked ? { ...next, summary: entry.id } : next;
    }
  }
}

export function applyStats(model: CallsModel, id: CallId, stats: CallStats): CallsModel {
  const entry = model.calls[id];
  if (!entry || entry.state === "ended") return model;
  return put(model, { ...entry, stats, quality: addSample(entry.quality, stats) });
}

export function dismissSummary(model: CallsModel): CallsModel {
  return { ...model, summary: null };
}

/** Drops ended calls except the one whose summary is showing (keeps the model small). */
export function prune(model: CallsModel): CallsModel {
  const calls: Record<CallId, CallEntry> = {};
  for (const entry of Object.values(model.calls)) {
    if (entry.state !== "ended" || entry.id === model.summary) calls[entry.id] = entry;
  }
  return { ...model, calls };
}

/**
 * Ringing incoming calls, oldest first: the stack's order. A call past its deadline stays until
 * the engine ends it (as missed); its countdown shows 0, so a skewed clock never hides a call.
 */
export function incomingStack(model: CallsModel): CallEntry[] {
  return Object.values(model.calls)
    .filter((c) => c.state === "incoming-ringing")
    .sort((a, b) => a.seq - b.seq);
}

/** The call in the dock: an active one first, else one ringing out. */
export function dockCall(model: CallsModel): CallEntry | null {
  const calls = Object.values(model.calls);
  return (
    calls.find((c) => isActive(c.state) && c.docked) ??
    calls.find((c) => c.state === "outgoing-ringing") ??
    calls.find((c) => isActive(c.state)) ??
    null
  );
}

export function summaryCall(model: CallsModel): CallEntry | null {
  return model.summary ? (model.calls[model.summary] ?? null) : null;
}

// ---- Words ---------------------------------------------------------------------------------

const FAILURE_TEXT: Record<string, string> = {
  ice: "the network connection could not be made or was lost",
  dtls: "the secure connection could not be set up",
  signaling: "the server lost track of the call",
  media: "a microphone or speaker could not be used",
  permission: "access to a device was refused",
};

/** Why a call ended, from this user's side: "Ada hung up", "You declined". */
export function endReasonText(reason: EndReason, entry: Pick<CallEntry, "remote_name" | "direction" | "by_name">): string {
  const who = entry.by_name || entry.remote_name || "The other person";
  const failed = /^failed\((\w+)\)$/.exec(reason);
  if (failed) return `The call failed: ${FAILURE_TEXT[failed[1] ?? ""] ?? "something broke"}.`;
  switch (reason) {
    case "hangup-local":
      return "You hung up.";
    case "hangup-remote":
      return `${who} hung up.`;
    case "declined":
      return entry.direction === "incoming" ? "You declined the call." : `${who} declined the call.`;
    case "busy":
      return entry.direction === "incoming" ? "Declined as busy." : `${who} is busy in another call.`;
    case "missed":
      return entry.direction === "incoming" ? "Missed call." : `${who} did not answer.`;
    case "canceled":
      return entry.direction === "incoming" ? `${who} hung up before you answered.` : "You canceled the call.";
    case "accepted-elsewhere":
      return "Answered on another device.";
    case "declined-elsewhere":
      return "Declined on another device.";
    case "timeout-reconnect":
      return "The connection was lost and did not come back.";
    default:
      return "The call ended.";
  }
}

/** The live region's sentence for a call entering `state`. */
export function announcement(entry: CallEntry): string {
  const name = entry.remote_name || entry.remote;
  switch (entry.state) {
    case "outgoing-ringing":
      return entry.remote_ringing ? `Ringing ${name}.` : `Calling ${name}.`;
    case "incoming-ringing":
      return `Incoming ${entry.media === "video" ? "video " : ""}call from ${name}. Press Enter to answer, Escape to decline.`;
    case "connecting":
      return `Connecting to ${name}.`;
    case "connected":
      return `Connected to ${name}.`;
    case "reconnecting":
      return `Connection to ${name} lost. Reconnecting.`;
    case "ended":
      return `Call with ${name} ended. ${entry.end_reason ? endReasonText(entry.end_reason, entry) : ""}`.trim();
  }
}

/** The dock's status line. */
export function stateText(entry: CallEntry): string {
  switch (entry.state) {
    case "outgoing-ringing":
      return entry.remote_ringing ? "Ringing…" : "Calling…";
    case "incoming-ringing":
      return "Incoming call";
    case "connecting":
      return "Connecting…";
    case "connected":
      return "Connected";
    case "reconnecting":
      return "Reconnecting…";
    case "ended":
      return "Call ended";
  }
}
