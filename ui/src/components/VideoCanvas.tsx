// Pictures from one of the shell's `watch_video` views, drawn on a canvas as they come: the
// latest wins, once per display frame; nothing is queued.

import type { Ref } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { watchVideo, type VideoView } from "../ipc";
import { parsePicture, toRgba } from "../logic/video";

/** Watches `view` while mounted; the canvas takes each picture's size. */
export function usePictures(view: VideoView): { ref: Ref<HTMLCanvasElement>; showing: boolean } {
  const ref = useRef<HTMLCanvasElement>(null);
  const [showing, setShowing] = useState(false);
  useEffect(() => {
    let image: ImageData | null = null;
    let latest: ArrayBuffer | null = null;
    let frame = 0;
    let stopped = false;
    const paint = () => {
      frame = 0;
      const canvas = ref.current;
      const picture = latest && parsePicture(latest);
      latest = null;
      if (!canvas || !picture) return;
      if (canvas.width !== picture.width || canvas.height !== picture.height) {
        canvas.width = picture.width;
        canvas.height = picture.height;
        image = null;
      }
      const ctx = canvas.getContext("2d");
      if (!ctx) return;
      image ??= ctx.createImageData(picture.width, picture.height);
      toRgba(picture, image.data);
      ctx.putImageData(image, 0, 0);
      setShowing(true);
    };
    void watchVideo(view, (message) => {
      if (stopped) return;
      latest = message;
      // Draw once per display frame, however fast pictures arrive.
      if (!frame) frame = requestAnimationFrame(paint);
    }).catch(() => null);
    return () => {
      stopped = true;
      if (frame) cancelAnimationFrame(frame);
    };
  }, [view]);
  return { ref, showing };
}
