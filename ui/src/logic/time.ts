// Countdown to a ring deadline and the in-call timer: pure functions of the time they are given.

/** How long an incoming call rings (SPEC §2); the countdown never shows more. */
export const RING_SECONDS = 60;

/** Whole seconds until the ring deadline, rounded up and clamped to 0 … 60. */
export function secondsLeft(deadline: number, now: number): number {
  const left = Math.ceil((deadline - now) / 1000);
  if (!Number.isFinite(left)) return 0;
  return Math.min(RING_SECONDS, Math.max(0, left));
}

/** The share of the ring time left, 0 … 1, for a progress bar. */
export function ringFraction(deadline: number, now: number): number {
  return secondsLeft(deadline, now) / RING_SECONDS;
}

/** "Rings 42 s more" / "Stops ringing now". */
export function countdownText(seconds: number): string {
  return seconds > 0 ? `${seconds} s left to answer` : "Stops ringing now";
}

/** 0:05, 12:34, 1:02:03. Negative or non-finite durations count as zero. */
export function formatDuration(ms: number): string {
  const total = Number.isFinite(ms) && ms > 0 ? Math.floor(ms / 1000) : 0;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** "1 minute 5 seconds", for screen readers (the timer's visible text is 1:05). */
export function spokenDuration(ms: number): string {
  const total = Number.isFinite(ms) && ms > 0 ? Math.floor(ms / 1000) : 0;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const part = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"}`;
  const parts: string[] = [];
  if (h) parts.push(part(h, "hour"));
  if (m) parts.push(part(m, "minute"));
  if (s || parts.length === 0) parts.push(part(s, "second"));
  return parts.join(" ");
}

/** The call timer: from when media first connected to the end (or now). */
export function callElapsed(connectedAt: number | null, endedAt: number | null, now: number): number {
  if (connectedAt === null) return 0;
  return Math.max(0, (endedAt ?? now) - connectedAt);
}

/** "Today 14:03", "Yesterday 09:12", or a short date, in the user's locale. */
export function whenText(at: number, now: number, locale?: string): string {
  const d = new Date(at);
  const today = new Date(now);
  const time = d.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  const dayStart = (x: Date) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((dayStart(today) - dayStart(d)) / 86_400_000);
  if (days === 0) return `Today ${time}`;
  if (days === 1) return `Yesterday ${time}`;
  return `${d.toLocaleDateString(locale, { day: "numeric", month: "short" })} ${time}`;
}
