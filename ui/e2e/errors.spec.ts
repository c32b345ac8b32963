// Bad input (issue 5): the UI says what happened and what to do, keeps the settings, and is
// never blank or a raw error string.

import { expect, test } from "./fixtures";

test("a server URL that is not a URL is caught on the first-run form and by the shell", async ({ shell, page }) => {
  await shell.open({ firstRun: true, settings: { display_name: "", user_id: "" } });
  await page.getByLabel("Your name").fill("Ada Lovelace");
  await expect(page.getByLabel(/User name/)).toHaveValue("ada.lovelace");
  await page.getByRole("radio", { name: /A server on the network/ }).check();
  const url = page.getByLabel("Server address");
  await url.fill("not a url");
  await page.getByRole("button", { name: "Start using Calldock" }).click();
  await expect(url).toHaveAttribute("aria-invalid", "true");
  await expect(url).toBeFocused();
  await expect(page.locator("#server-url-error")).toHaveText(/"not a url" is not a web address. Use http:\/\/HOST:PORT or https:\/\/HOST./);
  expect(await shell.sent("save_settings")).toEqual([]);
  // The shell refuses what the form lets through: its code becomes the same kind of message.
  await shell.page.evaluate(() => window.__mock.fail("save_settings", { code: "bad_server_url", message: "\"http://[::1\" is not a server URL" }));
  await url.fill("http://calls.example.com:7878");
  await page.getByRole("button", { name: "Start using Calldock" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "The server address is not a valid URL." })).toBeVisible();
  await expect(page.locator("#server-url-error")).toContainText("Enter an address like");
  // Fixed: the first run completes and the home screen appears, connected.
  await shell.page.evaluate(() => window.__mock.fail("save_settings", null));
  await page.getByRole("button", { name: "Start using Calldock" }).click();
  await expect(page.getByRole("heading", { name: "Contacts", exact: true })).toBeVisible();
  await expect(page.getByText("Online as Ada Lovelace")).toBeVisible();
  expect((await shell.sent("save_settings")).at(-1)).toMatchObject({
    settings: { server: { kind: "url", url: "http://calls.example.com:7878" }, display_name: "Ada Lovelace", user_id: "ada.lovelace" },
  });
});

test("a server that is down: reconnecting banner with the retry time and a way to the settings", async ({ shell, page }) => {
  await shell.open();
  await shell.emit("signaling", {
    state: "reconnecting",
    attempt: 3,
    retry_in_ms: 4000,
    reason: "connection refused",
    error: { code: "server_unreachable", message: "cannot reach the server at http://10.0.0.9:7878 (connection refused)" },
  });
  const banner = page.locator("#connection-banner");
  await expect(banner).toContainText("The server is not answering.");
  await expect(banner).toContainText("Trying again in 4 s (attempt 3).");
  await expect(page.getByText("Reconnecting…")).toBeVisible();
  // The contacts and history stay on screen.
  await expect(page.getByRole("list", { name: "Recent calls" }).locator("li")).toHaveCount(2);
  await banner.getByRole("button", { name: "Open settings" }).click();
  await expect(page.getByRole("dialog", { name: "Settings" })).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(page.getByRole("dialog", { name: "Settings" })).toBeHidden();
  await shell.emit("signaling", { state: "connected", user: "sam", device: "dev-1", expires_at: Date.now() + 3_600_000 });
  await expect(banner).toBeHidden();
  await shell.screenshot("server-down");
});

test("an expired session offers to sign in again, which calls sign_in", async ({ shell, page }) => {
  await shell.open({ signaling: { state: "failed", error: { code: "token_expired", message: "the server refused the session (token_expired)" } } });
  const banner = page.locator("#connection-banner");
  await expect(banner).toHaveAttribute("role", "alert");
  await expect(banner).toContainText("Your session has expired.");
  await expect(banner).toContainText("Sign in again to keep receiving calls.");
  await expect(banner.getByText("the server refused the session (token_expired)")).toBeHidden(); // folded into Details
  await banner.getByRole("button", { name: "Sign in again" }).click();
  expect(await shell.sent("sign_in")).toEqual([{}]);
  await expect(banner).toBeHidden();
});

test("a locked keychain and a missing one are explained, with settings kept", async ({ shell, page }) => {
  await shell.open({ keychain: "locked" });
  await expect(page.getByText("The system keychain is locked, so your session cannot be stored.")).toBeVisible();
  await expect(page.getByRole("button", { name: "Sign in again" })).toBeVisible();
  // Signing in fails while it is locked: the message says so, not the raw error.
  await page.evaluate(() => window.__mock.fail("sign_in", { code: "keychain_locked", message: "Platform secure storage failure: locked collection" }));
  await page.getByRole("button", { name: "Sign in again" }).click();
  await expect(page.getByText("Unlock the keychain (your desktop login), then sign in again.")).toBeVisible();
  await expect(page.getByText("Platform secure storage failure")).toBeHidden();
});

test("a start-up failure shows what happened and a retry, never a blank window", async ({ shell, page }) => {
  await shell.open({ failures: { get_app_state: { code: "settings_unwritable", message: "permission denied: ~/.config/calldock" } } });
  await expect(page.getByRole("heading", { name: "Calldock could not start" })).toBeVisible();
  await expect(page.getByText("Your settings could not be saved.")).toBeVisible();
  await page.evaluate(() => window.__mock.fail("get_app_state", null));
  await page.getByRole("button", { name: "Try again" }).first().click();
  await expect(page.getByRole("heading", { name: "Contacts", exact: true })).toBeVisible();
});

test("an unknown error code still gets a sentence and a way on", async ({ shell, page }) => {
  await shell.open({ failures: { start_call: { code: "quantum_flux", message: "" } } });
  await page.getByRole("button", { name: "Call Bob Marley", exact: true }).click();
  await page.getByRole("button", { name: "Start audio call" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "The call could not be started." })).toBeVisible();
  await expect(page.getByText("quantum_flux")).toBeHidden();
});

test("a device taken away mid-call: a message, and the device menu to pick another", async ({ shell, page }) => {
  await shell.open();
  await shell.incoming("d1", "ada", "Ada Lovelace");
  await page.keyboard.press("Enter");
  await shell.state("d1", "connected");
  await shell.emit("device-fallback", {
    call_id: "d1",
    direction: "input",
    device: "Built-in microphone",
    reason: "the microphone pulseaudio:usb-headset.mic stopped working: it stopped delivering audio",
  });
  const notice = page.getByRole("alert").filter({ hasText: "Your microphone changed during the call" });
  await expect(notice).toContainText("now using Built-in microphone");
  await expect(page.locator("#live-assertive")).toContainText("Your microphone changed");
  await notice.getByRole("button", { name: "Choose a device" }).click();
  const mic = page.getByRole("combobox", { name: "Microphone" });
  await expect(mic).toBeFocused();
  await mic.selectOption("pulseaudio:usb-headset.mic");
  expect(await shell.sent("set_microphone")).toEqual([{ device: "pulseaudio:usb-headset.mic" }]);
  await page.getByRole("combobox", { name: "Speaker" }).selectOption("pulseaudio:usb-headset.out");
  expect(await shell.sent("set_speaker")).toEqual([{ device: "pulseaudio:usb-headset.out" }]);
  // The call is still on.
  await expect(page.locator(".dock-state")).toHaveText(/Connected/);
  await notice.getByRole("button", { name: /^Dismiss/ }).click();
  await expect(notice).toBeHidden();
});
