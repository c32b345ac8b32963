// Keyboard shortcuts (SPEC §8): m mute, v video, space push-to-talk, Enter accept, Esc decline.
// Pure: the key and the context in, the action out; the App turns actions into commands.

export interface Key {
  type: "keydown" | "keyup";
  key: string;
  repeat: boolean;
  ctrlKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}

/** What has focus: typing into a field, a control that handles its own keys, or anything else. */
export type Target = "text" | "control" | "other";

export interface KeyContext {
  /** Ringing incoming calls are showing (the incoming dialog is open). */
  incoming: boolean;
  /** A call is in the dock and can be muted. */
  inCall: boolean;
  muted: boolean;
  /** Push-to-talk is held (space went down while muted). */
  talking: boolean;
  /** Another dialog (settings) is open on top: shortcuts for the call wait. */
  otherDialog: boolean;
  target: Target;
}

export type Action =
  | { kind: "accept" }
  | { kind: "decline" }
  | { kind: "toggle-mute" }
  | { kind: "toggle-video" }
  | { kind: "talk-start" }
  | { kind: "talk-stop" };

/** The action for a key, or null to leave the key to the browser. */
export function keyAction(key: Key, ctx: KeyContext): Action | null {
  if (key.ctrlKey || key.altKey || key.metaKey) return null;
  const isSpace = key.key === " " || key.key === "Spacebar";

  if (key.type === "keyup") {
    return isSpace && ctx.talking ? { kind: "talk-stop" } : null;
  }

  if (ctx.incoming) {
    // Esc declines from anywhere in the dialog; Enter accepts unless a button has focus (then
    // the button's own action runs: Enter on "Decline" declines).
    if (key.key === "Escape") return { kind: "decline" };
    if (key.key === "Enter" && !key.repeat && ctx.target === "other") return { kind: "accept" };
  }

  if (!ctx.inCall || ctx.otherDialog || ctx.target === "text" || key.repeat) {
    return null;
  }
  // With the incoming dialog on top of the dock, m and v still act on the current call.
  switch (key.key) {
    case "m":
    case "M":
      return { kind: "toggle-mute" };
    case "v":
    case "V":
      return { kind: "toggle-video" };
  }
  if (isSpace && ctx.target === "other" && ctx.muted && !ctx.talking) return { kind: "talk-start" };
  return null;
}

/** Classifies the focused element. */
export function targetKind(el: Element | null): Target {
  if (!el || typeof (el as HTMLElement).tagName !== "string") return "other";
  const tag = el.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select") return "text";
  if (tag === "input") {
    const type = ((el as HTMLInputElement).type || "text").toLowerCase();
    return ["checkbox", "radio", "button", "submit", "reset", "range"].includes(type) ? "control" : "text";
  }
  if ((el as HTMLElement).isContentEditable) return "text";
  if (tag === "button" || tag === "a" || tag === "summary") return "control";
  const role = el.getAttribute("role");
  if (role && ["button", "menuitem", "option", "tab", "switch", "checkbox", "radio", "slider"].includes(role)) return "control";
  return "other";
}
