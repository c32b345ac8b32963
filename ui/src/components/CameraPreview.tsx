// The pre-join camera preview: thumbnails of what a video call would send, from the shell's
// camera preview (the chosen camera, or the test pattern where there is none). The preview
// runs while this shows and stops when it goes (the camera's light goes out); the shell moves
// it to another camera when one is chosen (`set_camera`).

import { useEffect, useState } from "preact/hooks";
import { call, on, toIpcError } from "../ipc";
import { describeError, type Problem } from "../logic/errors";
import type { Store } from "../store";
import { usePictures } from "./VideoCanvas";

/** `camera`: the setting it shows; `caption`: what it is. */
export function CameraPreview({ store, camera, caption, mirrored }: { store: Store; camera: string | null; caption: string; mirrored: boolean }) {
  const { ref, showing } = usePictures("own");
  // A problem belongs to the camera it happened with: another camera's preview is a fresh start.
  // The store's setting, not the rendered one: it changes before `set_camera` is sent, so a
  // failure always comes after it, however rendering is timed.
  const [failure, setFailure] = useState<{ camera: string | null; problem: Problem } | null>(null);
  const problem = failure && failure.camera === camera ? failure.problem : null;
  useEffect(() => {
    let gone = false;
    const fail = (problem: Problem) => {
      if (!gone) setFailure({ camera: store.model.app?.settings.camera ?? null, problem });
    };
    const unlisten = on("camera-preview-failed", (e) => fail(describeError(e.error)));
    call("start_camera_preview").catch((e: unknown) => fail(describeError(toIpcError(e))));
    return () => {
      gone = true;
      void unlisten.then((stop) => stop());
      void call("stop_camera_preview").catch(() => null);
    };
  }, []);
  return (
    <figure class="camera-preview">
      <canvas
        ref={ref}
        class={`camera ${mirrored ? "mirrored" : ""}`}
        width={320}
        height={240}
        role="img"
        aria-label={`Camera preview: ${caption}`}
        data-showing={showing && !problem ? "yes" : "no"}
      />
      <figcaption class="muted">{caption}</figcaption>
      {problem && (
        <p class="field-error" role="alert">
          {problem.title} {problem.action}
          {problem.detail && <span class="muted"> ({problem.detail})</span>}
        </p>
      )}
    </figure>
  );
}
