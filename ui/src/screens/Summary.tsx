// The post-call summary.

import { Icon } from "../components/icons";
import { useScreenFocus } from "../components/hooks";
import { endReasonText, type CallEntry } from "../logic/calls";
import { averageMos, labelText, qualityOf } from "../logic/quality";
import { callElapsed, formatDuration, spokenDuration } from "../logic/time";
import type { Store } from "../store";

export function Summary({ store, call }: { store: Store; call: CallEntry }) {
  const back = useScreenFocus<HTMLButtonElement>();
  const name = call.remote_name || call.remote;
  const duration = callElapsed(call.connected_at, call.ended_at, call.ended_at ?? 0);
  const mos = averageMos(call.quality);
  const path = call.quality.lastPath;
  return (
    <main class="screen narrow" aria-labelledby="summary-title">
      <h1 id="summary-title">Call with {name} ended</h1>
      <p class="lead">{call.end_reason ? endReasonText(call.end_reason, call) : "The call ended."}</p>
      <dl class="summary">
        <div>
          <dt>Duration</dt>
          <dd aria-label={spokenDuration(duration)}>{call.connected_at !== null ? formatDuration(duration) : "Not connected"}</dd>
        </div>
        <div>
          <dt>Quality</dt>
          <dd>
            {mos === null
              ? "Not measured"
              : `${labelText(qualityOf(mos))} (average MOS ${mos.toFixed(2)}${
                  call.quality.worst ? `, lowest ${call.quality.worst}` : ""
                })`}
          </dd>
        </div>
        <div>
          <dt>Connection</dt>
          <dd>{path === "relay" ? "Relayed through a TURN server" : path === "direct" ? "Direct" : "Not known"}</dd>
        </div>
      </dl>
      <div class="actions">
        <button type="button" class="button primary" ref={back} onClick={() => store.dismissSummary()}>
          Back to contacts
        </button>
        <button
          type="button"
          class="button"
          onClick={() => {
            store.dismissSummary();
            store.openPreJoin({ user_id: call.remote, display_name: name, presence: "unknown", is_echo: false });
          }}
        >
          <Icon name="phone" />
          <span>Call {name} again</span>
        </button>
      </div>
    </main>
  );
}
