// Contacts and recent calls, with missed calls flagged.

import { useState } from "preact/hooks";
import type { Contact, RecentCall } from "../ipc";
import { Icon } from "../components/icons";
import { ProblemView, type FixHandlers } from "../components/Problem";
import { useScreenFocus } from "../components/hooks";
import { userIdProblem } from "../logic/errors";
import { formatDuration, whenText } from "../logic/time";
import type { Model, Store } from "../store";

const PRESENCE: Record<Contact["presence"], string> = {
  online: "Online",
  offline: "Offline",
  busy: "In a call",
  unknown: "",
};

export function recentText(r: RecentCall): string {
  if (r.missed) return "Missed call";
  switch (r.end_reason) {
    case "declined":
      return r.direction === "incoming" ? "Declined" : "Not answered (declined)";
    case "busy":
      return "Busy";
    case "missed":
      return r.direction === "incoming" ? "Missed call" : "No answer";
    case "canceled":
      return r.direction === "incoming" ? "Caller hung up" : "Canceled";
    case "failed":
      return "Call failed";
    case "accepted-elsewhere":
      return "Answered on another device";
    case "declined-elsewhere":
      return "Declined on another device";
    default:
      if (r.answered_at !== null && r.ended_at !== null) return formatDuration(r.ended_at - r.answered_at);
      return r.direction === "incoming" ? "Incoming" : "Outgoing";
  }
}

export function Home({ store, model, fixes }: { store: Store; model: Model; fixes: FixHandlers }) {
  const heading = useScreenFocus<HTMLHeadingElement>();
  const missed = model.recents.filter((r) => r.missed).length;
  const contactFor = (r: RecentCall): Contact =>
    model.contacts.find((c) => c.user_id === r.remote) ?? {
      user_id: r.remote,
      display_name: r.remote_name,
      presence: "unknown",
      is_echo: false,
    };
  return (
    <main class="screen" aria-labelledby="home-title">
      <h1 id="home-title" tabIndex={-1} ref={heading} class="visually-hidden">
        Contacts and recent calls
      </h1>
      <div class="columns">
        <section aria-labelledby="contacts-title" class="panel">
          <h2 id="contacts-title">Contacts</h2>
          {model.contactsError && <ProblemView problem={model.contactsError} fixes={fixes} live="status" />}
          {model.contacts.length === 0 && !model.contactsError && <p class="muted">No contacts yet.</p>}
          <ul class="list" aria-label="Contacts">
            {model.contacts.map((c) => (
              <li key={c.user_id} class="row">
                <span class={`presence p-${c.presence}`} aria-hidden="true" />
                <span class="row-main">
                  <span class="row-title">{c.display_name}</span>
                  <span class="row-sub">
                    {c.is_echo ? "Test call: hear yourself back" : `@${c.user_id}`}
                    {PRESENCE[c.presence] && ` · ${PRESENCE[c.presence]}`}
                  </span>
                </span>
                <button type="button" class="button small" onClick={() => store.openPreJoin(c)} aria-label={`Call ${c.display_name}`}>
                  <Icon name="phone" />
                  <span>Call</span>
                </button>
              </li>
            ))}
          </ul>
          <AddContact store={store} />
        </section>
        <section aria-labelledby="recents-title" class="panel">
          <h2 id="recents-title">
            Recent calls
            {missed > 0 && (
              <span class="count missed-count">
                {missed} missed
              </span>
            )}
          </h2>
          {model.recentsError && <ProblemView problem={model.recentsError} fixes={fixes} live="status" />}
          {model.recents.length === 0 && !model.recentsError && <p class="muted">No calls yet. Try the Echo test.</p>}
          <ul class="list" aria-label="Recent calls">
            {model.recents.map((r) => (
              <li key={r.call_id} class={`row ${r.missed ? "missed" : ""}`} data-call-id={r.call_id}>
                <Icon name={r.missed ? "missed" : r.direction === "incoming" ? "incoming" : "outgoing"} class="row-icon" />
                <span class="row-main">
                  <span class="row-title">{r.remote_name}</span>
                  <span class="row-sub">
                    {r.missed && <strong class="tag-missed">Missed call</strong>}
                    {r.missed ? " · " : ""}
                    {r.direction === "incoming" ? "Incoming" : "Outgoing"} {r.media === "video" ? "video" : "audio"} ·{" "}
                    {whenText(r.started_at, model.now)}
                    {r.missed ? "" : ` · ${recentText(r)}`}
                  </span>
                </span>
                <button
                  type="button"
                  class="button small"
                  onClick={() => store.openPreJoin(contactFor(r))}
                  aria-label={`Call back ${r.remote_name}`}
                >
                  <Icon name="phone" />
                  <span>Call back</span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      </div>
    </main>
  );
}

function AddContact({ store }: { store: Store }) {
  const [open, setOpen] = useState(false);
  const [user, setUser] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  if (!open) {
    return (
      <button type="button" class="button quiet" onClick={() => setOpen(true)} aria-expanded={false}>
        Add a contact
      </button>
    );
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    const bad = userIdProblem(user);
    if (bad) {
      setError(bad);
      return;
    }
    const problem = await store.addContact(user.trim(), name.trim() || user.trim());
    if (problem) setError(`${problem.title} ${problem.action}`);
    else {
      setOpen(false);
      setUser("");
      setName("");
      setError(null);
    }
  };
  return (
    <form class="add-contact" onSubmit={submit} noValidate aria-label="Add a contact">
      <div class="field">
        <label for="new-contact-id">User name</label>
        <input
          id="new-contact-id"
          value={user}
          spellcheck={false}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "new-contact-error" : undefined}
          onInput={(e) => setUser((e.currentTarget as HTMLInputElement).value)}
        />
      </div>
      <div class="field">
        <label for="new-contact-name">Name (optional)</label>
        <input id="new-contact-name" value={name} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />
      </div>
      {error && (
        <p id="new-contact-error" class="field-error">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="button">
          Add
        </button>
        <button type="button" class="button quiet" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
