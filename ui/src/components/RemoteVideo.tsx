// The other side's picture in a video call: pictures from the shell's `watch_video` channel,
// drawn on a canvas as they come (the latest wins; nothing is queued).

import { useEffect, useRef, useState } from "preact/hooks";
import { watchVideo } from "../ipc";
import { parsePicture, toRgba } from "../logic/video";

/**
 * `stalled`: pictures stopped coming (the other side's camera is off, or its connection cannot
 * carry video): the last one stays, marked as paused.
 */
export function RemoteVideo({ name, stalled }: { name: string; stalled: boolean }) {
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
    void watchVideo((message) => {
      if (stopped) return;
      latest = message;
      // Draw once per display frame, however fast pictures arrive.
      if (!frame) frame = requestAnimationFrame(paint);
    }).catch(() => null);
    return () => {
      stopped = true;
      if (frame) cancelAnimationFrame(frame);
    };
  }, []);
  return (
    <div class="remote-video">
      <canvas
        ref={ref}
        class="remote-picture"
        width={640}
        height={480}
        role="img"
        aria-label={showing ? `${name}'s video` : `Waiting for ${name}'s video`}
        data-showing={showing ? "yes" : "no"}
      />
      {!showing && <p class="muted remote-waiting">Waiting for {name}'s video…</p>}
      {showing && stalled && (
        <p class="remote-waiting remote-stalled" role="status">
          {name}'s video is paused
        </p>
      )}
    </div>
  );
}
