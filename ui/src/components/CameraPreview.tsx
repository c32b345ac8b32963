// The camera preview. Frames from a real camera are not part of the IPC contract yet, so the
// preview draws a test pattern (colour bars and a moving marker) on a canvas: no media, no URL.

import { useEffect, useRef } from "preact/hooks";

const BARS = ["#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0"];

export function drawPattern(ctx: CanvasRenderingContext2D, w: number, h: number, t: number, caption: string): void {
  const bar = w / BARS.length;
  BARS.forEach((c, i) => {
    ctx.fillStyle = c;
    ctx.fillRect(Math.floor(i * bar), 0, Math.ceil(bar), h * 0.7);
  });
  ctx.fillStyle = "#101010";
  ctx.fillRect(0, h * 0.7, w, h * 0.3);
  const x = ((t / 20) % (w + 40)) - 20;
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(x, h * 0.74, 20, h * 0.08);
  ctx.font = `${Math.round(h / 12)}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.fillText(caption, w / 2, h * 0.94);
}

export function CameraPreview({ caption }: { caption: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const canvas = ref.current;
    const ctx = canvas?.getContext("2d");
    if (!canvas || !ctx) return;
    const still = window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
    let frame = 0;
    const paint = (t: number) => {
      drawPattern(ctx, canvas.width, canvas.height, still ? 0 : t, caption);
      if (!still) frame = requestAnimationFrame(paint);
    };
    frame = requestAnimationFrame(paint);
    return () => cancelAnimationFrame(frame);
  }, [caption]);
  return (
    <canvas
      ref={ref}
      class="camera"
      width={320}
      height={180}
      role="img"
      aria-label={`Camera preview: ${caption}`}
    />
  );
}
