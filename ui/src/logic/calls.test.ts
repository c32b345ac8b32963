import { describe, expect, it } from "vitest";
import type { CallEventPayload, CallView } from "../ipc";
import {
  announcement,
  applyEvent,
  applyStats,
  dismissSummary,
  dockCall,
  EMPTY,
  endReasonText,
  fromViews,
  incomingStack,
  markAccepted,
  prune,
  startOutgoing,
  summaryCall,
  type CallsModel,
} from "./calls";
import { stats } from "./testdata";

const T = 1_700_000_000_000;

function incoming(id: string, from: string, stacked = false, deadline = T + 60_000): CallEventPayload {
  return { type: "incoming", call_id: id, from, from_name: from.toUpperCase(), media: "audio", stacked, ring_deadline: deadline };
}

function run(model: CallsModel, ...events: CallEventPayload[]): CallsModel {
  return events.reduce((m, e, i) => applyEvent(m, e, T + i * 1000), model);
}

describe("incoming calls stack", () => {
  it("stacks several ringing calls oldest first", () => {
    const m = run(EMPTY, incoming("a", "ada"), incoming("b", "bob", true), incoming("c", "cy", true));
    expect(incomingStack(m).map((c) => c.id)).toEqual(["a", "b", "c"]);
    expect(incomingStack(m)[1]?.stacked).toBe(true);
    expect(incomingStack(m)[0]?.remote_name).toBe("ADA");
  });
  it("a duplicate invite does not move a call in the stack", () => {
    const m = run(EMPTY, incoming("a", "ada"), incoming("b", "bob"), incoming("a", "ada"));
    expect(incomingStack(m).map((c) => c.id)).toEqual(["a", "b"]);
  });
  it("removes a call that ends (missed, canceled, answered elsewhere) and keeps the others", () => {
    let m = run(EMPTY, incoming("a", "ada"), incoming("b", "bob"));
    m = applyEvent(m, { type: "ended", call_id: "a", reason: "canceled", by_name: null }, T + 5000);
    expect(incomingStack(m).map((c) => c.id)).toEqual(["b"]);
    expect(m.summary).toBeNull(); // a call that only rang has no summary
  });
  it("accepting one takes it out of the stack and into the dock", () => {
    let m = run(EMPTY, incoming("a", "ada"), incoming("b", "bob"));
    m = markAccepted(m, "b", "video");
    m = applyEvent(m, { type: "state_changed", call_id: "b", state: "connecting" }, T + 3000);
    expect(incomingStack(m).map((c) => c.id)).toEqual(["a"]);
    expect(dockCall(m)?.id).toBe("b");
    expect(dockCall(m)?.media).toBe("video");
  });
  it("keeps a call past its deadline until the engine ends it (skewed clocks)", () => {
    const m = run(EMPTY, incoming("a", "ada", false, T - 10_000));
    expect(incomingStack(m)).toHaveLength(1);
  });
});

