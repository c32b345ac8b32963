import { describe, expect, it } from "vitest";
import { parsePicture, pictureMessage, toRgba } from "./video";

describe("video pictures", () => {
  it("reads the size and planes of a message", () => {
    const p = parsePicture(pictureMessage(4, 2, (x) => [16 + x, 128, 128]));
    expect(p).not.toBeNull();
    expect(p!.width).toBe(4);
    expect(p!.height).toBe(2);
    expect(Array.from(p!.y)).toEqual([16, 17, 18, 19, 16, 17, 18, 19]);
    expect(p!.u.length).toBe(2);
  });

  it("refuses messages that are not pictures", () => {
    expect(parsePicture(new ArrayBuffer(3))).toBeNull();
    const good = pictureMessage(4, 2, () => [0, 0, 0]);
    expect(parsePicture(good.slice(0, good.byteLength - 1))).toBeNull();
    const odd = new ArrayBuffer(8 + 15 + 8);
    new DataView(odd).setUint32(0, 5, true);
    new DataView(odd).setUint32(4, 3, true);
    expect(parsePicture(odd)).toBeNull();
    const huge = new ArrayBuffer(8);
    new DataView(huge).setUint32(0, 100_000, true);
    new DataView(huge).setUint32(4, 100_000, true);
    expect(parsePicture(huge)).toBeNull();
  });

  it("turns video black, white and primaries into their RGB", () => {
    // BT.601 limited range: Y 16 black, 235 white; red is (81, 90, 240).
    const colours: Array<[[number, number, number], [number, number, number]]> = [
      [[16, 128, 128], [0, 0, 0]],
      [[235, 128, 128], [255, 255, 255]],
      [[81, 90, 240], [255, 0, 0]],
      [[145, 54, 34], [0, 255, 0]],
      [[41, 240, 110], [0, 0, 255]],
    ];
    for (const [yuv, rgb] of colours) {
      const p = parsePicture(pictureMessage(2, 2, () => yuv))!;
      const out = new Uint8ClampedArray(2 * 2 * 4);
      toRgba(p, out);
      for (let i = 0; i < 3; i++) expect(Math.abs(out[i]! - rgb[i]!)).toBeLessThanOrEqual(2);
      expect(out[3]).toBe(255);
    }
  });
});
