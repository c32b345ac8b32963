// Pictures of a video call's other side, as the shell's `watch_video` channel carries them
// (docs/desktop-ipc.md): width and height as u32 little-endian, then the I420 planes. Decoded
// here into the RGBA a canvas takes; nothing in a message is trusted.

export interface Picture {
  width: number;
  height: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** The largest side the shell sends (calldock_video::MAX_SIDE). */
const MAX_SIDE = 4096;

/** A picture from one channel message, or null when the message is not one. */
export function parsePicture(message: ArrayBuffer): Picture | null {
  if (message.byteLength < 8) return null;
  const head = new DataView(message, 0, 8);
  const width = head.getUint32(0, true);
  const height = head.getUint32(4, true);
  if (width === 0 || height === 0 || width % 2 || height % 2 || width > MAX_SIDE || height > MAX_SIDE) return null;
  const luma = width * height;
  if (message.byteLength !== 8 + luma + luma / 2) return null;
  return {
    width,
    height,
    y: new Uint8Array(message, 8, luma),
    u: new Uint8Array(message, 8 + luma, luma / 4),
    v: new Uint8Array(message, 8 + luma + luma / 4, luma / 4),
  };
}

/**
 * I420 (BT.601, limited range, as cameras and VP8 send it) to RGBA, into `out`
 * (width × height × 4 bytes). Integer arithmetic, one pass: a 640×480 picture in a few
 * milliseconds, 30 times a second.
 */
export function toRgba(p: Picture, out: Uint8ClampedArray): void {
  const { width, height, y, u, v } = p;
  const half = width >> 1;
  for (let row = 0; row < height; row++) {
    const chromaRow = (row >> 1) * half;
    let o = row * width * 4;
    let l = row * width;
    for (let col = 0; col < width; col++, l++, o += 4) {
      const c = chromaRow + (col >> 1);
      const luma = 298 * (y[l]! - 16);
      const d = u[c]! - 128;
      const e = v[c]! - 128;
      // Uint8ClampedArray clamps to 0..255.
      out[o] = (luma + 409 * e + 128) >> 8;
      out[o + 1] = (luma - 100 * d - 208 * e + 128) >> 8;
      out[o + 2] = (luma + 516 * d + 128) >> 8;
      out[o + 3] = 255;
    }
  }
}

/** A message as the shell would send it: for tests and the UI harness. */
export function pictureMessage(width: number, height: number, fill: (x: number, y: number) => [number, number, number]): ArrayBuffer {
  const luma = width * height;
  const buffer = new ArrayBuffer(8 + luma + luma / 2);
  const head = new DataView(buffer, 0, 8);
  head.setUint32(0, width, true);
  head.setUint32(4, height, true);
  const y = new Uint8Array(buffer, 8, luma);
  const u = new Uint8Array(buffer, 8 + luma, luma / 4);
  const v = new Uint8Array(buffer, 8 + luma + luma / 4, luma / 4);
  for (let row = 0; row < height; row++) {
    for (let col = 0; col < width; col++) {
      const [ly, lu, lv] = fill(col, row);
      y[row * width + col] = ly;
      if (row % 2 === 0 && col % 2 === 0) {
        u[(row / 2) * (width / 2) + col / 2] = lu;
        v[(row / 2) * (width / 2) + col / 2] = lv;
      }
    }
  }
  return buffer;
}
