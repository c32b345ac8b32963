import { describe, expect, it } from "vitest";
import { toIpcError } from "../ipc";
import { describeError, serverUrlProblem, signalingBanner, suggestUserId, userIdProblem } from "./errors";

describe("error to message", () => {
  it("gives what happened and what to do for the issue's bad inputs", () => {
    for (const code of ["bad_server_url", "server_unreachable", "token_expired", "keychain_locked", "keychain_unavailable", "device_failed"]) {
      const p = describeError({ code, message: "raw engine text" });
      expect(p.title).not.toBe("");
      expect(p.action).not.toBe("");
      expect(p.title).not.toContain(code);
      expect(p.detail).toBe("raw engine text");
    }
  });
  it("offers the fix that helps", () => {
    expect(describeError({ code: "token_expired", message: "" }).fix).toBe("sign_in");
    expect(describeError({ code: "bad_server_url", message: "" }).fix).toBe("settings");
    expect(describeError({ code: "device_not_found", message: "" }).fix).toBe("devices");
    expect(describeError({ code: "keychain_locked", message: "" }).fix).toBe("sign_in");
  });
  it("never leaves an unknown code blank", () => {
    const p = describeError({ code: "weird_new_code", message: "" });
    expect(p.title).toBe("Something went wrong.");
    expect(p.action).not.toBe("");
    expect(p.detail).toBe("");
  });
  it("turns anything thrown into {code, message}", () => {
    expect(toIpcError({ code: "token_expired", message: "m" })).toEqual({ code: "token_expired", message: "m" });
    expect(toIpcError("boom")).toEqual({ code: "unknown", message: "boom" });
    expect(toIpcError(new Error("x"))).toEqual({ code: "unknown", message: "x" });
    expect(toIpcError(new TypeError("no ipc")).code).toBe("ipc_unavailable");
    expect(toIpcError(undefined).code).toBe("unknown");
  });
  it("truncates very long details", () => {
    expect(describeError({ code: "unknown", message: "x".repeat(1000) }).detail.length).toBe(298);
  });
});

describe("signaling banner", () => {
  it("is quiet when connected", () => {
    expect(signalingBanner({ state: "connected", user: "a", device: "d", expires_at: 0 })).toBeNull();
  });
  it("shows a server that is down as a retry with advice", () => {
    const b = signalingBanner({
      state: "reconnecting",
      attempt: 3,
      retry_in_ms: 4000,
      reason: "connection refused",
      error: { code: "server_unreachable", message: "" },
    });
    expect(b?.title).toBe("The server is not answering.");
    expect(b?.action).toContain("Trying again in 4 s (attempt 3)");
    expect(b?.fix).toBe("settings");
  });
  it("shows an expired session with a sign-in button", () => {
    const b = signalingBanner({ state: "failed", error: { code: "token_expired", message: "" } });
    expect(b).toMatchObject({ tone: "error", fix: "sign_in", title: "Your session has expired." });
  });
});

describe("server URL", () => {
  it.each(["http://127.0.0.1:7878", "https://calls.example.com", " http://host:1/ "])("accepts %s", (u) => {
    expect(serverUrlProblem(u)).toBeNull();
  });
  it.each([
    ["", /Enter the server/],
    ["calls.example.com", /not a web address/],
    ["ftp://x", /http:\/\/ or https:\/\//],
    ["ws://x:1", /http:\/\/ or https:\/\//],
    ["http//broken", /not a web address/],
  ])("rejects %j", (u, why) => {
    expect(serverUrlProblem(u)).toMatch(why);
  });
});

describe("user ids", () => {
  it("suggests one from a name", () => {
    expect(suggestUserId("Ada Lovelace")).toBe("ada.lovelace");
    expect(suggestUserId("  Zoë  Ünal ")).toBe("zoe.unal");
    expect(suggestUserId(".Ada")).toBe("ada"); // never a leading dot, which the server refuses
  });
  it("checks what the server accepts", () => {
    expect(userIdProblem("ada.l-1")).toBeNull();
    expect(userIdProblem("")).toMatch(/Enter/);
    expect(userIdProblem("a b")).toMatch(/letters/);
    expect(userIdProblem("Ada")).toMatch(/lowercase/);
    expect(userIdProblem(".ada")).toMatch(/starting with a letter or digit/);
    expect(userIdProblem("a".repeat(64))).toBeNull();
    expect(userIdProblem("a".repeat(65))).toMatch(/up to 64/);
  });
});
