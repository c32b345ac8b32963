// Pickers for a microphone or speaker ("System default (name)" and every device present), and
// for the camera.

import { CAMERA_PATTERN, type AudioDevice, type CameraDevice, type DeviceChoice } from "../ipc";

interface Props {
  id: string;
  label: string;
  direction: "input" | "output";
  devices: AudioDevice[];
  value: DeviceChoice;
  onChange: (choice: DeviceChoice) => void;
  describedBy?: string;
}

export function deviceOptions(devices: AudioDevice[], direction: "input" | "output", value: DeviceChoice) {
  const mine = devices.filter((d) => d.direction === direction);
  const def = mine.find((d) => d.is_default);
  const options = [{ value: "default", text: def ? `System default (${def.name})` : "System default" }];
  for (const d of mine) options.push({ value: d.id, text: d.name });
  if (value !== "default" && !mine.some((d) => d.id === value)) {
    options.push({ value, text: `${value} (not connected)` });
  }
  return options;
}

export function DeviceSelect({ id, label, direction, devices, value, onChange, describedBy }: Props) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select
        id={id}
        value={value}
        aria-describedby={describedBy}
        onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}
      >
        {deviceOptions(devices, direction, value).map((o) => (
          <option key={o.value} value={o.value}>
            {o.text}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The camera picker's value for "the default camera" (the `camera` setting's `null`). */
const DEFAULT_CAMERA = "default";

/**
 * A camera picker: the default camera (the test pattern where there is none), every camera
 * present, and the test pattern. A chosen camera that is gone stays listed as not connected.
 */
export function cameraOptions(cameras: CameraDevice[], value: string | null) {
  const def = cameras.find((c) => c.is_default) ?? cameras[0];
  const options = [{ value: DEFAULT_CAMERA, text: def ? `Default camera (${def.name})` : "No camera found: test pattern" }];
  for (const c of cameras) options.push({ value: c.id, text: c.name });
  options.push({ value: CAMERA_PATTERN, text: "Test pattern" });
  if (value !== null && value !== CAMERA_PATTERN && !cameras.some((c) => c.id === value)) {
    options.push({ value, text: `${value} (not connected)` });
  }
  return options;
}

/** What a `camera` setting shows: a camera's name, or the test pattern. */
export function cameraCaption(cameras: CameraDevice[], value: string | null): string {
  if (value === CAMERA_PATTERN) return "Test pattern";
  const camera = value === null ? (cameras.find((c) => c.is_default) ?? cameras[0]) : cameras.find((c) => c.id === value);
  if (camera) return camera.name;
  return value === null ? "No camera found: test pattern" : `${value} (not connected)`;
}

/** Whether the picture is of a camera (mirrored in the preview and self view) rather than the pattern. */
export function showsCamera(cameras: CameraDevice[], value: string | null): boolean {
  return value === null ? cameras.length > 0 : value !== CAMERA_PATTERN;
}

export function CameraSelect({
  id,
  cameras,
  value,
  onChange,
}: {
  id: string;
  cameras: CameraDevice[];
  value: string | null;
  onChange: (camera: string | null) => void;
}) {
  return (
    <div class="field">
      <label for={id}>Camera</label>
      <select
        id={id}
        value={value ?? DEFAULT_CAMERA}
        onChange={(e) => {
          const picked = (e.currentTarget as HTMLSelectElement).value;
          onChange(picked === DEFAULT_CAMERA ? null : picked);
        }}
      >
        {cameraOptions(cameras, value).map((o) => (
          <option key={o.value} value={o.value}>
            {o.text}
          </option>
        ))}
      </select>
    </div>
  );
}
