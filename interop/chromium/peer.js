// A minimal Calldock protocol client (docs/protocol.md) running in Chromium, the foreign WebRTC
// peer of tests/interop_chromium.rs. See peer.html for the query parameters and docs/interop.md
// for what the test checks. Everything it learns goes back to the origin that served the page:
//   POST /log     one progress line (text)
//   POST /ready   signed in and listening (role=answer: now the call may come)
//   POST /pcm     what it heard from the remote track: mono Float32 little-endian, 48 kHz,
//                 from the moment the peer connection was connected until the call ended
//   POST /result  JSON {ok, error?, log, stats, local_sdp, remote_sdp}: always the last request
'use strict';

const params = new URLSearchParams(location.search);
const SERVER = (params.get('server') || '').replace(/\/+$/, '');
const USER = params.get('user');
const ROLE = params.get('role');
const PEER = params.get('peer');
const DURATION_MS = Number(params.get('duration') || '5') * 1000;
const SAMPLE_RATE = 48000;
const JITTER_TARGET_MS = Number(params.get('jitter_target_ms') || '80');
// `video=1`: a video call, Chromium's fake camera (640×480) both sent and the other side's
// pictures decoded into a hidden <video>.
const VIDEO = params.get('video') === '1';
const t0 = performance.now();
const lines = [];

let pc = null;
let finished = false;

function log(message) {
  const line = `${((performance.now() - t0) / 1000).toFixed(3)}s ${message}`;
  lines.push(line);
  document.getElementById('log').textContent += line + '\n';
  post('/log', line).catch(() => {});
}

function post(path, body, type) {
  return fetch(path, { method: 'POST', body, headers: { 'Content-Type': type || 'text/plain' } });
}

function hex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)),
  ]);
}

async function rest(method, path, body, token) {
  const headers = {};
  if (body) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(SERVER + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch (e) {
    // A cross-origin request the server does not allow (no CORS headers) fails like this too.
    throw new Error(`${method} ${SERVER}${path} failed (${e}); does the server allow CORS?`);
  }
  const json = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(`${method} ${path}: HTTP ${response.status} ${json ? `${json.code}: ${json.message}` : ''}`);
  }
  return json;
}

/// The signaling connection: requests matched to replies by `re`, events queued by type.
class Signaling {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.queue = [];
    this.waiters = [];
    this.handlers = new Map();
  }

  open() {
    this.ws = new WebSocket(this.url);
    this.ws.onmessage = (e) => this.receive(e.data);
    this.ws.onclose = (e) => {
      if (!finished) fail(new Error(`the signaling connection closed (code ${e.code} ${e.reason})`));
    };
    return new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error(`cannot open the WebSocket ${this.url}`));
    });
  }

  request(type, fields) {
    const id = `c${this.nextId++}`;
    this.ws.send(JSON.stringify({ id, type, ...fields }));
    return withTimeout(
      new Promise((resolve, reject) => this.pending.set(id, { type, resolve, reject })),
      10000,
      `the reply to ${type}`,
    );
  }

  /// Every event of `type` from now on goes to `handler` instead of the queue.
  on(type, handler) {
    this.handlers.set(type, handler);
  }

  /// The first event of `type` (queued or future) for which `match` holds.
  next(type, match, ms) {
    const ok = (m) => m.type === type && (!match || match(m));
    const i = this.queue.findIndex(ok);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    return withTimeout(new Promise((resolve) => this.waiters.push({ ok, resolve })), ms, `a ${type} event`);
  }

  receive(text) {
    const m = JSON.parse(text);
    if (m.re !== undefined) {
      const p = this.pending.get(m.re);
      if (!p) return;
      this.pending.delete(m.re);
      if (m.type === 'error') p.reject(new Error(`${p.type} refused: ${m.code}: ${m.message}`));
      else p.resolve(m);
      return;
    }
    if (m.type === 'error') {
      log(`server error event: ${m.code}: ${m.message}`);
      return;
    }
    const handler = this.handlers.get(m.type);
    if (handler) {
      handler(m);
      return;
    }
    const w = this.waiters.findIndex((w) => w.ok(m));
    if (w >= 0) this.waiters.splice(w, 1)[0].resolve(m);
    else this.queue.push(m);
  }
}

