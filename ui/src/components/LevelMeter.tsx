// The live microphone level: a bar from −60 to 0 dBFS with a spoken value.

import type { MicLevel } from "../ipc";

const FLOOR = -60;

export function levelPercent(dbfs: number): number {
  if (!Number.isFinite(dbfs)) return 0;
  return Math.round(Math.min(1, Math.max(0, (dbfs - FLOOR) / -FLOOR)) * 100);
}

export function levelWords(level: MicLevel | null): string {
  if (!level) return "No signal yet";
  if (level.clipping) return "Too loud: clipping";
  if (level.level_dbfs < -50) return "Silent: check that the microphone is not muted";
  if (level.level_dbfs < -35) return "Quiet";
  return "Good level";
}

export function LevelMeter({ level, label }: { level: MicLevel | null; label: string }) {
  const pct = levelPercent(level?.level_dbfs ?? FLOOR);
  const words = levelWords(level);
  const db = level ? `${Math.round(level.level_dbfs)} dBFS` : "";
  return (
    <div class="meter-wrap">
      <div
        class={`meter ${level?.clipping ? "clipping" : ""}`}
        role="meter"
        aria-label={label}
        aria-valuemin={FLOOR}
        aria-valuemax={0}
        aria-valuenow={level ? Math.round(Math.max(FLOOR, level.level_dbfs)) : FLOOR}
        aria-valuetext={db ? `${db}, ${words}` : words}
      >
        <div class="meter-fill" style={{ "--level": `${pct}%` }} />
      </div>
      <p class="meter-text">
        {words}
        {db && <span class="muted"> · {db}</span>}
      </p>
    </div>
  );
}
