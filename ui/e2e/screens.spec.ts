// The rest of SPEC §8's screens: pre-join, settings, hot-plug, deep links.

import { expect, test } from "./fixtures";

test("pre-join: the mic meter runs on the chosen device and stops on leaving; check my setup shows verdicts and remedies", async ({
  shell,
  page,
}) => {
  await shell.open();
  await page.getByRole("button", { name: "Check my setup" }).click();
  await expect(page.getByRole("heading", { name: "Check your setup" })).toBeFocused();
  const meter = page.getByRole("meter", { name: "Microphone level" });
  await expect(meter).toHaveAttribute("aria-valuetext", /dBFS/);
  expect(await shell.sent("start_mic_meter")).toEqual([{ device: "default" }]);
  await page.getByRole("combobox", { name: "Microphone" }).selectOption("pulseaudio:usb-headset.mic");
  await expect.poll(() => shell.sent("start_mic_meter")).toEqual([{ device: "default" }, { device: "pulseaudio:usb-headset.mic" }]);
  expect(await shell.sent("set_microphone")).toEqual([{ device: "pulseaudio:usb-headset.mic" }]);
  await expect(page.getByRole("img", { name: "Camera preview: No camera found: test pattern" })).toBeVisible();
  expect(await shell.sent("start_camera_preview")).toEqual([{}]);

  await page.getByRole("button", { name: "Check my setup" }).last().click();
  await expect(page.locator("#doctor-status")).toHaveText("Done: 2 need attention.");
  const results = page.getByRole("list", { name: "Setup check results" });
  await expect(results.locator("li").nth(0)).toContainText("WarningMicrophone");
  await expect(results.locator("li").nth(0)).toContainText("What to do: Move closer to the microphone");
  await expect(results.locator("li").nth(2)).toContainText("FailCamera");
  await expect(results.locator("li").nth(4)).toContainText("PassAudio codec speed");
  expect(await shell.sent("run_doctor")).toEqual([{ checks: null }]);
  await shell.screenshot("prejoin-doctor");

  await page.getByRole("button", { name: "Back" }).click();
  await expect.poll(async () => (await shell.sent("stop_mic_meter")).length).toBeGreaterThan(0);
});

test("pre-join: the preview draws what the camera sends, mirrored; picking a camera switches it and is kept", async ({
  shell,
  page,
}) => {
  await shell.open({
    cameras: [
      { id: "/dev/video0", name: "Integrated Camera", is_default: true },
      { id: "/dev/video2", name: "USB Webcam", is_default: false },
    ],
  });
  await page.getByRole("button", { name: "Check my setup" }).click();
  const picker = page.getByRole("combobox", { name: "Camera" });
  await expect(picker.locator("option")).toHaveText(["Default camera (Integrated Camera)", "Integrated Camera", "USB Webcam", "Test pattern"]);
  const preview = page.getByRole("img", { name: "Camera preview: Integrated Camera" });
  await expect(preview).toHaveAttribute("data-showing", "yes");
  // Drawn from the shell's pictures, mirrored: the dark bar on the left of the picture shows on the right.
  const sides = () =>
    preview.evaluate((canvas: HTMLCanvasElement) => {
      const box = canvas.getBoundingClientRect();
      return { width: canvas.width, mirrored: getComputedStyle(canvas).transform !== "none", box: box.width };
    });
  expect(await sides()).toMatchObject({ width: 160, mirrored: true });
  const leftPixel = await preview.evaluate((canvas: HTMLCanvasElement) => Array.from(canvas.getContext("2d")!.getImageData(5, 60, 1, 1).data));
  expect(leftPixel[0]!).toBeLessThan(60);

  await picker.selectOption("/dev/video2");
  expect(await shell.sent("set_camera")).toEqual([{ camera: "/dev/video2" }]);
  await expect(page.getByRole("img", { name: "Camera preview: USB Webcam" })).toBeVisible();
  // The shell moves the preview to the new camera: the UI does not start another.
  expect(await shell.sent("start_camera_preview")).toEqual([{}]);
  await picker.selectOption("pattern");
  await expect(page.getByRole("img", { name: "Camera preview: Test pattern" })).toBeVisible();
  expect(await page.getByRole("img", { name: "Camera preview: Test pattern" }).evaluate((c) => getComputedStyle(c).transform)).toBe("none");
  await picker.selectOption("default");
  expect(await shell.sent("set_camera")).toEqual([{ camera: "/dev/video2" }, { camera: "pattern" }, { camera: null }]);

  await page.getByRole("button", { name: "Back" }).click();
  await expect.poll(async () => (await shell.sent("stop_camera_preview")).length).toBeGreaterThan(0);
});

