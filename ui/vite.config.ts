import { defineConfig } from "vitest/config";

/** The CSP the shell sets (tauri.conf.json); the preview server sends it too, so e2e runs under it. */
export const CSP =
  "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ipc: http://ipc.localhost; " +
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2021",
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  preview: { host: "127.0.0.1", strictPort: true, headers: { "Content-Security-Policy": CSP } },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
