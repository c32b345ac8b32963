// The other side's picture in a video call, with our own camera's in a corner (the self view).

import { usePictures } from "./VideoCanvas";

/**
 * `stalled`: pictures stopped coming (the other side's camera is off, or its connection cannot
 * carry video): the last one stays, marked as paused.
 */
export function RemoteVideo({ name, stalled, children }: { name: string; stalled: boolean; children?: preact.ComponentChildren }) {
  const { ref, showing } = usePictures("remote");
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
      {children}
    </div>
  );
}

/**
 * What our camera sends, small, mirrored as a mirror shows a face (a test pattern is not
 * mirrored: there is no face to match). While the camera is off, says so instead.
 */
export function SelfView({ cameraOff, mirrored }: { cameraOff: boolean; mirrored: boolean }) {
  const { ref, showing } = usePictures("own");
  return (
    <div class={`self-view ${cameraOff ? "off" : ""}`}>
      <canvas
        ref={ref}
        class={`self-picture ${mirrored ? "mirrored" : ""}`}
        width={160}
        height={120}
        role="img"
        aria-label={cameraOff ? "Your camera is off" : "Your camera"}
        data-showing={showing && !cameraOff ? "yes" : "no"}
        hidden={cameraOff}
      />
      {cameraOff && <p class="self-off">Camera off</p>}
    </div>
  );
}
