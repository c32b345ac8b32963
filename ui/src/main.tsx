import { render } from "preact";
import { App, Boundary } from "./App";
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
  window.addEventListener("unhandledrejection", (e) => {
    console.error("calldock ui: unhandled", e.reason);
    store.notify({
      tone: "error",
      title: "Something did not work.",
      action: "Try again. If it keeps happening, restart Calldock.",
      detail: "",
      fix: null,
    });
  });
  void store.boot();
}
