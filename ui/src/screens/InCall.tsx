// The in-call dock: who, state, timer, quality badge, mute, video, device menus, end.

import { useEffect } from "preact/hooks";
import { CameraSelect, DeviceSelect, showsCamera } from "../components/DeviceSelect";
import { Icon } from "../components/icons";
import { QualityBadge } from "../components/QualityBadge";
import { RemoteVideo, SelfView } from "../components/RemoteVideo";
import { useScreenFocus } from "../components/hooks";
import { stateText, type CallEntry } from "../logic/calls";
import { callElapsed, formatDuration, spokenDuration } from "../logic/time";
import type { Model, Store } from "../store";

export function InCall({ store, model, call }: { store: Store; model: Model; call: CallEntry }) {
  const heading = useScreenFocus<HTMLHeadingElement>();
  const devicesOpen = model.dockDevices;
  const setDevicesOpen = (open: boolean) => store.setDockDevices(open);
  useEffect(() => {
    // Opened from a message ("Choose a device"): take the user to the menu. Opened with its own
    // button: the focus stays on the button, as for any disclosure.
    const fromButton = document.activeElement?.getAttribute("aria-controls") === "dock-devices";
    if (devicesOpen && !fromButton && !document.querySelector('[aria-modal="true"]')) document.getElementById("dock-mic")?.focus();
  }, [devicesOpen]);
  const name = call.remote_name || call.remote;
  const elapsed = callElapsed(call.connected_at, null, model.now);
  const ringing = call.state === "outgoing-ringing";
  const live = call.state === "connected" || call.state === "reconnecting";
  const settings = model.app?.settings;
  return (
    <main class={`screen dock state-${call.state}`} aria-labelledby="dock-title">
      <div class="dock-head">
        <div>
          <h1 id="dock-title" tabIndex={-1} ref={heading}>
            {name}
          </h1>
          <p class="dock-state">
            <span class={`dot s-${call.state}`} aria-hidden="true" />
            {stateText(call)}
            {call.media === "video" && " · Video call"}
          </p>
        </div>
        <div class="dock-timer">
          {call.connected_at !== null ? (
            <span role="timer" aria-label={`Call time ${spokenDuration(elapsed)}`}>
              {formatDuration(elapsed)}
            </span>
          ) : (
            <span class="muted">{ringing ? "Waiting for an answer" : "Setting up audio"}</span>
          )}
        </div>
      </div>
      {call.state === "reconnecting" && (
        <p class="banner tone-warn">
          The connection dropped. Calldock is reconnecting; the call ends by itself if it does not come back.
        </p>
      )}
      {(live || call.state === "connecting") && <QualityBadge stats={call.stats} />}
      {call.media === "video" && call.stats?.video?.paused_for_bandwidth && (
        <p class="banner tone-warn" role="status">
          Your video is paused: the connection cannot carry it right now. Audio goes on, and video comes back by
          itself when the connection allows.
        </p>
      )}
      {call.media === "video" && (live || call.state === "connecting") && (
        <RemoteVideo name={name} stalled={live && call.stats?.video?.received_fps === 0}>
          <SelfView cameraOff={!model.video} mirrored={showsCamera(model.devices.cameras, settings?.camera ?? null)} />
        </RemoteVideo>
      )}
      {model.talking && <p class="talking">Talking (release Space to mute again)</p>}
      <div class="controls" role="group" aria-label="Call controls">
        <button
          type="button"
          class={`control ${model.muted ? "active" : ""}`}
          aria-pressed={model.muted}
          aria-keyshortcuts="M"
          onClick={() => void store.toggleMute()}
          disabled={ringing}
        >
          <Icon name={model.muted ? "micOff" : "mic"} />
          <span>{model.muted ? "Unmute" : "Mute"}</span>
        </button>
        <button
          type="button"
          class={`control ${model.video ? "active" : ""}`}
          aria-pressed={model.video}
          aria-keyshortcuts="V"
          onClick={() => void store.toggleVideo()}
          disabled={ringing}
        >
          <Icon name={model.video ? "video" : "videoOff"} />
          <span>Camera</span>
        </button>
        <button
          type="button"
          class="control"
          aria-expanded={devicesOpen}
          aria-controls="dock-devices"
          onClick={() => setDevicesOpen(!devicesOpen)}
        >
          <Icon name="gear" />
          <span>Devices</span>
        </button>
        <button type="button" class="control end" onClick={() => void store.hangUp(call.id)}>
          <Icon name="hangup" />
          <span>{ringing ? "Cancel call" : "End call"}</span>
        </button>
      </div>
      {devicesOpen && (
        <section
          id="dock-devices"
          class="panel"
          aria-label="Devices for this call"
          onKeyDown={(e) => {
            if (e.key === "Escape") {
              e.stopPropagation();
              setDevicesOpen(false);
            }
          }}
        >
          <DeviceSelect
            id="dock-mic"
            label="Microphone"
            direction="input"
            devices={model.devices.devices}
            value={settings?.microphone ?? "default"}
            onChange={(d) => void store.setMicrophone(d)}
          />
          <DeviceSelect
            id="dock-speaker"
            label="Speaker"
            direction="output"
            devices={model.devices.devices}
            value={settings?.speaker ?? "default"}
            onChange={(d) => void store.setSpeaker(d)}
          />
          {call.media === "video" && (
            <CameraSelect
              id="dock-camera"
              cameras={model.devices.cameras}
              value={settings?.camera ?? null}
              onChange={(c) => void store.setCamera(c)}
            />
          )}
        </section>
      )}
      <p class="hint shortcuts">
        Shortcuts: <kbd>M</kbd> mute, <kbd>V</kbd> camera, hold <kbd>Space</kbd> to talk while muted.
      </p>
    </main>
  );
}
