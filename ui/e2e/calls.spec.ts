import { expect, test } from "./fixtures";

test.describe("incoming calls", () => {
  test("an incoming call appears with its countdown, which counts down", async ({ shell, page }) => {
    const t0 = new Date("2030-01-15T10:00:00Z").getTime();
    await page.clock.install({ time: t0 });
    await shell.open();
    await page.clock.pauseAt(t0 + 1_000);
    await shell.incoming("c1", "ada", "Ada Lovelace", { deadline: t0 + 1_000 + 60_000 });
    await page.clock.runFor(300);
    const dialog = page.getByRole("alertdialog", { name: "Incoming call" });
    await expect(dialog).toBeVisible();
    await expect(dialog.getByText("Ada Lovelace")).toBeVisible();
    await expect(dialog.getByRole("timer")).toHaveText("60 s left to answer");
    await page.clock.runFor(15_000);
    await expect(dialog.getByRole("timer")).toHaveText("45 s left to answer");
    await expect(dialog.getByRole("button", { name: "Accept call from Ada Lovelace with audio" })).toBeFocused();
    await expect(page.locator("#live-assertive")).toContainText("Incoming call from Ada Lovelace");
    await page.clock.runFor(50_000);
    await expect(dialog.getByRole("timer")).toHaveText("Stops ringing now");
    await shell.ended("c1", "missed");
    await page.clock.runFor(300);
    await expect(dialog).toBeHidden();
  });

  test("several incoming calls stack, each with its own countdown", async ({ shell, page }) => {
    await shell.open();
    await shell.incoming("c1", "ada", "Ada Lovelace");
    const now = await page.evaluate(() => Date.now());
    await shell.incoming("c2", "bob", "Bob Marley", { deadline: now + 30_000, media: "video" });
    const dialog = page.getByRole("alertdialog", { name: "2 incoming calls" });
    await expect(dialog).toBeVisible();
    const cards = dialog.locator(".incoming-card");
    await expect(cards).toHaveCount(2);
    await expect(cards.nth(0)).toContainText("Ada Lovelace");
    await expect(cards.nth(1)).toContainText("Bob Marley");
    await expect(cards.nth(1)).toContainText("Video call");
    await expect(cards.nth(1).getByRole("timer")).toHaveText(/^(29|30) s left to answer$/);
    await shell.screenshot("incoming-stacked");
    // The first one is canceled: the second stays.
    await shell.ended("c1", "canceled");
    await expect(page.getByRole("alertdialog", { name: "Incoming call" })).toBeVisible();
    await expect(page.locator(".incoming-card")).toHaveCount(1);
  });

  test("accept with audio and with video send accept_call with the call id and media", async ({ shell, page }) => {
    await shell.open();
    await shell.incoming("c1", "ada", "Ada Lovelace");
    await shell.incoming("c2", "bob", "Bob Marley", { stacked: true });
    await page.getByRole("button", { name: "Accept call from Bob Marley with video" }).click();
    expect(await shell.sent("accept_call")).toEqual([{ callId: "c2", media: "video" }]);
    await page.getByRole("button", { name: "Accept call from Ada Lovelace with audio" }).click();
    expect(await shell.sent("accept_call")).toEqual([
      { callId: "c2", media: "video" },
      { callId: "c1", media: "audio" },
    ]);
  });

  test("decline sends decline_call; Escape declines the focused call", async ({ shell, page }) => {
    await shell.open();
    await shell.incoming("c1", "ada", "Ada Lovelace");
    await shell.incoming("c2", "bob", "Bob Marley", { stacked: true });
    await expect(page.getByText("You are in a call: answering ends it")).toBeVisible();
    await page.getByRole("button", { name: "Decline call from Bob Marley" }).click();
    expect(await shell.sent("decline_call")).toEqual([{ callId: "c2" }]);
    await shell.ended("c2", "busy");
    // Focus is still in the dialog, on Ada's card: Escape declines Ada.
    await page.getByRole("button", { name: "Accept call from Ada Lovelace with audio" }).focus();
    await page.keyboard.press("Escape");
    expect(await shell.sent("decline_call")).toEqual([{ callId: "c2" }, { callId: "c1" }]);
    expect(await shell.sent("accept_call")).toEqual([]);
  });

  test("focus is trapped in the incoming dialog", async ({ shell, page }) => {
    await shell.open();
    await shell.incoming("c1", "ada", "Ada Lovelace");
    const dialog = page.getByRole("alertdialog");
    await expect(dialog.getByRole("button").first()).toBeFocused();
    for (let i = 0; i < 7; i++) {
      await page.keyboard.press("Tab");
      expect(await page.evaluate(() => !!document.activeElement?.closest('[role="alertdialog"]'))).toBe(true);
    }
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press("Shift+Tab");
      expect(await page.evaluate(() => !!document.activeElement?.closest('[role="alertdialog"]'))).toBe(true);
    }
    await expect(page.locator(".app")).toHaveAttribute("inert", "");
  });
});

