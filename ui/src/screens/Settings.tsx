// Settings, in a modal dialog: server, name, audio processing, devices, ringer, theme.
// Nothing here is a credential: the session lives in the system keychain.

import { useState } from "preact/hooks";
import type { AppState, Settings as SettingsT, Theme } from "../ipc";
import { DeviceSelect } from "../components/DeviceSelect";
import { Modal } from "../components/Modal";
import { ProblemView } from "../components/Problem";
import { serverUrlProblem, userIdProblem, type Problem } from "../logic/errors";
import type { Model, Store } from "../store";

const KEYCHAIN_TEXT: Record<AppState["keychain"], string> = {
  ok: "Your session is kept in the system keychain.",
  locked: "The system keychain is locked: unlock it so Calldock can keep your session.",
  unavailable: "No system keychain was found: Calldock signs in again at every start.",
};

export function SettingsDialog({ store, model, covered }: { store: Store; model: Model; covered?: boolean }) {
  const app = model.app;
  const [draft, setDraft] = useState<SettingsT | null>(app ? structuredClone(app.settings) : null);
  const [urlError, setUrlError] = useState<string | null>(null);
  const [userError, setUserError] = useState<string | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [ringerNote, setRingerNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (!app || !draft) return null;

  const update = (patch: Partial<SettingsT>) => setDraft({ ...draft, ...patch });
  const url = draft.server.kind === "url" ? draft.server.url : "";

  const save = async (e: Event) => {
    e.preventDefault();
    const badUrl = draft.server.kind === "url" ? serverUrlProblem(draft.server.url) : null;
    const badUser = userIdProblem(draft.user_id);
    setUrlError(badUrl);
    setUserError(badUser);
    if (badUrl) return document.getElementById("settings-url")?.focus();
    if (badUser) return document.getElementById("settings-user")?.focus();
    setBusy(true);
    const p = await store.saveSettings({
      ...draft,
      display_name: draft.display_name.trim(),
      user_id: draft.user_id.trim(),
      server: draft.server.kind === "url" ? { kind: "url", url: draft.server.url.trim() } : draft.server,
    });
    setBusy(false);
    setProblem(p);
  };

  return (
    <Modal labelledBy="settings-title" onEscape={() => store.closeSettings()} class="settings" covered={covered}>
      <form onSubmit={save} noValidate>
        <div class="modal-head">
          <h2 id="settings-title">Settings</h2>
        </div>
        <div class="modal-body">
          <fieldset>
            <legend>Server</legend>
            <label class="choice">
              <input
                type="radio"
                name="settings-server"
                checked={draft.server.kind === "built_in"}
                onChange={() => update({ server: { kind: "built_in" } })}
              />
              <span>
                Built-in server
                {app.built_in_server_url && <span class="hint"> (running at {app.built_in_server_url})</span>}
              </span>
            </label>
            <label class="choice">
              <input
                type="radio"
                name="settings-server"
                checked={draft.server.kind === "url"}
                onChange={() => update({ server: { kind: "url", url } })}
              />
              <span>A server on the network</span>
            </label>
            {draft.server.kind === "url" && (
              <div class="field">
                <label for="settings-url">Server address</label>
                <input
                  id="settings-url"
                  type="url"
                  value={url}
                  aria-invalid={urlError ? true : undefined}
                  aria-describedby={urlError ? "settings-url-error" : undefined}
                  onInput={(e) => update({ server: { kind: "url", url: (e.currentTarget as HTMLInputElement).value } })}
                />
                {urlError && (
                  <p id="settings-url-error" class="field-error">
                    {urlError}
                  </p>
                )}
              </div>
            )}
          </fieldset>
          <fieldset>
            <legend>You</legend>
            <div class="field">
              <label for="settings-name">Display name</label>
              <input
                id="settings-name"
                value={draft.display_name}
                onInput={(e) => update({ display_name: (e.currentTarget as HTMLInputElement).value })}
              />
            </div>
            <div class="field">
              <label for="settings-user">User name</label>
              <input
                id="settings-user"
                value={draft.user_id}
                spellcheck={false}
                aria-invalid={userError ? true : undefined}
                aria-describedby={userError ? "settings-user-error" : "settings-keychain"}
                onInput={(e) => update({ user_id: (e.currentTarget as HTMLInputElement).value })}
              />
              {userError && (
                <p id="settings-user-error" class="field-error">
                  {userError}
                </p>
              )}
            </div>
            <p id="settings-keychain" class={app.keychain === "ok" ? "hint" : "field-error"}>
              {KEYCHAIN_TEXT[app.keychain]}
            </p>
          </fieldset>
          <fieldset>
            <legend>Audio processing (applies from the next call)</legend>
            {(
              [
                ["echo_cancellation", "Echo cancellation"],
                ["noise_suppression", "Noise suppression"],
                ["gain_control", "Automatic gain control"],
              ] as const
            ).map(([key, label]) => (
              <label class="choice" key={key}>
                <input
                  type="checkbox"
                  checked={draft.processing[key]}
                  onChange={(e) =>
                    update({ processing: { ...draft.processing, [key]: (e.currentTarget as HTMLInputElement).checked } })
                  }
                />
                <span>{label}</span>
              </label>
            ))}
          </fieldset>
          <fieldset>
            <legend>Devices</legend>
            <DeviceSelect
              id="settings-mic"
              label="Microphone"
              direction="input"
              devices={model.devices.devices}
              value={draft.microphone}
              onChange={(d) => update({ microphone: d })}
            />
            <DeviceSelect
              id="settings-speaker"
              label="Speaker"
              direction="output"
              devices={model.devices.devices}
              value={draft.speaker}
              onChange={(d) => update({ speaker: d })}
            />
            <DeviceSelect
              id="settings-ringer"
              label="Ringer (where the ringtone plays)"
              direction="output"
              devices={model.devices.devices}
              value={draft.ringer.device}
              onChange={(d) => update({ ringer: { ...draft.ringer, device: d } })}
            />
            <div class="field">
              <label for="settings-volume">Ringer volume</label>
              <div class="inline">
                <input
                  id="settings-volume"
                  type="range"
                  min={0}
                  max={100}
                  step={5}
                  value={Math.round(draft.ringer.volume * 100)}
                  aria-valuetext={`${Math.round(draft.ringer.volume * 100)} percent`}
                  onInput={(e) =>
                    update({ ringer: { ...draft.ringer, volume: Number((e.currentTarget as HTMLInputElement).value) / 100 } })
                  }
                />
                <span aria-hidden="true">{Math.round(draft.ringer.volume * 100)} %</span>
                <button
                  type="button"
                  class="button small"
                  onClick={async () => {
                    const p = await store.testRinger(draft.ringer.device, draft.ringer.volume);
                    setRingerNote(p ? `${p.title} ${p.action}` : null);
                  }}
                >
                  Test ringtone
                </button>
              </div>
              {ringerNote && (
                <p class="field-error" role="alert">
                  {ringerNote}
                </p>
              )}
            </div>
          </fieldset>
          <fieldset>
            <legend>Appearance</legend>
            {(
              [
                ["system", "Same as the system"],
                ["light", "Light"],
                ["dark", "Dark"],
              ] as Array<[Theme, string]>
            ).map(([value, label]) => (
              <label class="choice" key={value}>
                <input type="radio" name="settings-theme" checked={draft.theme === value} onChange={() => update({ theme: value })} />
                <span>{label}</span>
              </label>
            ))}
          </fieldset>
          {problem && <ProblemView problem={problem} fixes={{ retry: () => void save(new Event("submit")) }} />}
        </div>
        <div class="modal-foot actions">
          <button type="submit" class="button primary" disabled={busy}>
            {busy ? "Saving…" : "Save"}
          </button>
          <button type="button" class="button" onClick={() => store.closeSettings()}>
            Cancel
          </button>
          <button type="button" class="button quiet push-right" onClick={() => void store.signOut()}>
            Sign out
          </button>
        </div>
      </form>
    </Modal>
  );
}
