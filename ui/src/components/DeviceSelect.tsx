// A picker for a microphone or speaker: "System default (name)" and every device present.

import type { AudioDevice, DeviceChoice } from "../ipc";

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
