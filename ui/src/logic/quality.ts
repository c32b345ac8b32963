// The quality badge: SPEC §5's MOS labels (Twilio's buckets) and the stats popover's rows.

import type { CallStats, QualityLabel } from "../ipc";

/** The label for a MOS, as calldock_media::quality::QualityLabel::of decides it. */
export function qualityOf(mos: number): QualityLabel {
  if (!Number.isFinite(mos)) return "bad";
  if (mos >= 4.2) return "excellent";
  if (mos >= 4.0) return "good";
  if (mos >= 3.6) return "fair";
  if (mos >= 3.0) return "poor";
  return "bad";
}

export type Tone = "good" | "warn" | "bad" | "none";

export interface Badge {
  label: QualityLabel | null;
  /** "Excellent", or "Measuring…" before the first stats. */
  text: string;
  tone: Tone;
  /** Signal bars, 0 … 4 (excellent 4, good 3, fair 2, poor 1, bad 0). */
  bars: number;
}

const BARS: Record<QualityLabel, number> = { excellent: 4, good: 3, fair: 2, poor: 1, bad: 0 };
const TONE: Record<QualityLabel, Tone> = { excellent: "good", good: "good", fair: "warn", poor: "bad", bad: "bad" };

export function labelText(label: QualityLabel): string {
  return label.charAt(0).toUpperCase() + label.slice(1);
}

/**
 * The badge for the latest stats. The shell sends the engine's label; the badge trusts the MOS
 * when both are present and disagree (the label is derived from it), so the thresholds hold.
 */
export function badge(stats: CallStats | null): Badge {
  if (!stats) return { label: null, text: "Measuring…", tone: "none", bars: 0 };
  const label = Number.isFinite(stats.mos) ? qualityOf(stats.mos) : stats.quality;
  return { label, text: labelText(label), tone: TONE[label], bars: BARS[label] };
}

export type Path = "direct" | "relay" | "unknown";

/** Relay when either side's candidate is a TURN relay; direct once both are known otherwise. */
export function pathOf(stats: CallStats | null): Path {
  if (!stats) return "unknown";
  if (stats.local_candidate === "relay" || stats.remote_candidate === "relay") return "relay";
  if (stats.local_candidate && stats.remote_candidate) return "direct";
  return "unknown";
}

export interface StatRow {
  name: string;
  value: string;
}

const num = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : "–");

/** The popover's rows: RTT, jitter, loss both ways, loss protection, MOS, path, codec, bitrate. */
export function statRows(stats: CallStats | null): StatRow[] {
  if (!stats) return [{ name: "Status", value: "Waiting for the first measurement" }];
  const path = pathOf(stats);
  const pathText =
    path === "relay"
      ? "Relayed (TURN)"
      : path === "direct"
        ? `Direct (${stats.local_candidate} → ${stats.remote_candidate})`
        : "Not known yet";
  return [
    { name: "Round trip", value: stats.rtt_ms === null ? "Not measured yet" : `${num(stats.rtt_ms, 0)} ms` },
    { name: "Jitter", value: `${num(stats.jitter_ms, 1)} ms` },
    {
      name: "Packet loss",
      value:
        `${num(stats.loss_percent, 1)} % received` +
        (stats.sent_loss_percent === null ? "" : ` · ${num(stats.sent_loss_percent, 1)} % sent`),
    },
    {
      name: "Loss protection",
      value: stats.fec_percent > 0 ? `FEC for up to ${stats.fec_percent} % loss` : "Off (no loss reported)",
    },
    { name: "MOS", value: `${num(stats.mos, 2)} (${labelText(qualityOf(stats.mos))})` },
    { name: "Path", value: pathText },
    { name: "Codec", value: stats.codec ?? "–" },
    { name: "Bitrate", value: `${num(stats.send_kbps, 0)} kbps up, ${num(stats.receive_kbps, 0)} kbps down` },
    ...(stats.video ? [videoRow(stats.video)] : []),
  ];
}

function videoRow(v: NonNullable<CallStats["video"]>): StatRow {
  const received =
    v.received_width > 0 ? `${num(v.received_fps, 0)} fps at ${v.received_width}×${v.received_height} received` : "none received yet";
  const sent = v.camera_off
    ? "camera off"
    : v.paused_for_bandwidth
      ? "paused: the connection cannot carry video"
      : v.sent_width > 0
        ? `${num(v.sent_fps, 0)} fps at ${v.sent_width}×${v.sent_height} sent, ${v.target_kbps} kbps`
        : "none sent yet";
  const broken = v.undecodable_frames > 0 ? ` · ${v.undecodable_frames} frames lost` : "";
  return { name: "Video", value: `${received} · ${sent}${broken}` };
}

/** Running summary of a call's quality, for the post-call screen. */
export interface QualitySummary {
  samples: number;
  mosSum: number;
  worst: QualityLabel | null;
  lastPath: Path;
}

export const EMPTY_SUMMARY: QualitySummary = { samples: 0, mosSum: 0, worst: null, lastPath: "unknown" };

export function addSample(summary: QualitySummary, stats: CallStats): QualitySummary {
  if (!Number.isFinite(stats.mos)) return summary;
  const label = qualityOf(stats.mos);
  const worst = summary.worst === null || BARS[label] < BARS[summary.worst] ? label : summary.worst;
  const path = pathOf(stats);
  return {
    samples: summary.samples + 1,
    mosSum: summary.mosSum + stats.mos,
    worst,
    lastPath: path === "unknown" ? summary.lastPath : path,
  };
}

export function averageMos(summary: QualitySummary): number | null {
  return summary.samples > 0 ? summary.mosSum / summary.samples : null;
}
