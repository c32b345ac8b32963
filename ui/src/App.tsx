// The window: header, connection banner, messages, the current screen, dialogs on top, the
// live regions, and the keyboard shortcuts.

import { Component, type ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
import { Icon } from "./components/icons";
import { LiveRegions } from "./components/LiveRegion";
import { ProblemView, type FixHandlers } from "./components/Problem";
import { useModel } from "./components/hooks";
import { dockCall, incomingStack, summaryCall } from "./logic/calls";
import { signalingBanner } from "./logic/errors";
import { keyAction, targetKind, type Key } from "./logic/keyboard";
import { FirstRun } from "./screens/FirstRun";
import { Home } from "./screens/Home";
import { InCall } from "./screens/InCall";
import { IncomingDialog } from "./screens/Incoming";
import { PreJoin } from "./screens/PreJoin";
import { SettingsDialog } from "./screens/Settings";
import { Summary } from "./screens/Summary";
import type { AppState } from "./ipc";
import type { Store } from "./store";

export function App({ store }: { store: Store }) {
  const model = useModel(store);
  const incoming = incomingStack(model.calls);
  const dock = dockCall(model.calls);
  const summary = dock ? null : summaryCall(model.calls);
  const ticking = incoming.length > 0 || dock !== null;

  useEffect(() => {
    if (!ticking) return;
    store.tick();
    const timer = setInterval(() => store.tick(), 250);
    return () => clearInterval(timer);
  }, [ticking]);

  useEffect(() => {
    const handle = (e: KeyboardEvent) => {
      const m = store.model;
      const stack = incomingStack(m.calls);
      const current = dockCall(m.calls);
      const key: Key = {
        type: e.type === "keyup" ? "keyup" : "keydown",
        key: e.key,
        repeat: e.repeat,
        ctrlKey: e.ctrlKey,
        altKey: e.altKey,
        metaKey: e.metaKey,
      };
      const action = keyAction(key, {
        incoming: stack.length > 0,
        inCall: current !== null && current.state !== "outgoing-ringing",
        muted: m.muted,
        talking: m.talking,
        otherDialog: m.settingsOpen && stack.length === 0,
        target: targetKind(document.activeElement),
      });
      if (!action) return;
      e.preventDefault();
      const focusedCard = document.activeElement?.closest<HTMLElement>(".incoming-card")?.dataset["callId"];
      const target = stack.find((c) => c.id === focusedCard) ?? stack[0];
      switch (action.kind) {
        case "accept":
          if (target) void store.accept(target.id, "audio");
          break;
        case "decline":
          if (target) void store.decline(target.id);
          break;
        case "toggle-mute":
          void store.toggleMute();
          break;
        case "toggle-video":
          void store.toggleVideo();
          break;
        case "talk-start":
          void store.talkStart();
          break;
        case "talk-stop":
          void store.talkStop();
          break;
      }
    };
    document.addEventListener("keydown", handle);
    document.addEventListener("keyup", handle);
    return () => {
      document.removeEventListener("keydown", handle);
      document.removeEventListener("keyup", handle);
    };
  }, [store]);

  const fixes: FixHandlers = {
    sign_in: () => void store.signIn(),
    settings: () => store.openSettings(),
    retry: () => void store.refreshLists(),
    devices: () => (dockCall(store.model.calls) ? store.setDockDevices(true) : store.openPreJoin(null)),
    reload: () => location.reload(),
  };

  if (model.boot === "loading") {
    return (
      <main class="screen narrow" aria-busy="true">
        <h1 class="boot">Starting Calldock…</h1>
      </main>
    );
  }
  if (model.boot === "failed" || !model.app) {
    return (
      <main class="screen narrow" aria-labelledby="boot-title">
        <h1 id="boot-title">Calldock could not start</h1>
        {model.bootError && (
          <ProblemView problem={model.bootError} fixes={{ retry: () => void store.boot(), reload: () => location.reload() }} />
        )}
        <div class="actions">
          <button type="button" class="button primary" onClick={() => void store.boot()}>
            Try again
          </button>
        </div>
      </main>
    );
  }

  const app = model.app;
  const banner = app.first_run ? null : signalingBanner(app.signaling);
  const modalOpen = incoming.length > 0 || model.settingsOpen;
  let screen: ComponentChildren;
  if (app.first_run) screen = <FirstRun store={store} settings={app.settings} />;
  else if (dock) screen = <InCall key={dock.id} store={store} model={model} call={dock} />;
  else if (summary) screen = <Summary key={summary.id} store={store} call={summary} />;
  else if (model.screen.name === "prejoin")
    screen = <PreJoin key={model.screen.contact?.user_id ?? "setup"} store={store} model={model} fixes={fixes} />;
  else screen = <Home store={store} model={model} fixes={fixes} />;

  return (
    <>
      <div class="app" inert={modalOpen}>
        {!app.first_run && (
          <header class="topbar">
            <span class="brand">Calldock</span>
            <span class={`conn conn-${app.signaling.state}`}>
              <span class="dot" aria-hidden="true" />
              {connectionText(app)}
            </span>
            {!dock && (
              <nav class="topnav" aria-label="App">
                <button type="button" class="button small quiet" onClick={() => store.openPreJoin(null)}>
                  Check my setup
                </button>
                <button type="button" class="button small quiet" onClick={() => store.openSettings()}>
                  <Icon name="gear" />
                  <span>Settings</span>
                </button>
              </nav>
            )}
          </header>
        )}
        {banner && (
          <ProblemView
            problem={banner}
            tone={banner.tone}
            live={banner.tone === "error" ? "alert" : "status"}
            fixes={fixes}
            id="connection-banner"
          />
        )}
        {model.notices.length > 0 && (
          <div class="notices">
            {model.notices.map((n) => (
              <ProblemView key={n.id} problem={n} tone={n.tone} fixes={fixes} onDismiss={() => store.dismissNotice(n.id)} />
            ))}
          </div>
        )}
        {screen}
      </div>
      {model.settingsOpen && <SettingsDialog store={store} model={model} covered={incoming.length > 0} />}
      {incoming.length > 0 && <IncomingDialog store={store} calls={incoming} now={model.now} />}
      <LiveRegions polite={model.polite} assertive={model.assertive} />
    </>
  );
}

function connectionText(app: AppState): string {
  const s = app.signaling;
  switch (s.state) {
    case "connected":
      return `Online as ${app.settings.display_name || s.user}`;
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return "Reconnecting…";
    case "failed":
      return "Offline";
    case "signed_out":
      return "Signed out";
  }
}

/** Shows a message instead of a blank window when a component throws. */
export class Boundary extends Component<{ children: ComponentChildren }, { failed: boolean }> {
  override state = { failed: false };
  override componentDidCatch(error: unknown) {
    console.error("calldock ui:", error);
    this.setState({ failed: true });
  }
  override render() {
    if (!this.state.failed) return this.props.children;
    return (
      <main class="screen narrow" aria-labelledby="crash-title">
        <h1 id="crash-title">Something went wrong in this window</h1>
        <p>Your calls, settings and history are safe: they live in the app, not in this window.</p>
        <div class="actions">
          <button type="button" class="button primary" onClick={() => location.reload()}>
            Reload the window
          </button>
        </div>
      </main>
    );
  }
}
