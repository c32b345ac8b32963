// What the e2e tests and the in-page mock shell share.

import type { AppState, CallView, CameraDevice, IpcError, KeychainStatus, Settings, SignalingState } from "../src/ipc";

export interface Scenario {
  firstRun?: boolean;
  settings?: Partial<Settings>;
  signaling?: SignalingState;
  keychain?: KeychainStatus;
  failures?: Record<string, IpcError>;
  calls?: CallView[];
  noRecents?: boolean;
  /** The cameras `list_devices` reports (none by default). */
  cameras?: CameraDevice[];
}

export interface Logged {
  cmd: string;
  args: Record<string, unknown>;
}

export interface MockApi {
  log: Logged[];
  /** Who each call id is with, so hang_up can write the call into the recent calls. */
  names: Record<string, { user: string; name: string }>;
  emit: (event: string, payload: unknown) => Promise<void>;
  calls: (cmd: string) => Array<Record<string, unknown>>;
  fail: (cmd: string, error: IpcError | null) => void;
  app: () => AppState;
}
