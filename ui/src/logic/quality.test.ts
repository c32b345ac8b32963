import { describe, expect, it } from "vitest";
import { stats } from "./testdata";
import { addSample, averageMos, badge, EMPTY_SUMMARY, pathOf, qualityOf, statRows } from "./quality";


describe("MOS labels (SPEC §5, Twilio's buckets)", () => {
  it.each([
    [4.5, "excellent"],
    [4.2, "excellent"],
    [4.19, "good"],
    [4.0, "good"],
    [3.99, "fair"],
    [3.6, "fair"],
    [3.59, "poor"],
    [3.0, "poor"],
    [2.99, "bad"],
    [1.0, "bad"],
  ] as const)("MOS %f is %s", (mos, label) => {
    expect(qualityOf(mos)).toBe(label);
  });
  it("NaN is bad, never a crash", () => {
    expect(qualityOf(Number.NaN)).toBe("bad");
  });
});

describe("quality badge", () => {
  it("says measuring before the first stats", () => {
    expect(badge(null)).toEqual({ label: null, text: "Measuring…", tone: "none", bars: 0 });
  });
  it("maps labels to tones and bars", () => {
    expect(badge(stats({ mos: 4.3 }))).toMatchObject({ label: "excellent", tone: "good", bars: 4 });
    expect(badge(stats({ mos: 4.1, quality: "good" }))).toMatchObject({ label: "good", tone: "good", bars: 3 });
    expect(badge(stats({ mos: 3.7, quality: "fair" }))).toMatchObject({ label: "fair", tone: "warn", bars: 2 });
    expect(badge(stats({ mos: 3.2, quality: "poor" }))).toMatchObject({ label: "poor", tone: "bad", bars: 1 });
    expect(badge(stats({ mos: 2.0, quality: "bad" }))).toMatchObject({ label: "bad", tone: "bad", bars: 0 });
  });
  it("trusts the MOS when the label disagrees", () => {
    expect(badge(stats({ mos: 3.1, quality: "excellent" })).label).toBe("poor");
  });
  it("falls back to the label when MOS is missing", () => {
    expect(badge(stats({ mos: Number.NaN, quality: "fair" })).label).toBe("fair");
  });
});

describe("path and popover", () => {
  it("is relay when either candidate is relay", () => {
    expect(pathOf(stats({ local_candidate: "relay" }))).toBe("relay");
    expect(pathOf(stats({ remote_candidate: "relay" }))).toBe("relay");
    expect(pathOf(stats({ local_candidate: "srflx", remote_candidate: "host" }))).toBe("direct");
    expect(pathOf(stats({ local_candidate: null }))).toBe("unknown");
    expect(pathOf(null)).toBe("unknown");
  });
  it("lists RTT, jitter, loss, MOS and path", () => {
    const rows = statRows(stats({ rtt_ms: 42.4, jitter_ms: 3.25, loss_percent: 1.5, mos: 4.05, local_candidate: "relay" }));
    const byName = Object.fromEntries(rows.map((r) => [r.name, r.value]));
    expect(byName["Round trip"]).toBe("42 ms");
    expect(byName["Jitter"]).toBe("3.3 ms");
    expect(byName["Packet loss"]).toBe("1.5 % received · 0.0 % sent");
    expect(byName["Loss protection"]).toBe("Off (no loss reported)");
    expect(byName["MOS"]).toBe("4.05 (Good)");
    expect(byName["Path"]).toBe("Relayed (TURN)");
    expect(byName["Video"], "no video row in an audio call").toBeUndefined();
  });
  it("shows the other side's view of our loss once it has reported, and the FEC it led to", () => {
    const rows = statRows(stats({ loss_percent: 0.4, sent_loss_percent: 6.25, fec_percent: 5 }));
    const byName = Object.fromEntries(rows.map((r) => [r.name, r.value]));
    expect(byName["Packet loss"]).toBe("0.4 % received · 6.3 % sent");
    expect(byName["Loss protection"]).toBe("FEC for up to 5 % loss");
    const early = statRows(stats({ loss_percent: 0, sent_loss_percent: null }));
    expect(early.find((r) => r.name === "Packet loss")?.value).toBe("0.0 % received");
  });
  it("shows a video call's pictures both ways", () => {
    const video = {
      sent_fps: 30,
      sent_width: 640,
      sent_height: 480,
      received_fps: 29.6,
      received_width: 640,
      received_height: 480,
      undecodable_frames: 0,
      camera_off: false,
      estimate_kbps: 900,
      limit_kbps: null,
      target_kbps: 700,
      paused_for_bandwidth: false,
    };
    const row = (patch: Partial<typeof video>) =>
      statRows(stats({ video: { ...video, ...patch } })).find((r) => r.name === "Video")?.value;
    expect(row({})).toBe("30 fps at 640×480 received · 30 fps at 640×480 sent, 700 kbps");
    // A narrow path: a smaller picture, fewer frames.
    expect(row({ sent_fps: 15, sent_width: 320, sent_height: 240, target_kbps: 120 })).toBe(
      "30 fps at 640×480 received · 15 fps at 320×240 sent, 120 kbps",
    );
    expect(row({ sent_fps: 0, sent_width: 0, sent_height: 0 })).toBe("30 fps at 640×480 received · none sent yet");
    expect(row({ received_width: 0, received_height: 0, camera_off: true })).toBe("none received yet · camera off");
    expect(row({ undecodable_frames: 3 })).toBe("30 fps at 640×480 received · 30 fps at 640×480 sent, 700 kbps · 3 frames lost");
    expect(row({ paused_for_bandwidth: true, sent_fps: 0 })).toBe(
      "30 fps at 640×480 received · paused: the connection cannot carry video",
    );
  });
  it("says when RTT is not measured yet", () => {
    const rows = statRows(stats({ rtt_ms: null }));
    expect(rows.find((r) => r.name === "Round trip")?.value).toBe("Not measured yet");
  });
});

describe("quality summary", () => {
  it("averages MOS and keeps the worst label", () => {
    let s = EMPTY_SUMMARY;
    s = addSample(s, stats({ mos: 4.4 }));
    s = addSample(s, stats({ mos: 3.2, local_candidate: "relay" }));
    s = addSample(s, stats({ mos: 4.1 }));
    expect(averageMos(s)).toBeCloseTo(3.9, 5);
    expect(s.worst).toBe("poor");
    expect(s.lastPath).toBe("direct");
    expect(averageMos(EMPTY_SUMMARY)).toBeNull();
  });
});
