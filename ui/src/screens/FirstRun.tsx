// First run: the built-in server or a server URL, and the user's name.

import { useState } from "preact/hooks";
import type { Settings } from "../ipc";
import { serverUrlProblem, suggestUserId, userIdProblem, type Problem } from "../logic/errors";
import { ProblemView } from "../components/Problem";
import { useScreenFocus } from "../components/hooks";
import type { Store } from "../store";

export function FirstRun({ store, settings }: { store: Store; settings: Settings }) {
  const heading = useScreenFocus<HTMLHeadingElement>();
  const [builtIn, setBuiltIn] = useState(settings.server.kind === "built_in");
  const [url, setUrl] = useState(settings.server.kind === "url" ? settings.server.url : "");
  const [name, setName] = useState(settings.display_name);
  const [userId, setUserId] = useState(settings.user_id);
  const [userIdTouched, setUserIdTouched] = useState(settings.user_id !== "");
  const [errors, setErrors] = useState<{ url?: string; name?: string; user?: string }>({});
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const next = {
      url: builtIn ? undefined : (serverUrlProblem(url) ?? undefined),
      name: name.trim() ? undefined : "Enter the name others see when you call them.",
      user: userIdProblem(userId) ?? undefined,
    };
    setErrors(next);
    const firstBad = next.url ? "server-url" : next.name ? "display-name" : next.user ? "user-id" : null;
    if (firstBad) {
      document.getElementById(firstBad)?.focus();
      return;
    }
    setBusy(true);
    const problem = await store.saveSettings({
      ...settings,
      server: builtIn ? { kind: "built_in" } : { kind: "url", url: url.trim() },
      display_name: name.trim(),
      user_id: userId.trim(),
    });
    setBusy(false);
    setProblem(problem);
    if (problem?.fix === "settings" && !builtIn) {
      setErrors({ url: problem.title + " " + problem.action });
      document.getElementById("server-url")?.focus();
    }
  };

  return (
    <main class="screen narrow" aria-labelledby="first-run-title">
      <h1 id="first-run-title" tabIndex={-1} ref={heading}>
        Welcome to Calldock
      </h1>
      <p class="lead">Two questions and you can make your first call.</p>
      <form onSubmit={submit} noValidate>
        <fieldset>
          <legend>Which server should Calldock use?</legend>
          <label class="choice">
            <input type="radio" name="server" checked={builtIn} onChange={() => setBuiltIn(true)} />
            <span>
              <strong>The built-in server</strong>
              <span class="hint">Runs on this computer. An "Echo test" contact answers every call.</span>
            </span>
          </label>
          <label class="choice">
            <input type="radio" name="server" checked={!builtIn} onChange={() => setBuiltIn(false)} />
            <span>
              <strong>A server on the network</strong>
              <span class="hint">Ask whoever runs it for the address.</span>
            </span>
          </label>
          {!builtIn && (
            <div class="field">
              <label for="server-url">Server address</label>
              <input
                id="server-url"
                type="url"
                inputMode="url"
                autoComplete="url"
                placeholder="https://calls.example.com"
                value={url}
                aria-invalid={errors.url ? true : undefined}
                aria-describedby={errors.url ? "server-url-error" : "server-url-hint"}
                onInput={(e) => setUrl((e.currentTarget as HTMLInputElement).value)}
              />
              {errors.url ? (
                <p id="server-url-error" class="field-error">
                  {errors.url}
                </p>
              ) : (
                <p id="server-url-hint" class="hint">
                  For example http://192.168.1.20:7878
                </p>
              )}
            </div>
          )}
        </fieldset>
        <div class="field">
          <label for="display-name">Your name</label>
          <input
            id="display-name"
            autoComplete="name"
            value={name}
            aria-invalid={errors.name ? true : undefined}
            aria-describedby={errors.name ? "display-name-error" : undefined}
            onInput={(e) => {
              const v = (e.currentTarget as HTMLInputElement).value;
              setName(v);
              if (!userIdTouched) setUserId(suggestUserId(v));
            }}
          />
          {errors.name && (
            <p id="display-name-error" class="field-error">
              {errors.name}
            </p>
          )}
        </div>
        <div class="field">
          <label for="user-id">User name (how others call you)</label>
          <input
            id="user-id"
            autoComplete="username"
            spellcheck={false}
            value={userId}
            aria-invalid={errors.user ? true : undefined}
            aria-describedby={errors.user ? "user-id-error" : "user-id-hint"}
            onInput={(e) => {
              setUserIdTouched(true);
              setUserId((e.currentTarget as HTMLInputElement).value);
            }}
          />
          {errors.user ? (
            <p id="user-id-error" class="field-error">
              {errors.user}
            </p>
          ) : (
            <p id="user-id-hint" class="hint">
              Letters, digits, dots and dashes. Your sign-in is kept in the system keychain, never in a file.
            </p>
          )}
        </div>
        {problem && <ProblemView problem={problem} fixes={{ retry: () => void submit(new Event("submit")) }} />}
        <div class="actions">
          <button type="submit" class="button primary" disabled={busy}>
            {busy ? "Saving…" : "Start using Calldock"}
          </button>
        </div>
      </form>
    </main>
  );
}