test("the whole flow with the keyboard alone: incoming → accept → stats → mute → hang up → summary → recent calls", async ({
  shell,
  page,
}) => {
  await shell.open();
  await expect(page.getByRole("heading", { name: /^Recent calls/ })).toBeVisible();
  await shell.incoming("k1", "ada", "Ada Lovelace");
  await expect(page.getByRole("alertdialog")).toBeVisible();

  // Enter accepts (focus starts on "Accept").
  await page.keyboard.press("Enter");
  expect(await shell.sent("accept_call")).toEqual([{ callId: "k1", media: "audio" }]);
  await shell.state("k1", "connecting");
  await expect(page.getByRole("heading", { level: 1, name: "Ada Lovelace" })).toBeVisible();
  await expect(page.getByText("Connecting…")).toBeVisible();
  await expect(page.locator("#live-polite")).toContainText("Connecting to Ada Lovelace.");
  await shell.state("k1", "connected");
  await expect(page.locator(".dock-state")).toHaveText(/Connected/);
  await expect(page.locator("#live-polite")).toContainText("Connected to Ada Lovelace.");
  await expect(page.locator(".dock-timer [role=timer]")).toHaveText(/^0:0\d$/);

  // Focus is on the dock's heading after accepting: m mutes, space talks while held.
  await expect(page.locator("#dock-title")).toBeFocused();
  await page.keyboard.press("m");
  await expect(page.getByRole("button", { name: "Unmute" })).toHaveAttribute("aria-pressed", "true");
  await expect(page.locator("#live-polite")).toContainText("Microphone muted.");
  await page.keyboard.down(" ");
  await expect(page.getByText("Talking (release Space to mute again)")).toBeVisible();
  await page.keyboard.up(" ");
  await expect(page.getByText("Talking (release Space to mute again)")).toBeHidden();
  await expect(page.getByRole("button", { name: "Unmute" })).toHaveAttribute("aria-pressed", "true");
  expect(await shell.sent("set_muted")).toEqual([{ muted: true }, { muted: false }, { muted: true }]);

  // Stats arrive once a second: the badge shows the label, the popover the figures.
  await shell.stats("k1", 4.38);
  await expect(page.getByRole("button", { name: "Quality: Excellent" })).toBeVisible();
  await shell.stats("k1", 3.7, {
    local_candidate: "relay",
    rtt_ms: 180,
    loss_percent: 3.2,
    sent_loss_percent: 4.5,
    fec_percent: 5,
  });
  const badge = page.getByRole("button", { name: "Quality: Fair" });
  await expect(badge).toBeVisible();
  await page.keyboard.press("Tab");
  await expect(badge).toBeFocused();
  await page.keyboard.press("Enter");
  const popover = page.getByRole("region", { name: "Call quality details" });
  await expect(popover).toContainText("Round trip180 ms");
  await expect(popover).toContainText("Packet loss3.2 % received · 4.5 % sent");
  await expect(popover).toContainText("Loss protectionFEC for up to 5 % loss");
  await expect(popover).toContainText("MOS3.70 (Fair)");
  await expect(popover).toContainText("Relayed (TURN)");
  await expect(popover).toContainText("Jitter2.5 ms");
  await shell.screenshot("in-call-quality");
  await page.keyboard.press("Escape");
  await expect(popover).toBeHidden();
  await expect(badge).toBeFocused();

  // m works with a button focused too, and unmutes.
  await page.keyboard.press("m");
  await expect(page.getByRole("button", { name: "Mute", exact: true })).toHaveAttribute("aria-pressed", "false");

  // v in an audio call: no camera to turn on, and a message says how to be seen.
  await page.keyboard.press("v");
  await expect(page.getByText("This is an audio call: there is no camera in it.")).toBeVisible();
  expect(await shell.sent("set_video")).toEqual([]);

  // Tab to "End call" and press Enter.
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press("Tab");
    if (await page.getByRole("button", { name: "End call" }).evaluate((el) => el === document.activeElement)) break;
  }
  await expect(page.getByRole("button", { name: "End call" })).toBeFocused();
  await page.keyboard.press("Enter");
  expect(await shell.sent("hang_up")).toEqual([{ callId: "k1" }]);
  expect(await shell.sent("set_muted")).toEqual([{ muted: true }, { muted: false }, { muted: true }, { muted: false }]);
  await shell.ended("k1", "hangup-local");

  // The summary, with focus on its first action.
  await expect(page.getByRole("heading", { name: "Call with Ada Lovelace ended" })).toBeVisible();
  await expect(page.locator(".lead")).toHaveText("You hung up.");
  await expect(page.locator(".summary")).toContainText("Good (average MOS 4.04, lowest fair)");
  await expect(page.locator(".summary")).toContainText("Relayed through a TURN server");
  await expect(page.getByRole("button", { name: "Back to contacts" })).toBeFocused();
  await shell.screenshot("summary");
  await page.keyboard.press("Enter");

  // Back home: the call is at the top of the recent calls.
  const recents = page.getByRole("list", { name: "Recent calls" });
  await expect(recents.locator("li").first()).toHaveAttribute("data-call-id", "k1");
  await expect(recents.locator("li").first()).toContainText("Ada Lovelace");
});

