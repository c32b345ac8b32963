// Incoming calls: a modal stack of cards, oldest first, each with its countdown to the ring
// deadline. Enter accepts and Escape declines the card that has focus (else the first).

import { Icon } from "../components/icons";
import { Modal } from "../components/Modal";
import type { CallEntry } from "../logic/calls";
import { countdownText, ringFraction, secondsLeft } from "../logic/time";
import type { Store } from "../store";

export function IncomingDialog({ store, calls, now, covered }: { store: Store; calls: CallEntry[]; now: number; covered?: boolean }) {
  const title = calls.length === 1 ? "Incoming call" : `${calls.length} incoming calls`;
  return (
    <Modal labelledBy="incoming-title" role="alertdialog" initialFocus=".accept-audio" class="incoming" covered={covered}>
      <h2 id="incoming-title">{title}</h2>
      <ol class="incoming-stack">
        {calls.map((c, i) => (
          <IncomingCard key={c.id} store={store} call={c} now={now} first={i === 0} />
        ))}
      </ol>
    </Modal>
  );
}

function IncomingCard({ store, call, now, first }: { store: Store; call: CallEntry; now: number; first: boolean }) {
  const name = call.remote_name || call.remote;
  const left = call.ring_deadline === null ? 0 : secondsLeft(call.ring_deadline, now);
  const fraction = call.ring_deadline === null ? 0 : ringFraction(call.ring_deadline, now);
  const id = `incoming-${call.id}`;
  return (
    <li class="incoming-card" data-call-id={call.id} aria-labelledby={`${id}-name`} aria-describedby={`${id}-what`}>
      <p class="caller" id={`${id}-name`}>
        {name}
      </p>
      <p class="muted" id={`${id}-what`}>
        {call.media === "video" ? "Video call" : "Audio call"} from @{call.remote}
      </p>
      {call.stacked && <p class="stacked-note">You are in a call: answering ends it, declining tells the caller you are busy.</p>}
      <div class="countdown">
        <span role="timer" class="countdown-text" aria-label={`${left} seconds left to answer`}>
          {countdownText(left)}
        </span>
        <span class="countdown-bar" aria-hidden="true">
          <span class="countdown-fill" style={{ "--fraction": String(fraction) }} />
        </span>
      </div>
      <div class="actions">
        <button
          type="button"
          class={`button primary ${first ? "accept-audio" : ""}`}
          aria-keyshortcuts={first ? "Enter" : undefined}
          onClick={() => void store.accept(call.id, "audio")}
          aria-label={`Accept call from ${name} with audio`}
        >
          <Icon name="phone" />
          <span>Accept</span>
        </button>
        <button
          type="button"
          class="button"
          onClick={() => void store.accept(call.id, "video")}
          aria-label={`Accept call from ${name} with video`}
        >
          <Icon name="video" />
          <span>Video</span>
        </button>
        <button
          type="button"
          class="button danger"
          aria-keyshortcuts={first ? "Escape" : undefined}
          onClick={() => void store.decline(call.id)}
          aria-label={`Decline call from ${name}`}
        >
          <Icon name="hangup" />
          <span>Decline</span>
        </button>
      </div>
    </li>
  );
}