test("pre-join: a camera that cannot be shown says why and what to do", async ({ shell, page }) => {
  await shell.open({
    cameras: [{ id: "/dev/video0", name: "Integrated Camera", is_default: true }],
    failures: {
      start_camera_preview: { code: "camera_unavailable", message: "/dev/video0 is busy: Zoom (pid 4242) is using it" },
    },
  });
  await page.getByRole("button", { name: "Check my setup" }).click();
  const alert = page.getByRole("alert").filter({ hasText: "Your camera cannot be shown." });
  await expect(alert).toContainText("close the program using it");
  await expect(alert).toContainText("Zoom (pid 4242)");
  // Another camera: the old problem goes, the shell moves the preview (no second start).
  const starts = (await shell.sent("start_camera_preview")).length;
  await shell.fail("start_camera_preview", null);
  const picker = page.getByRole("combobox", { name: "Camera" });
  await picker.selectOption("pattern");
  await expect(alert).toBeHidden();
  // A camera picked that will not open either says so (its failure comes after the pick).
  await shell.fail("start_camera_preview", { code: "camera_unavailable", message: "/dev/video0 is busy: Zoom (pid 4242) is using it" });
  await picker.selectOption("/dev/video0");
  await expect(alert).toBeVisible();
  expect(await shell.sent("start_camera_preview")).toHaveLength(starts);
  await shell.fail("start_camera_preview", null);
  await picker.selectOption("pattern");
  await expect(alert).toBeHidden();
  // A camera that stops later says so too.
  await shell.emit("camera-preview-failed", { error: { code: "camera_unavailable", message: "the camera stopped sending pictures" } });
  await expect(page.getByRole("alert").filter({ hasText: "the camera stopped sending pictures" })).toBeVisible();
});

test("settings: focus is trapped, Escape cancels, Save sends the settings", async ({ shell, page }) => {
  await shell.open();
  const open = page.getByRole("button", { name: "Settings" });
  await open.focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog", { name: "Settings" });
  await expect(dialog).toBeVisible();
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => !!document.activeElement?.closest('[role="dialog"]'))).toBe(true);
  }
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(open).toBeFocused();

  await page.keyboard.press("Enter");
  await page.getByLabel("Display name").fill("Samantha");
  await page.getByRole("checkbox", { name: "Noise suppression" }).uncheck();
  await page.getByRole("combobox", { name: /Ringer/ }).selectOption("pulseaudio:usb-headset.out");
  await page.getByRole("radio", { name: /A server on the network/ }).check();
  await page.getByLabel("Server address").fill("https://calls.example.com");
  await page.getByRole("button", { name: "Test ringtone" }).click();
  expect(await shell.sent("test_ringer")).toEqual([{ device: "pulseaudio:usb-headset.out", volume: 0.8 }]);
  await page.getByRole("button", { name: "Save" }).click();
  await expect(dialog).toBeHidden();
  const [saved] = await shell.sent("save_settings");
  expect(saved).toEqual({
    settings: {
      server: { kind: "url", url: "https://calls.example.com" },
      user_id: "sam",
      display_name: "Samantha",
      processing: { echo_cancellation: true, noise_suppression: false, gain_control: true },
      microphone: "default",
      speaker: "default",
      camera: null,
      ringer: { device: "pulseaudio:usb-headset.out", volume: 0.8 },
      theme: "system",
    },
  });
  // No credential ever travels in the settings.
  expect(JSON.stringify(saved)).not.toMatch(/token|password|secret/i);
});

test("hot-plug: devices-changed updates the pickers and is announced", async ({ shell, page }) => {
  await shell.open();
  await page.getByRole("button", { name: "Check my setup" }).click();
  const mic = page.getByRole("combobox", { name: "Microphone" });
  await expect(mic.locator("option")).toHaveCount(3);
  await shell.emit("devices-changed", {
    devices: [
      { id: "pulseaudio:builtin-mic", name: "Built-in microphone", direction: "input", is_default: false, host: "pulseaudio", sample_rates: [8000, 48000], channels: [1, 2] },
      { id: "pulseaudio:desk-mic", name: "Desk microphone", direction: "input", is_default: true, host: "pulseaudio", sample_rates: [48000, 48000], channels: [1, 1] },
    ],
    cameras: [],
    added: ["pulseaudio:desk-mic"],
    removed: ["pulseaudio:usb-headset.mic", "pulseaudio:builtin-speaker", "pulseaudio:usb-headset.out"],
    default_input: "pulseaudio:desk-mic",
    default_output: null,
    default_changed: true,
  });
  await expect(mic.locator("option").first()).toHaveText("System default (Desk microphone)");
  await expect(mic.locator("option")).toHaveCount(3);
  await expect(page.locator("#live-polite")).toContainText("1 device connected, 3 devices removed.");
});

test("a deep link opens pre-join for that user and does not call by itself", async ({ shell, page }) => {
  await shell.open();
  await shell.emit("deep-link", { action: "call", user_id: "bob" });
  await expect(page.getByRole("heading", { name: "Call Bob Marley" })).toBeVisible();
  expect(await shell.sent("start_call")).toEqual([]);
});

test("the mute shortcut from the tray or global shortcut shows in the dock", async ({ shell, page }) => {
  await shell.open();
  await shell.incoming("m1", "ada", "Ada Lovelace");
  await page.keyboard.press("Enter");
  await shell.state("m1", "connected");
  await shell.emit("mute-changed", { muted: true, source: "tray" });
  await expect(page.getByRole("button", { name: "Unmute" })).toHaveAttribute("aria-pressed", "true");
  await expect(page.locator("#live-polite")).toContainText("Microphone muted.");
});

test("a call under way when the window opens is restored from list_calls", async ({ shell, page }) => {
  const now = Date.now();
  await shell.open({
    calls: [
      {
        id: "live",
        direction: "outgoing",
        remote: "echo",
        remote_name: "Echo test",
        remote_device: "echo-bot",
        media: "audio",
        state: "connected",
        end_reason: null,
        started_at: now - 65_000,
        ring_deadline: null,
        connected_at: now - 63_000,
        ended_at: null,
        remote_ringing: true,
      },
    ],
  });
  await expect(page.getByRole("heading", { level: 1, name: "Echo test" })).toBeVisible();
  await expect(page.locator(".dock-timer [role=timer]")).toHaveText(/^1:0[3-5]$/);
});