/// Records the remote track: MediaStreamSource → AudioWorklet → Float32 chunks. Set up before
/// the call so that no audio is lost while the worklet module loads.
class Recorder {
  async init() {
    this.ctx = new AudioContext({ sampleRate: SAMPLE_RATE });
    const code = `
      class CalldockRecorder extends AudioWorkletProcessor {
        process(inputs) {
          const input = inputs[0];
          // Silence while no channel is connected keeps the recording on the real-time clock.
          this.port.postMessage(input && input.length ? input[0].slice(0) : new Float32Array(128));
          return true;
        }
      }
      registerProcessor('calldock-recorder', CalldockRecorder);`;
    await this.ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
    this.node = new AudioWorkletNode(this.ctx, 'calldock-recorder');
    this.chunks = [];
    this.recording = false;
    this.node.port.onmessage = (e) => {
      if (this.recording) this.chunks.push(e.data);
    };
    // The graph must reach the destination to be pulled; a zero gain keeps it silent.
    const silent = this.ctx.createGain();
    silent.gain.value = 0;
    this.node.connect(silent).connect(this.ctx.destination);
    await this.ctx.resume();
    log(`audio context ${this.ctx.state} at ${this.ctx.sampleRate} Hz`);
  }

  attach(track) {
    const stream = new MediaStream([track]);
    // Chromium only decodes remote WebRTC audio that a media element plays (muted is enough).
    this.element = new Audio();
    this.element.muted = true;
    this.element.srcObject = stream;
    this.element.play().catch((e) => log(`audio element: ${e}`));
    this.ctx.createMediaStreamSource(stream).connect(this.node);
  }

  pcm() {
    const n = this.chunks.reduce((sum, c) => sum + c.length, 0);
    const out = new Float32Array(n);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

async function collectStats() {
  const report = await pc.getStats();
  const stats = {};
  let pairId = null;
  let codecId = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      stats.packets_received = r.packetsReceived;
      stats.packets_lost = r.packetsLost;
      stats.jitter_ms = r.jitter * 1000;
      stats.concealed_samples = r.concealedSamples;
      stats.total_samples_received = r.totalSamplesReceived;
      // NetEq's time stretching: what warps the received speech against the sent speech.
      stats.inserted_samples_for_deceleration = r.insertedSamplesForDeceleration;
      stats.removed_samples_for_acceleration = r.removedSamplesForAcceleration;
      stats.jitter_buffer_delay_ms = (1000 * r.jitterBufferDelay) / Math.max(1, r.jitterBufferEmittedCount);
      stats.jitter_buffer_target_ms = (1000 * r.jitterBufferTargetDelay) / Math.max(1, r.jitterBufferEmittedCount);
      codecId = r.codecId;
    }
    if (r.type === 'outbound-rtp' && r.kind === 'audio') stats.packets_sent = r.packetsSent;
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      stats.video_frames_decoded = r.framesDecoded;
      stats.video_key_frames_decoded = r.keyFramesDecoded;
      stats.video_frame_width = r.frameWidth;
      stats.video_frame_height = r.frameHeight;
      stats.video_frames_dropped = r.framesDropped;
      stats.video_plis_sent = r.pliCount;
      stats.video_packets_lost = r.packetsLost;
      if (r.codecId && report.get(r.codecId)) stats.video_codec = report.get(r.codecId).mimeType;
    }
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      stats.video_frames_encoded = r.framesEncoded;
      stats.video_key_frames_encoded = r.keyFramesEncoded;
      stats.video_plis_received = r.pliCount;
      stats.video_sent_width = r.frameWidth;
    }
    if (r.type === 'transport') {
      pairId = r.selectedCandidatePairId;
      stats.dtls_cipher = r.dtlsCipher;
      stats.srtp_cipher = r.srtpCipher;
      stats.dtls_role = r.dtlsRole;
    }
  });
  if (codecId && report.get(codecId)) stats.codec = report.get(codecId).mimeType;
  const pair = pairId && report.get(pairId);
  if (pair) {
    stats.rtt_ms = pair.currentRoundTripTime * 1000;
    const describe = (c) => c && `${c.candidateType} ${c.protocol} ${c.address}:${c.port}`;
    stats.local_candidate = describe(report.get(pair.localCandidateId));
    stats.remote_candidate = describe(report.get(pair.remoteCandidateId));
  }
  return stats;
}

async function fail(error) {
  if (finished) return;
  finished = true;
  log(`FAILED: ${error && error.stack ? error.stack : error}`);
  const body = {
    ok: false,
    error: String(error && error.message ? error.message : error),
    log: lines,
    local_sdp: pc && pc.localDescription ? pc.localDescription.sdp : null,
    remote_sdp: pc && pc.remoteDescription ? pc.remoteDescription.sdp : null,
  };
  await post('/result', JSON.stringify(body), 'application/json').catch(() => {});
}

