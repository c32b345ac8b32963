// The quality badge: a button with the MOS label and signal bars; it opens a popover with RTT,
// jitter, loss, MOS and the path (direct or relay). Escape closes it and returns focus.

import { useRef, useState } from "preact/hooks";
import type { CallStats } from "../ipc";
import { badge, statRows } from "../logic/quality";

export function QualityBadge({ stats }: { stats: CallStats | null }) {
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const b = badge(stats);
  const rows = statRows(stats);
  const close = () => {
    setOpen(false);
    button.current?.focus();
  };
  return (
    <div class="badge-wrap">
      <button
        ref={button}
        type="button"
        class={`badge tone-${b.tone}`}
        aria-expanded={open}
        aria-controls="quality-popover"
        onClick={() => setOpen(!open)}
        onKeyDown={(e) => {
          if (e.key === "Escape" && open) {
            e.stopPropagation();
            close();
          }
        }}
      >
        <span class="bars" aria-hidden="true">
          {[1, 2, 3, 4].map((i) => (
            <span key={i} class={i <= b.bars ? "bar on" : "bar"} />
          ))}
        </span>
        <span>Quality: {b.text}</span>
      </button>
      {open && (
        <div
          id="quality-popover"
          class="popover"
          role="region"
          aria-label="Call quality details"
          onKeyDown={(e) => {
            if (e.key === "Escape") {
              e.stopPropagation();
              close();
            }
          }}
        >
          <dl class="stats">
            {rows.map((r) => (
              <div key={r.name} class="stat">
                <dt>{r.name}</dt>
                <dd>{r.value}</dd>
              </div>
            ))}
          </dl>
        </div>
      )}
    </div>
  );
}
