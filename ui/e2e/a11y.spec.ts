// axe-core on every screen, in the light and the dark theme, with a screenshot of each.

import { expect, test, type Shell } from "./fixtures";

type Theme = "light" | "dark";

async function open(shell: Shell, theme: Theme, scenario: Parameters<Shell["open"]>[0] = {}) {
  await shell.page.emulateMedia({ colorScheme: theme, reducedMotion: "reduce" });
  await shell.open(scenario);
}

for (const theme of ["light", "dark"] as const) {
  test.describe(`${theme} theme`, () => {
    test("first run", async ({ shell, page }) => {
      await open(shell, theme, { firstRun: true, settings: { display_name: "", user_id: "" } });
      await expect(page.getByRole("heading", { name: "Welcome to Calldock" })).toBeVisible();
      await shell.expectAccessible(`first run (${theme})`);
      await page.getByRole("radio", { name: /A server on the network/ }).check();
      await page.getByLabel("Server address").fill("calls example com");
      await page.getByRole("button", { name: "Start using Calldock" }).click();
      await expect(page.getByText(/is not a web address/)).toBeVisible();
      await shell.expectAccessible(`first run with errors (${theme})`);
      await shell.screenshot(`first-run-${theme}`);
    });

    test("contacts and recent calls", async ({ shell, page }) => {
      await open(shell, theme);
      await expect(page.getByRole("list", { name: "Recent calls" }).getByText("Missed call")).toBeVisible();
      await shell.expectAccessible(`home (${theme})`);
      await shell.screenshot(`home-${theme}`);
    });

    test("pre-join with setup check results", async ({ shell, page }) => {
      await open(shell, theme);
      await page.getByRole("button", { name: "Call Ada Lovelace", exact: true }).click();
      await expect(page.getByRole("meter", { name: "Microphone level" })).toHaveAttribute("aria-valuetext", /dBFS/);
      await page.getByRole("button", { name: "Check my setup" }).last().click();
      await expect(page.getByRole("list", { name: "Setup check results" }).locator("li")).toHaveCount(5);
      await shell.expectAccessible(`pre-join (${theme})`);
      await shell.screenshot(`prejoin-${theme}`);
    });

    test("incoming call", async ({ shell, page }) => {
      await open(shell, theme);
      await shell.incoming("a1", "ada", "Ada Lovelace");
      await shell.incoming("a2", "bob", "Bob Marley", { stacked: true, media: "video" });
      await expect(page.getByRole("alertdialog")).toBeVisible();
      await shell.expectAccessible(`incoming (${theme})`);
      await shell.screenshot(`incoming-${theme}`);
    });

    test("in-call dock with the stats popover and device menus", async ({ shell, page }) => {
      await open(shell, theme);
      await shell.incoming("a1", "ada", "Ada Lovelace");
      await page.keyboard.press("Enter");
      await shell.state("a1", "connecting");
      await shell.state("a1", "connected");
      await shell.stats("a1", 4.1);
      await page.getByRole("button", { name: /^Quality/ }).click();
      await page.getByRole("button", { name: "Devices" }).click();
      await page.keyboard.press("m");
      await expect(page.getByRole("region", { name: "Call quality details" })).toBeVisible();
      await shell.expectAccessible(`in call (${theme})`);
      await shell.screenshot(`in-call-${theme}`);
      await shell.state("a1", "reconnecting");
      await expect(page.getByText("Reconnecting…")).toBeVisible();
      await shell.expectAccessible(`reconnecting (${theme})`);
    });

    test("post-call summary", async ({ shell, page }) => {
      await open(shell, theme);
      await shell.incoming("a1", "ada", "Ada Lovelace");
      await page.keyboard.press("Enter");
      await shell.state("a1", "connected");
      await shell.stats("a1", 4.3);
      await shell.ended("a1", "hangup-remote", "Ada Lovelace");
      await expect(page.locator(".lead")).toHaveText("Ada Lovelace hung up.");
      await shell.expectAccessible(`summary (${theme})`);
      await shell.screenshot(`summary-${theme}`);
    });

    test("settings", async ({ shell, page }) => {
      await open(shell, theme, { keychain: "locked" });
      await page.getByRole("button", { name: "Settings" }).click();
      await expect(page.getByRole("dialog", { name: "Settings" })).toBeVisible();
      await shell.expectAccessible(`settings (${theme})`);
      await shell.screenshot(`settings-${theme}`);
    });

    test("connection problems and messages", async ({ shell, page }) => {
      await open(shell, theme, { signaling: { state: "failed", error: { code: "token_expired", message: "the server refused the session (token_expired): expired; sign in again" } } });
      await expect(page.getByText("Your session has expired.")).toBeVisible();
      await shell.incoming("a1", "ada", "Ada Lovelace");
      await page.keyboard.press("Enter");
      await shell.state("a1", "connected");
      await shell.emit("device-fallback", { call_id: "a1", direction: "input", device: "Built-in microphone", reason: "USB headset microphone stopped delivering audio" });
      await expect(page.getByText(/Your microphone changed during the call/)).toBeVisible();
      await shell.expectAccessible(`messages (${theme})`);
      await shell.screenshot(`messages-${theme}`);
    });

    test("start-up failure", async ({ shell, page }) => {
      await open(shell, theme, { failures: { get_app_state: { code: "keychain_unavailable", message: "no Secret Service on the session bus" } } });
      await expect(page.getByRole("heading", { name: "Calldock could not start" })).toBeVisible();
      await shell.expectAccessible(`start-up failure (${theme})`);
    });
  });
}

test("the theme setting overrides the system's", async ({ shell, page }) => {
  await page.emulateMedia({ colorScheme: "light" });
  await shell.open({ settings: { theme: "dark" } });
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(bg).toBe("rgb(16, 19, 23)");
  await shell.expectAccessible("dark setting on a light system");
  // Switch to light in Settings, with the keyboard.
  await page.getByRole("button", { name: "Settings" }).click();
  await page.getByRole("radio", { name: "Light" }).check();
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "light");
  expect(await shell.sent("save_settings")).toEqual([expect.objectContaining({ settings: expect.objectContaining({ theme: "light" }) })]);
});
