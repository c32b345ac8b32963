import { render } from "preact";
import { App, Boundary } from "./App";
import { toIpcError } from "./ipc";
import { describeError } from "./logic/errors";
import { Store, applyTheme } from "./store";
import "./styles.css";

// The theme from the last run, before the first paint (the shell's settings confirm it).
try {
  const theme = localStorage.getItem("calldock.theme");
  if (theme === "light" || theme === "dark" || theme === "system") applyTheme(theme);
} catch {
  // No storage: the system theme until the settings arrive.
}

const store = new Store();
const root = document.getElementById("root");
if (root) {
  root.textContent = "";
  render(
    <Boundary>
      <App store={store} />
    </Boundary>,
    root,
  );
  // A promise nobody caught: still the shell's message for its code, with what it said under
  // "Details", so a person (and support) can tell which thing failed.
  window.addEventListener("unhandledrejection", (e) => {
    console.error("calldock ui: unhandled", e.reason);
    store.notify({ tone: "error", ...describeError(toIpcError(e.reason)) });
  });
  void store.boot();
}
