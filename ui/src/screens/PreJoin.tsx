// Pre-join: device pickers, a live microphone level, the camera preview and "Check my setup".

import { useEffect, useState } from "preact/hooks";
import type { CheckResult, DoctorCheck } from "../ipc";
import { CameraPreview } from "../components/CameraPreview";
import { CameraSelect, DeviceSelect, cameraCaption, showsCamera } from "../components/DeviceSelect";
import { Icon } from "../components/icons";
import { LevelMeter } from "../components/LevelMeter";
import { ProblemView, type FixHandlers } from "../components/Problem";
import { useScreenFocus } from "../components/hooks";
import type { Model, Store } from "../store";

export const CHECK_NAMES: Record<DoctorCheck, string> = {
  mic: "Microphone",
  speaker: "Speaker",
  camera: "Camera",
  network: "Network",
  codec: "Audio codec speed",
};

const VERDICT_TEXT = { pass: "Pass", warn: "Warning", fail: "Fail" } as const;

export function PreJoin({ store, model, fixes }: { store: Store; model: Model; fixes: FixHandlers }) {
  const heading = useScreenFocus<HTMLHeadingElement>();
  const screen = model.screen.name === "prejoin" ? model.screen : null;
  const contact = screen?.contact ?? null;
  const settings = model.app?.settings;
  const mic = settings?.microphone ?? "default";
  const speaker = settings?.speaker ?? "default";
  const [speakerProblem, setSpeakerProblem] = useState<string | null>(null);

  useEffect(() => {
    if (model.doctor.running) return;
    void store.startMeter(mic);
    return () => void store.stopMeter();
  }, [mic, model.doctor.running]);

  const cameras = model.devices.cameras;
  const camera = settings?.camera ?? null;
  const doctor = model.doctor;

  return (
    <main class="screen" aria-labelledby="prejoin-title">
      <div class="screen-head">
        <h1 id="prejoin-title" tabIndex={-1} ref={heading}>
          {contact ? `Call ${contact.display_name}` : "Check your setup"}
        </h1>
        <button type="button" class="button quiet" onClick={() => store.goHome()}>
          Back
        </button>
      </div>
      {model.devicesError && <ProblemView problem={model.devicesError} fixes={{ ...fixes, retry: () => void store.loadDevices() }} />}
      <div class="columns">
        <section class="panel" aria-labelledby="devices-title">
          <h2 id="devices-title">Devices</h2>
          <DeviceSelect
            id="prejoin-mic"
            label="Microphone"
            direction="input"
            devices={model.devices.devices}
            value={mic}
            onChange={(d) => void store.setMicrophone(d)}
          />
          {model.meterError ? (
            <ProblemView problem={model.meterError} fixes={{ retry: () => void store.startMeter(mic) }} />
          ) : (
            <LevelMeter level={model.micLevel} label="Microphone level" />
          )}
          <DeviceSelect
            id="prejoin-speaker"
            label="Speaker"
            direction="output"
            devices={model.devices.devices}
            value={speaker}
            onChange={(d) => void store.setSpeaker(d)}
            describedBy={speakerProblem ? "speaker-problem" : undefined}
          />
          <button
            type="button"
            class="button small"
            onClick={async () => {
              const p = await store.testRinger(speaker, model.app?.settings.ringer.volume ?? 0.8);
              setSpeakerProblem(p ? `${p.title} ${p.action}` : null);
            }}
          >
            Play a test sound
          </button>
          {speakerProblem && (
            <p id="speaker-problem" class="field-error" role="alert">
              {speakerProblem}
            </p>
          )}
          <CameraSelect id="prejoin-camera" cameras={cameras} value={camera} onChange={(c) => void store.setCamera(c)} />
          {/* Not while the setup check runs: its camera check needs the camera. */}
          {!doctor.running && (
            <CameraPreview store={store} camera={camera} caption={cameraCaption(cameras, camera)} mirrored={showsCamera(cameras, camera)} />
          )}
        </section>
        <section class="panel" aria-labelledby="doctor-title">
          <h2 id="doctor-title">Check my setup</h2>
          <p class="muted">Tests the microphone, speaker, camera, network and audio codec in about 10 seconds.</p>
          <button
            type="button"
            class="button"
            onClick={() => void store.runDoctor()}
            disabled={doctor.running}
            aria-describedby="doctor-status"
          >
            {doctor.running ? "Checking…" : doctor.report ? "Check again" : "Check my setup"}
          </button>
          <p id="doctor-status" class="doctor-status" role="status">
            {doctor.running
              ? doctor.current === "mic"
                ? "Checking the microphone: please say something."
                : `Checking ${doctor.current ? CHECK_NAMES[doctor.current].toLowerCase() : "your setup"}…`
              : doctor.report
                ? doctor.report.verdict === "pass"
                  ? "Everything passed."
                  : `Done: ${doctor.report.checks.filter((c) => c.verdict !== "pass").length} need attention.`
                : ""}
          </p>
          {doctor.error && <ProblemView problem={doctor.error} fixes={{ retry: () => void store.runDoctor() }} />}
          {doctor.report && (
            <ul class="checks" aria-label="Setup check results">
              {doctor.report.checks.map((c) => (
                <CheckRow key={c.check} result={c} />
              ))}
            </ul>
          )}
        </section>
      </div>
      {contact && (
        <div class="actions sticky">
          <button type="button" class="button primary" onClick={() => void store.startCall(contact, "audio")}>
            <Icon name="phone" />
            <span>Start audio call</span>
          </button>
          <button type="button" class="button" onClick={() => void store.startCall(contact, "video")}>
            <Icon name="video" />
            <span>Start video call</span>
          </button>
        </div>
      )}
    </main>
  );
}

function CheckRow({ result }: { result: CheckResult }) {
  const icon = result.verdict === "pass" ? "check" : result.verdict === "warn" ? "warn" : "cross";
  return (
    <li class={`check verdict-${result.verdict}`}>
      <span class="verdict">
        <Icon name={icon} />
        <span>{VERDICT_TEXT[result.verdict]}</span>
      </span>
      <div>
        <p class="check-name">{CHECK_NAMES[result.check] ?? result.check}</p>
        <p class="check-summary">{result.summary}</p>
        {result.remedy && (
          <p class="check-remedy">
            <strong>What to do: </strong>
            {result.remedy}
          </p>
        )}
      </div>
    </li>
  );
}