async function main() {
  setTimeout(() => fail(new Error('the page did not finish in time')), DURATION_MS + 40000);
  if (!SERVER || !USER || !['call', 'answer'].includes(ROLE) || (ROLE === 'call' && !PEER)) {
    throw new Error('usage: peer.html?server=URL&user=NAME&role=call|answer&peer=NAME&duration=SECONDS');
  }
  log(navigator.userAgent);
  const recorder = new Recorder();
  await recorder.init();

  // §4: log in over REST, then hello and auth on the WebSocket.
  const login = { user: USER, display_name: `Chromium ${USER}`, device: `chromium-${hex(4)}` };
  const session = await rest('POST', '/v1/login', login);
  const turn = await rest('GET', '/v1/turn', null, session.token);
  const iceServers = turn.uris.length
    ? [{ urls: turn.uris, username: turn.username, credential: turn.credential }]
    : [];
  const sig = new Signaling(`${SERVER.replace(/^http/, 'ws')}/v1/ws`);
  await sig.open();
  const welcome = await sig.request('hello', { protocol: '1.0', agent: 'calldock-interop-chromium/0.1' });
  if (welcome.protocol.split('.')[0] !== '1') {
    throw new Error(`protocol version mismatch: the server speaks ${welcome.protocol}, this page 1.0`);
  }
  await sig.request('auth', { token: session.token });
  log(`signed in as ${USER} (device ${session.device}) on ${welcome.server}, protocol ${welcome.protocol}`);

  // The peer connection exists before the call, so that no relayed candidate finds it missing.
  pc = new RTCPeerConnection({ iceServers });
  let callId = null;
  let transceiver = null;
  let videoTransceiver = null;
  const pendingIce = [];
  let endSent = false;
  const connected = new Promise((resolve, reject) => {
    pc.onconnectionstatechange = () => {
      log(`connection ${pc.connectionState} (ice ${pc.iceConnectionState})`);
      if (pc.connectionState === 'connected') resolve();
      if (pc.connectionState === 'failed') reject(new Error('the peer connection failed'));
    };
  });
  pc.onicecandidate = (e) => {
    if (!callId) return;
    const c = e.candidate;
    // Chromium may announce an empty candidate before the final null: one end-of-candidates.
    if (c && !c.candidate) return;
    if (!c && endSent) return;
    const fields = c
      ? {
          call_id: callId,
          candidate: c.candidate,
          sdp_mid: c.sdpMid ?? undefined,
          sdp_mline_index: c.sdpMLineIndex ?? undefined,
        }
      : { call_id: callId, candidate: '' };
    if (!c) endSent = true;
    log(c ? `local candidate ${c.candidate}` : 'local candidates complete');
    sig.request('ice', fields).catch((err) => log(`ice relay refused: ${err.message}`));
  };
  pc.ontrack = (e) => {
    log(`remote ${e.track.kind} track`);
    if (e.track.kind === 'video') {
      // Chromium decodes what a sink consumes: a muted, hidden <video>.
      const v = document.createElement('video');
      v.muted = true;
      v.srcObject = new MediaStream([e.track]);
      document.body.appendChild(v);
      v.play().catch((err) => log(`video play: ${err}`));
      return;
    }
    // NetEq adapts its delay to the arrival jitter by stretching and squeezing what it plays
    // (the stats' inserted/removed samples), which warps speech against what was said by tens
    // of ms. A fixed floor of JITTER_TARGET_MS absorbs a loaded machine's jitter instead.
    if ('jitterBufferTarget' in e.receiver) e.receiver.jitterBufferTarget = JITTER_TARGET_MS;
    recorder.attach(e.track);
  };
  const addRemoteCandidate = async (m) => {
    const init = { candidate: m.candidate, sdpMid: m.sdp_mid ?? null, sdpMLineIndex: m.sdp_mline_index ?? null };
    if (!m.candidate) log('remote end of candidates');
    else log(`remote candidate ${m.candidate} (mid ${m.sdp_mid}, mline ${m.sdp_mline_index})`);
    try {
      await pc.addIceCandidate(init);
    } catch (e) {
      log(`addIceCandidate refused ${JSON.stringify(init)}: ${e}`);
    }
  };
  sig.on('ice', (m) => {
    if (m.call_id !== callId) return;
    if (pc.remoteDescription) addRemoteCandidate(m);
    else pendingIce.push(m);
  });
  const applyRemote = async (description) => {
    await pc.setRemoteDescription(description);
    for (const m of pendingIce.splice(0)) await addRemoteCandidate(m);
  };
  await post('/ready', USER);

  let answeredAt = null; // when the call was answered: media setup starts
  if (ROLE === 'answer') {
    const invite = await sig.next('call.invite', null, 30000);
    callId = invite.call.call_id;
    log(`incoming ${invite.call.media} call ${callId} from ${invite.call.caller}`);
    await sig.request('call.ringing', { call_id: callId });
    await sig.request('call.accept', { call_id: callId, media: VIDEO ? 'video' : 'audio' });
    answeredAt = performance.now();
    // §9.1: the caller offers, the accepting device answers.
    const offer = await sig.next('sdp', (m) => m.call_id === callId && m.kind === 'offer', 15000);
    log(`offer from ${offer.from}/${offer.from_device}`);
    await applyRemote({ type: 'offer', sdp: offer.sdp });
    transceiver = pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio');
    if (!transceiver) throw new Error('the offer has no audio section');
    transceiver.direction = 'sendrecv';
    if (VIDEO) {
      videoTransceiver = pc.getTransceivers().find((t) => t.receiver.track.kind === 'video');
      if (!videoTransceiver) throw new Error('a video call, but the offer has no video section');
      videoTransceiver.direction = 'sendrecv';
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await sig.request('sdp', { call_id: callId, kind: 'answer', sdp: pc.localDescription.sdp });
  } else {
    callId = hex(16);
    transceiver = pc.addTransceiver('audio', { direction: 'sendrecv' });
    if (VIDEO) videoTransceiver = pc.addTransceiver('video', { direction: 'sendrecv' });
    await sig.request('call.invite', { call_id: callId, to: PEER, media: VIDEO ? 'video' : 'audio' });
    log(`calling ${PEER}: call ${callId}`);
    await sig.next('call.accepted', (m) => m.call_id === callId, 30000);
    answeredAt = performance.now();
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await sig.request('sdp', { call_id: callId, kind: 'offer', sdp: pc.localDescription.sdp });
    const answer = await sig.next('sdp', (m) => m.call_id === callId && m.kind === 'answer', 15000);
    log(`answer from ${answer.from}/${answer.from_device}`);
    await applyRemote({ type: 'answer', sdp: answer.sdp });
  }
  const ended = sig.next('call.ended', (m) => m.call_id === callId, DURATION_MS + 30000);
  ended.catch(() => {}); // awaited below; a late timeout after the page finished is no error

  await withTimeout(connected, 20000, 'the peer connection to connect');
  const connectMs = performance.now() - answeredAt;
  // Listen from now, and speak from now: the fake microphone (a WAV file, played once) starts
  // when it is opened, so it is opened here and swapped into the negotiated sender.
  recorder.recording = true;
  const mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  await transceiver.sender.replaceTrack(mic.getAudioTracks()[0]);
  log(`microphone on (${JSON.stringify(mic.getAudioTracks()[0].getSettings().sampleRate)} Hz)`);
  let camera = null;
  if (VIDEO) {
    camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, frameRate: 30 } });
    await videoTransceiver.sender.replaceTrack(camera.getVideoTracks()[0]);
    const s = camera.getVideoTracks()[0].getSettings();
    log(`camera on (${s.width}×${s.height} at ${s.frameRate} fps)`);
  }

  // Once a second: how NetEq is doing (see docs/interop.md, "NetEq warps the first speech").
  const ticker = setInterval(async () => {
    const s = await collectStats().catch(() => ({}));
    log(
      `received ${s.packets_received} packets; jitter buffer ${Math.round(s.jitter_buffer_delay_ms)} ms, ` +
        `stretched +${s.inserted_samples_for_deceleration} -${s.removed_samples_for_acceleration} samples, ` +
        `concealed ${s.concealed_samples}`,
    );
  }, 1000);
  let endedBy;
  if (ROLE === 'call') {
    await Promise.race([sleep(DURATION_MS), ended]);
    await sig.request('call.end', { call_id: callId }).catch((e) => log(`call.end: ${e.message}`));
    endedBy = 'this page hung up';
  } else {
    const m = await ended;
    endedBy = `call.ended ${m.reason} by ${m.by}`;
  }
  recorder.recording = false;
  clearInterval(ticker);
  log(`call over: ${endedBy}`);
  const stats = await collectStats();
  stats.connect_ms = connectMs;
  stats.recorded_seconds = recorder.pcm().length / SAMPLE_RATE;
  const localSdp = pc.localDescription.sdp;
  const remoteSdp = pc.remoteDescription.sdp;
  mic.getTracks().forEach((t) => t.stop());
  if (camera) camera.getTracks().forEach((t) => t.stop());
  pc.close();
  finished = true;
  await post('/pcm', recorder.pcm().buffer, 'application/octet-stream');
  const result = { ok: true, log: lines, stats, local_sdp: localSdp, remote_sdp: remoteSdp };
  await post('/result', JSON.stringify(result), 'application/json');
}

main().catch(fail);