describe("the dock", () => {
  it("follows an outgoing call from ringing to connected to the summary", () => {
    let m = startOutgoing(EMPTY, "x", "echo", "Echo test", "audio", T);
    expect(dockCall(m)?.state).toBe("outgoing-ringing");
    m = applyEvent(m, { type: "remote_ringing", call_id: "x" }, T + 100);
    expect(dockCall(m)?.remote_ringing).toBe(true);
    m = applyEvent(m, { type: "state_changed", call_id: "x", state: "connecting" }, T + 1000);
    m = applyEvent(m, { type: "state_changed", call_id: "x", state: "connected" }, T + 2000);
    expect(dockCall(m)?.connected_at).toBe(T + 2000);
    m = applyEvent(m, { type: "state_changed", call_id: "x", state: "reconnecting" }, T + 5000);
    m = applyEvent(m, { type: "state_changed", call_id: "x", state: "connected" }, T + 6000);
    expect(dockCall(m)?.connected_at).toBe(T + 2000); // the timer does not restart
    m = applyStats(m, "x", stats({ mos: 4.3 }));
    m = applyEvent(m, { type: "ended", call_id: "x", reason: "hangup-local", by_name: null }, T + 9000);
    expect(dockCall(m)).toBeNull();
    const s = summaryCall(m);
    expect(s?.end_reason).toBe("hangup-local");
    expect(s?.quality.samples).toBe(1);
    expect(s?.ended_at).toBe(T + 9000);
    m = prune(dismissSummary(m));
    expect(summaryCall(m)).toBeNull();
    expect(Object.keys(m.calls)).toEqual([]);
  });
  it("events that arrive before start_call resolves are kept", () => {
    let m = applyEvent(EMPTY, { type: "state_changed", call_id: "x", state: "outgoing-ringing" }, T);
    m = startOutgoing(m, "x", "echo", "Echo test", "audio", T);
    expect(dockCall(m)?.state).toBe("outgoing-ringing");
    expect(dockCall(m)?.remote_name).toBe("Echo test");
    expect(dockCall(m)?.direction).toBe("outgoing");
  });
  it("a call that ended before start_call resolved gets its summary with the callee's name", () => {
    let m = applyEvent(EMPTY, { type: "state_changed", call_id: "x", state: "connected" }, T);
    m = applyEvent(m, { type: "ended", call_id: "x", reason: "hangup-remote", by_name: null }, T + 500);
    m = startOutgoing(m, "x", "echo", "Echo test", "audio", T + 600);
    expect(dockCall(m)).toBeNull();
    expect(summaryCall(m)?.remote_name).toBe("Echo test");
    expect(summaryCall(m)?.end_reason).toBe("hangup-remote");
  });
  it("glare: the outgoing call is replaced by the incoming one, which stays in the dock", () => {
    let m = startOutgoing(EMPTY, "mine", "bob", "Bob", "audio", T);
    m = applyEvent(m, incoming("theirs", "bob"), T + 10);
    m = applyEvent(m, { type: "replaced", old: "mine", new: "theirs" }, T + 20);
    m = applyEvent(m, { type: "state_changed", call_id: "theirs", state: "connecting" }, T + 30);
    expect(Object.keys(m.calls)).toEqual(["theirs"]);
    expect(dockCall(m)?.id).toBe("theirs");
    expect(incomingStack(m)).toHaveLength(0);
  });
  it("ignores late events for ended calls and stats for unknown calls", () => {
    let m = startOutgoing(EMPTY, "x", "bob", "Bob", "audio", T);
    m = applyEvent(m, { type: "ended", call_id: "x", reason: "declined", by_name: "Bob" }, T + 1);
    const after = applyEvent(m, { type: "state_changed", call_id: "x", state: "connected" }, T + 2);
    expect(after.calls["x"]?.state).toBe("ended");
    expect(applyStats(m, "nope", stats())).toBe(m);
  });
  it("rebuilds from a list_calls snapshot", () => {
    const view = (id: string, state: CallView["state"]): CallView => ({
      id,
      direction: "incoming",
      remote: "ada",
      remote_name: "Ada",
      remote_device: null,
      media: "audio",
      state,
      end_reason: null,
      started_at: T,
      ring_deadline: T + 60_000,
      connected_at: state === "connected" ? T + 1000 : null,
      ended_at: null,
      remote_ringing: false,
    });
    const m = fromViews([view("a", "connected"), view("b", "incoming-ringing")]);
    expect(dockCall(m)?.id).toBe("a");
    expect(incomingStack(m)[0]?.stacked).toBe(true);
  });
});

describe("words", () => {
  const entry = { remote_name: "Ada", direction: "outgoing" as const, by_name: null };
  it("explains every end reason from this side", () => {
    expect(endReasonText("hangup-local", entry)).toBe("You hung up.");
    expect(endReasonText("hangup-remote", entry)).toBe("Ada hung up.");
    expect(endReasonText("declined", entry)).toBe("Ada declined the call.");
    expect(endReasonText("declined", { ...entry, direction: "incoming" })).toBe("You declined the call.");
    expect(endReasonText("declined", { ...entry, by_name: "Ada's phone" })).toBe("Ada's phone declined the call.");
    expect(endReasonText("busy", entry)).toBe("Ada is busy in another call.");
    expect(endReasonText("missed", entry)).toBe("Ada did not answer.");
    expect(endReasonText("accepted-elsewhere", entry)).toBe("Answered on another device.");
    expect(endReasonText("failed(ice)", entry)).toMatch(/network connection/);
    expect(endReasonText("timeout-reconnect", entry)).toMatch(/did not come back/);
  });
  it("announces states", () => {
    let m = run(EMPTY, incoming("a", "ada"));
    expect(announcement(m.calls["a"]!)).toMatch(/^Incoming call from ADA/);
    m = applyEvent(markAccepted(m, "a", "audio"), { type: "state_changed", call_id: "a", state: "reconnecting" }, T);
    expect(announcement(m.calls["a"]!)).toBe("Connection to ADA lost. Reconnecting.");
  });
});
