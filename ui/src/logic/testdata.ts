// Fixtures shared by the unit tests.

import type { CallStats } from "../ipc";

export function stats(patch: Partial<CallStats> = {}): CallStats {
  return {
    rtt_ms: 40,
    jitter_ms: 3,
    loss_percent: 0,
    send_kbps: 32,
    receive_kbps: 31,
    codec: "opus",
    local_candidate: "host",
    remote_candidate: "host",
    audio_level_dbfs: -30,
    jitter_buffer_delay_ms: 40,
    concealed_samples: 0,
    sent_loss_percent: 0,
    fec_percent: 0,
    mos: 4.4,
    quality: "excellent",
    ...patch,
  };
}