test("a video call shows the other side's picture; v turns the camera off and on; a camera that fails says so", async ({
  shell,
  page,
}) => {
  await shell.open();
  await shell.incoming("v1", "ada", "Ada Lovelace", { media: "video" });
  await page.getByRole("button", { name: "Accept call from Ada Lovelace with video" }).click();
  // The camera is on for a video call, whatever the last one left it at.
  expect(await shell.sent("set_video")).toEqual([{ enabled: true }]);
  expect(await shell.sent("accept_call")).toEqual([{ callId: "v1", media: "video" }]);
  await shell.state("v1", "connected");
  const picture = page.getByRole("img", { name: "Ada Lovelace's video" });
  await expect(picture).toBeVisible();
  // The pictures are drawn: the canvas takes their size and shows their colours.
  await expect(picture).toHaveAttribute("width", "160");
  const pixel = await picture.evaluate((canvas: HTMLCanvasElement) =>
    Array.from(canvas.getContext("2d")!.getImageData(80, 60, 1, 1).data),
  );
  expect(pixel[3]).toBe(255);
  expect(pixel[2]! > pixel[1]!, `blue-ish chroma came through: ${pixel}`).toBe(true);
  // Our own picture in the corner: what the camera sends (the test pattern here: no camera, so not mirrored).
  const self = page.getByRole("img", { name: "Your camera", exact: true });
  await expect(self).toHaveAttribute("data-showing", "yes");
  const own = await self.evaluate((canvas: HTMLCanvasElement) => ({
    pixel: Array.from(canvas.getContext("2d")!.getImageData(100, 60, 1, 1).data),
    transform: getComputedStyle(canvas).transform,
  }));
  expect(own.pixel[0]! > own.pixel[2]!, `warm: ${own.pixel}`).toBe(true);
  expect(own.transform).toBe("none");
  await shell.screenshot("in-call-video");

  await page.locator("#dock-title").focus();
  await page.keyboard.press("v");
  await expect(page.getByRole("button", { name: "Camera", exact: true })).toHaveAttribute("aria-pressed", "false");
  await expect(page.locator("#live-polite")).toContainText("Camera off.");
  await expect(page.getByRole("img", { name: "Your camera is off" })).toBeHidden();
  await expect(page.locator(".self-view")).toContainText("Camera off");
  await page.keyboard.press("v");
  await expect(page.getByRole("button", { name: "Camera", exact: true })).toHaveAttribute("aria-pressed", "true");
  await expect(self).toBeVisible();
  expect(await shell.sent("set_video")).toEqual([{ enabled: true }, { enabled: false }, { enabled: true }]);

  // The connection cannot carry video: a banner says so, and the popover says why.
  const video = {
    sent_fps: 0,
    sent_width: 320,
    sent_height: 240,
    received_fps: 30,
    received_width: 640,
    received_height: 480,
    undecodable_frames: 0,
    camera_off: false,
    estimate_kbps: 120,
    limit_kbps: null,
    target_kbps: 52,
    paused_for_bandwidth: true,
  };
  await shell.stats("v1", 4.1, { video });
  await expect(page.getByText("Your video is paused: the connection cannot carry it right now.")).toBeVisible();
  await shell.stats("v1", 4.1, { video: { ...video, paused_for_bandwidth: false, sent_fps: 30, target_kbps: 400 } });
  await expect(page.getByText("Your video is paused")).toBeHidden();
  // Pictures stop coming from the other side: its last one stays, marked as paused.
  await shell.stats("v1", 4.1, { video: { ...video, paused_for_bandwidth: false, received_fps: 0 } });
  await expect(page.getByRole("status").filter({ hasText: "Ada Lovelace's video is paused" })).toBeVisible();
  await shell.stats("v1", 4.1, { video: { ...video, paused_for_bandwidth: false, received_fps: 30 } });
  await expect(page.getByText("Ada Lovelace's video is paused")).toBeHidden();

  await shell.emit("camera-failed", { call_id: "v1", error: { code: "camera_failed", message: "camera /dev/video0 stopped delivering frames" } });
  const notice = page.getByRole("alert").filter({ hasText: "Your camera stopped: the other side no longer sees you." });
  await expect(notice).toContainText("camera /dev/video0 stopped delivering frames");
  await expect(page.locator("#live-assertive")).toContainText("Your camera stopped");
  await expect(page.getByRole("button", { name: "Camera", exact: true })).toHaveAttribute("aria-pressed", "false");

  // Picking a camera from the dock's device menu starts the picture again.
  await page.getByRole("button", { name: "Devices" }).click();
  const picker = page.getByRole("combobox", { name: "Camera" });
  await expect(picker.locator("option")).toHaveText(["No camera found: test pattern", "Test pattern"]);
  await picker.selectOption("pattern");
  expect(await shell.sent("set_camera")).toEqual([{ camera: "pattern" }]);
  await expect(page.getByRole("button", { name: "Camera", exact: true })).toHaveAttribute("aria-pressed", "true");
  expect((await shell.sent("set_video")).at(-1)).toEqual({ enabled: true });
  // A camera that cannot be used leaves the one in use, and says so.
  await shell.emit("camera-refused", { call_id: "v1", error: { code: "camera_refused", message: "no camera /dev/video4" } });
  await expect(page.getByRole("alert").filter({ hasText: "That camera cannot be used: the call goes on with the camera you had." })).toContainText(
    "no camera /dev/video4",
  );
  await expect(page.getByRole("button", { name: "Camera", exact: true })).toHaveAttribute("aria-pressed", "true");
  await shell.expectAccessible("in-call video");
});

test("an outgoing call from the contacts, through pre-join, is placed and can be canceled", async ({ shell, page }) => {
  await shell.open();
  await page.getByRole("button", { name: "Call Echo test", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Call Echo test" })).toBeFocused();
  await page.getByRole("button", { name: "Start audio call" }).click();
  expect(await shell.sent("start_call")).toEqual([{ to: "echo", media: "audio" }]);
  await expect(page.getByText("Calling…")).toBeVisible();
  await shell.emit("call", { type: "remote_ringing", call_id: "out-1" });
  await expect(page.getByText("Ringing…")).toBeVisible();
  await page.getByRole("button", { name: "Cancel call" }).click();
  expect(await shell.sent("hang_up")).toEqual([{ callId: "out-1" }]);
});
