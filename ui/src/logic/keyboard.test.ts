import { describe, expect, it } from "vitest";
import { keyAction, targetKind, type Key, type KeyContext } from "./keyboard";

const key = (k: string, patch: Partial<Key> = {}): Key => ({
  type: "keydown",
  key: k,
  repeat: false,
  ctrlKey: false,
  altKey: false,
  metaKey: false,
  ...patch,
});
const ctx = (patch: Partial<KeyContext> = {}): KeyContext => ({
  incoming: false,
  inCall: false,
  muted: false,
  talking: false,
  otherDialog: false,
  target: "other",
  ...patch,
});

describe("incoming call keys", () => {
  it("Enter accepts and Escape declines", () => {
    expect(keyAction(key("Enter"), ctx({ incoming: true }))).toEqual({ kind: "accept" });
    expect(keyAction(key("Escape"), ctx({ incoming: true }))).toEqual({ kind: "decline" });
  });
  it("Enter on a focused button is the button's own (native) action", () => {
    expect(keyAction(key("Enter"), ctx({ incoming: true, target: "control" }))).toBeNull();
  });
  it("Escape declines even with a button focused", () => {
    expect(keyAction(key("Escape"), ctx({ incoming: true, target: "control" }))).toEqual({ kind: "decline" });
  });
  it("does nothing without an incoming call", () => {
    expect(keyAction(key("Enter"), ctx())).toBeNull();
    expect(keyAction(key("Escape"), ctx({ inCall: true }))).toBeNull();
  });
  it("a held Enter does not accept twice", () => {
    expect(keyAction(key("Enter", { repeat: true }), ctx({ incoming: true }))).toBeNull();
  });
});

describe("in-call keys", () => {
  it("m mutes and v toggles video, in either case", () => {
    expect(keyAction(key("m"), ctx({ inCall: true }))).toEqual({ kind: "toggle-mute" });
    expect(keyAction(key("M"), ctx({ inCall: true, target: "control" }))).toEqual({ kind: "toggle-mute" });
    expect(keyAction(key("v"), ctx({ inCall: true }))).toEqual({ kind: "toggle-video" });
  });
  it("letters typed into a field stay letters", () => {
    expect(keyAction(key("m"), ctx({ inCall: true, target: "text" }))).toBeNull();
  });
  it("shortcuts with modifiers are left alone (Ctrl+V pastes)", () => {
    expect(keyAction(key("v", { ctrlKey: true }), ctx({ inCall: true }))).toBeNull();
    expect(keyAction(key("m", { metaKey: true }), ctx({ inCall: true }))).toBeNull();
  });
  it("no call, no shortcut; settings open, no shortcut", () => {
    expect(keyAction(key("m"), ctx())).toBeNull();
    expect(keyAction(key("m"), ctx({ inCall: true, otherDialog: true }))).toBeNull();
  });
  it("auto-repeat does not toggle mute back and forth", () => {
    expect(keyAction(key("m", { repeat: true }), ctx({ inCall: true }))).toBeNull();
  });
});

describe("push-to-talk", () => {
  it("space held while muted talks, release mutes again", () => {
    expect(keyAction(key(" "), ctx({ inCall: true, muted: true }))).toEqual({ kind: "talk-start" });
    expect(keyAction(key(" ", { type: "keyup" }), ctx({ inCall: true, muted: true, talking: true }))).toEqual({
      kind: "talk-stop",
    });
  });
  it("space does nothing when not muted, and presses a focused button as usual", () => {
    expect(keyAction(key(" "), ctx({ inCall: true }))).toBeNull();
    expect(keyAction(key(" "), ctx({ inCall: true, muted: true, target: "control" }))).toBeNull();
  });
  it("auto-repeat while held does not restart talking", () => {
    expect(keyAction(key(" ", { repeat: true }), ctx({ inCall: true, muted: true, talking: true }))).toBeNull();
  });
  it("a key-up without talking is ignored", () => {
    expect(keyAction(key(" ", { type: "keyup" }), ctx({ inCall: true, muted: true }))).toBeNull();
  });
});

describe("focus target", () => {
  const el = (tag: string, attrs: Record<string, string> = {}) =>
    ({
      tagName: tag.toUpperCase(),
      type: attrs["type"] ?? "",
      isContentEditable: false,
      getAttribute: (n: string) => attrs[n] ?? null,
    }) as unknown as Element;
  it("classifies fields, controls and the rest", () => {
    expect(targetKind(el("input"))).toBe("text");
    expect(targetKind(el("input", { type: "checkbox" }))).toBe("control");
    expect(targetKind(el("select"))).toBe("text");
    expect(targetKind(el("button"))).toBe("control");
    expect(targetKind(el("div", { role: "button" }))).toBe("control");
    expect(targetKind(el("h1"))).toBe("other");
    expect(targetKind(null)).toBe("other");
  });
});
