// WCAG 2.2 AA contrast of the theme tokens in styles.css: 4.5:1 for text, 3:1 for control
// boundaries and focus rings, in the light and the dark theme.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const css = readFileSync(fileURLToPath(new URL("../styles.css", import.meta.url)), "utf8");

function tokens(selector: string): Record<string, string> {
  const start = css.indexOf(`${selector} {`);
  if (start < 0) throw new Error(`no ${selector} block`);
  const body = css.slice(start, css.indexOf("}", start));
  return Object.fromEntries([...body.matchAll(/--([\w-]+):\s*(#[0-9a-f]{6})/gi)].map((m) => [m[1]!, m[2]!]));
}

function luminance(hex: string): number {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const [r, g, b] = c.map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p) as [number, number];
  return (x + 0.05) / (y + 0.05);
}

const TEXT: Array<[string, string]> = [
  ["text", "bg"],
  ["text", "surface"],
  ["text", "surface-2"],
  ["text", "info-bg"],
  ["text", "warn-bg"],
  ["text", "error-bg"],
  ["muted", "bg"],
  ["muted", "surface"],
  ["muted", "surface-2"],
  ["muted", "error-bg"],
  ["muted", "warn-bg"],
  ["muted", "info-bg"],
  ["on-accent", "accent"],
  ["on-danger", "danger"],
  ["accent-text", "bg"],
  ["accent-text", "surface"],
  ["accent-text", "surface-2"],
  ["accent-text", "error-bg"],
  ["accent-text", "warn-bg"],
  ["accent-text", "info-bg"],
  ["danger-text", "surface"],
  ["danger-text", "surface-2"],
  ["danger-text", "bg"],
  ["danger-text", "error-bg"],
  ["ok-text", "surface"],
  ["ok-text", "surface-2"],
  ["warn-text", "surface"],
  ["warn-text", "surface-2"],
  ["warn-text", "warn-bg"],
  ["bg", "text"],
];

const NON_TEXT: Array<[string, string]> = [
  ["border", "surface"],
  ["border", "bg"],
  ["focus", "bg"],
  ["focus", "surface"],
  ["focus", "surface-2"],
  ["accent", "ring-track"],
  ["ok-text", "ring-track"],
];

describe.each([
  ["light", ":root"],
  ["dark", ':root[data-theme="dark"]'],
])("%s theme", (_name, selector) => {
  const t = tokens(selector);
  it.each(TEXT)("text %s on %s is at least 4.5:1", (fg, bg) => {
    expect(contrast(t[fg]!, t[bg]!)).toBeGreaterThanOrEqual(4.5);
  });
  it.each(NON_TEXT)("%s against %s is at least 3:1", (fg, bg) => {
    expect(contrast(t[fg]!, t[bg]!)).toBeGreaterThanOrEqual(3);
  });
});

describe("the dark theme is the same with and without prefers-color-scheme", () => {
  it("has equal tokens in the media query and the data-theme block", () => {
    expect(tokens(':root:not([data-theme="light"])')).toEqual(tokens(':root[data-theme="dark"]'));
  });
});
