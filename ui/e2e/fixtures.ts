// The `shell` fixture: a page with the mock shell injected before the app loads, helpers to emit
// events and read the commands the UI sent, and checks that nothing broke the CSP or the console.

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test as base, expect, type Page } from "@playwright/test";
import { buildSync } from "esbuild";
import type { Scenario } from "./types";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const harness = buildSync({
  entryPoints: [path.join(here, "harness.ts")],
  bundle: true,
  format: "iife",
  write: false,
  target: "es2021",
  logLevel: "silent",
}).outputFiles[0]!.text;

const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const screenshotDir = path.resolve(process.env["CALLDOCK_UI_SCREENSHOTS"] ?? path.join(here, "..", "test-results"));
mkdirSync(screenshotDir, { recursive: true });

export class Shell {
  constructor(readonly page: Page) {}

  async open(scenario: Scenario = {}): Promise<void> {
    await this.page.addInitScript({ content: `window.__scenario = ${JSON.stringify(scenario)};\n${harness}` });
    await this.page.goto("/");
    await expect(this.page.locator("main")).toBeVisible();
  }

  emit(event: string, payload: unknown): Promise<void> {
    return this.page.evaluate(([e, p]) => window.__mock.emit(e as string, p), [event, payload] as const);
  }

  /** The arguments of every call of `cmd`, in order. */
  sent(cmd: string): Promise<Array<Record<string, unknown>>> {
    return this.page.evaluate((c) => window.__mock.calls(c), cmd);
  }

  async incoming(id: string, from: string, name: string, opts: { stacked?: boolean; media?: "audio" | "video"; deadline?: number } = {}) {
    await this.page.evaluate(([i, u, n]) => (window.__mock.names[i!] = { user: u!, name: n! }), [id, from, name]);
    const deadline = opts.deadline ?? (await this.page.evaluate(() => Date.now() + 60_000));
    await this.emit("call", {
      type: "incoming",
      call_id: id,
      from,
      from_name: name,
      media: opts.media ?? "audio",
      stacked: opts.stacked ?? false,
      ring_deadline: deadline,
    });
  }

  /** Makes `cmd` fail with `error` from now on (`null`: work again). */
  fail(cmd: string, error: { code: string; message: string } | null): Promise<void> {
    return this.page.evaluate(([c, e]) => window.__mock.fail(c as string, e as never), [cmd, error] as const);
  }

  state(id: string, state: string) {
    return this.emit("call", { type: "state_changed", call_id: id, state });
  }

  stats(id: string, mos: number, patch: Record<string, unknown> = {}) {
    const quality = mos >= 4.2 ? "excellent" : mos >= 4 ? "good" : mos >= 3.6 ? "fair" : mos >= 3 ? "poor" : "bad";
    return this.emit("call-stats", {
      call_id: id,
      stats: {
        rtt_ms: 38,
        jitter_ms: 2.5,
        loss_percent: 0.4,
        send_kbps: 33,
        receive_kbps: 32,
        codec: "opus",
        local_candidate: "host",
        remote_candidate: "srflx",
        audio_level_dbfs: -28,
        jitter_buffer_delay_ms: 40,
        concealed_samples: 0,
        sent_loss_percent: 0,
        fec_percent: 0,
        mos,
        quality,
        ...patch,
      },
    });
  }

  ended(id: string, reason: string, byName: string | null = null) {
    return this.emit("call", { type: "ended", call_id: id, reason, by_name: byName });
  }

  /** axe-core, injected through the debugging protocol (the page's CSP forbids inline scripts). */
  async axe(): Promise<Array<{ id: string; impact: string; help: string; nodes: string[] }>> {
    await this.page.evaluate(axeSource);
    return this.page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run: (ctx: Document, o: object) => Promise<{ violations: Array<{ id: string; impact: string; help: string; nodes: Array<{ target: string[] }> }> }> } }).axe;
      const result = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] } });
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
    });
  }

  async expectAccessible(label: string): Promise<void> {
    const violations = await this.axe();
    const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    expect(serious, `${label}: ${JSON.stringify(serious, null, 2)}`).toEqual([]);
  }

  async screenshot(name: string): Promise<void> {
    await this.page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });
  }
}

export const test = base.extend<{ shell: Shell }>({
  shell: async ({ page }, use) => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    const shell = new Shell(page);
    await use(shell);
    const csp = await page.evaluate(() => window.__csp ?? []).catch(() => []);
    expect(csp, "CSP violations").toEqual([]);
    expect(errors, "errors in the page").toEqual([]);
  },
});

export { expect };
