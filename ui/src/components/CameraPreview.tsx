// The pre-join camera preview: thumbnails of what a video call would send, from the shell's
// camera preview (the chosen camera, or the test pattern where there is none). The preview
// runs while this shows and stops when it goes (the camera's light goes out).

import { useEffect, useState } from "preact/hooks";
import { call, on, toIpcError } from "../ipc";
import { describeError, type Problem } from "../logic/errors";
import { usePictures } from "./VideoCanvas";

/** `camera`: the setting it shows (a change restarts the preview); `caption`: what it is. */
export function CameraPreview({ camera, caption, mirrored }: { camera: string | null; caption: string; mirrored: boolean }) {
  const { ref, showing } = usePictures("own", camera);
  const [problem, setProblem] = useState<Problem | null>(null);
  useEffect(() => {
    let gone = false;
    setProblem(null);
    const unlisten = on("camera-preview-failed", (e) => {
      if (!gone) setProblem(describeError(e.error));
    });
    call("start_camera_preview").catch((e: unknown) => {
      if (!gone) setProblem(describeError(toIpcError(e)));
    });
    return () => {
      gone = true;
      void unlisten.then((stop) => stop());
      void call("stop_camera_preview").catch(() => null);
    };
  }, [camera]);
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
