#!/usr/bin/env python3
"""A Calldock client with aiortc as its WebRTC stack: the foreign peer of
tests/interop_aiortc.rs (docs/interop.md).

It speaks the Calldock signaling protocol v1 (docs/protocol.md): login over REST, the
WebSocket with hello/auth, then places (--call PEER) or answers (--answer) one audio call,
relays SDP and ICE, holds the call and hangs up. A WAV file is the microphone (aiortc's
MediaPlayer, then silence) and another WAV file the speaker (48 kHz mono 16-bit, samples
placed by their RTP timestamps so that silence sent as DTX keeps its length).

This is a test tool: it gathers host candidates on 127.0.0.1 only and ignores remote
candidates that are not on loopback, so its traffic never leaves the machine.

Prints one line per step on stdout ("waiting for calls", "connected", "ended: ..."). Exit
codes, as calldock's: 0 the call connected, media flowed both ways and it ended by a hangup;
1 the call did not succeed (declined, missed, failed, no media); 2 bad usage; 3 the server
could not be reached or refused us; 4 internal error.
"""

import argparse
import array
import asyncio
import fractions
import ipaddress
import json
import logging
import os
import secrets
import sys
import time
import traceback
import wave

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SERVER, EXIT_INTERNAL = 0, 1, 2, 3, 4
PROTOCOL = "1.0"
RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz
log = logging.getLogger("calldock.signaling")


def say(line: str) -> None:
    print(line, flush=True)


class Failure(Exception):
    """The call did not succeed; the message says why."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def loopback_only() -> None:
    """aioice gathers host candidates on every interface except loopback
    (`aioice.ice.get_host_addresses` skips 127.0.0.1). Gather on 127.0.0.1 and nothing else."""
    import aioice.ice

    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        raise Failure(
            "aioice.ice.get_host_addresses is gone: this aioice version gathers candidates differently; "
            "update loopback_only() in interop/aiortc/peer.py",
            EXIT_INTERNAL,
        )

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = host_addresses


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname (mDNS) or garbage


def loopback_sdp(sdp: str) -> str:
    """Drops the remote SDP's candidates that are not on loopback (none are expected)."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            bits = line.split()
            if len(bits) < 8 or not is_loopback(bits[4]):
                logging.warning("ignoring a remote candidate that is not on loopback: %s", line)
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class Signaling:
    """The protocol client: REST login, then one WebSocket. Replies are matched by `re`;
    events (and the local events of the media session) arrive on `events`."""

    def __init__(self, base: str, user: str, name: str, device: str) -> None:
        self.base = base.rstrip("/")
        self.user, self.name, self.device = user, name, device
        self.events: asyncio.Queue = asyncio.Queue()
        self._pending: dict = {}
        self._next_id = 0
        self._http = None
        self._ws = None
        self._reader = None

    async def open(self) -> None:
        import aiohttp

        if not self.base.startswith(("http://", "https://")):
            raise Failure(f"--server {self.base}: use http://HOST:PORT", EXIT_USAGE)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        body = {"user": self.user, "display_name": self.name, "device": self.device}
        try:
            async with self._http.post(f"{self.base}/v1/login", json=body) as response:
                reply = await response.json(content_type=None)
                if response.status != 200:
                    raise Failure(
                        f"login refused ({response.status} {reply.get('code')}): {reply.get('message')}",
                        EXIT_SERVER,
                    )
            ws_url = "ws" + self.base[len("http") :] + "/v1/ws"
            self._ws = await self._http.ws_connect(ws_url, max_msg_size=262144, heartbeat=None)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise Failure(f"cannot reach the server at {self.base}: {e}", EXIT_SERVER) from e
        self._reader = asyncio.ensure_future(self._read())
        welcome = await self.request("hello", protocol=PROTOCOL, agent="calldock-interop-aiortc/1.0 (aiortc)")
        theirs = str(welcome.get("protocol", ""))
        if theirs.split(".")[0] != PROTOCOL.split(".")[0]:
            raise Failure(
                f"protocol version mismatch: the server speaks Calldock protocol {theirs}, "
                f"this client speaks {PROTOCOL}",
                EXIT_SERVER,
            )
        await self.request("auth", token=reply["token"])

    async def _read(self) -> None:
        import aiohttp

        try:
            async for message in self._ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                log.debug("<- %s", message.data)
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    logging.warning("server sent a frame that is not JSON: %r", message.data[:200])
                    continue
                waiter = self._pending.pop(frame.get("re"), None) if "re" in frame else None
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(frame)
                elif "re" not in frame:
                    await self.events.put(frame)
        finally:
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(Failure("the signaling connection closed", EXIT_SERVER))
            await self.events.put(None)

    async def request(self, kind: str, /, **fields) -> dict:
        self._next_id += 1
        rid = f"p{self._next_id}"
        waiter = asyncio.get_running_loop().create_future()
        self._pending[rid] = waiter
        frame = {"id": rid, "type": kind, **{k: v for k, v in fields.items() if v is not None}}
        log.debug("-> %s", json.dumps(frame))
        try:
            await self._ws.send_str(json.dumps(frame))
        except (ConnectionError, RuntimeError) as e:
            self._pending.pop(rid, None)
            raise Failure(f"the signaling connection closed: {e}", EXIT_SERVER) from e
        try:
            reply = await asyncio.wait_for(waiter, 10)
        except asyncio.TimeoutError as e:
            raise Failure(f"no reply to {kind} within 10 s", EXIT_SERVER) from e
        if reply.get("type") == "error":
            code = EXIT_SERVER if kind in ("hello", "auth") else EXIT_FAILED
            raise Failure(f"{kind} refused: {reply.get('code')}: {reply.get('message')}", code)
        return reply

    async def next_event(self, timeout: float):
        """The next event, or None when the socket closed; raises TimeoutError."""
        return await asyncio.wait_for(self.events.get(), timeout)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (asyncio.TimeoutError, Exception):
                pass
        if self._http is not None:
            await self._http.close()


def make_mic(path):
    """The microphone: the WAV file through aiortc's MediaPlayer (decoded, resampled to
    48 kHz stereo 20 ms frames, paced in real time), then silence until the call ends."""
    from aiortc.contrib.media import MediaPlayer
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
    from av import AudioFrame

    class Mic(AudioStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self._player = MediaPlayer(path) if path else None
            self._source = self._player.audio if self._player else None
            if self._player is not None and self._source is None:
                raise Failure(f"--mic {path}: the file has no audio stream", EXIT_USAGE)
            self._t0 = None
            self._pts = 0
            self.frames_from_file = 0
            self.max_late_ms = 0.0  # how far behind its real-time schedule a frame left

        async def recv(self):
            if self.readyState != "live":
                raise MediaStreamError
            if self._source is not None:
                try:
                    frame = await self._source.recv()
                    if self._t0 is None:
                        self._t0 = time.time() - float(frame.pts * frame.time_base)
                    self._pts = frame.pts + frame.samples
                    self.frames_from_file += 1
                    self._late(frame.pts)
                    return frame
                except MediaStreamError:
                    self._source = None
            if self._t0 is None:
                self._t0 = time.time()
            wait = self._t0 + self._pts / RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            frame = AudioFrame(format="s16", layout="stereo", samples=FRAME)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts = self._pts
            frame.sample_rate = RATE
            frame.time_base = fractions.Fraction(1, RATE)
            self._late(frame.pts)
            self._pts += FRAME
            return frame

        def _late(self, pts: int) -> None:
            late_ms = (time.time() - self._t0 - pts / RATE) * 1000
            self.max_late_ms = max(self.max_late_ms, late_ms)

        def stop(self) -> None:
            super().stop()
            if self._source is not None:
                self._source.stop()
                self._source = None

    return Mic()


class Speaker:
    """What is heard, as 48 kHz mono 16-bit. The file's time starts when media connects; the
    first frame lands at its arrival time and each later one at its RTP timestamp, so gaps
    (DTX silence) keep their length and the file does not depend on this process keeping up."""

    def __init__(self, path) -> None:
        self.path = path
        self.start = None
        self.samples = array.array("h")
        self.frames = 0
        self._first_pts = None
        self._anchor = 0
        self._resampler = None

    def _mono(self, frame):
        """Mono s16 48 kHz samples of a frame (aiortc's Opus decoder gives s16 stereo)."""
        import av

        if frame.format.name != "s16" or frame.sample_rate != RATE:
            if self._resampler is None:
                self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            out = array.array("h")
            for f in self._resampler.resample(frame):
                out.frombytes(bytes(f.planes[0])[: f.samples * 2])
            return out
        channels = len(frame.layout.channels)
        data = array.array("h")
        data.frombytes(bytes(frame.planes[0])[: frame.samples * channels * 2])
        # The first channel: calldock sends mono, which the decoder gives as two equal channels.
        return data[::channels]

    def connected(self) -> None:
        if self.start is None:
            self.start = time.monotonic()

    def put(self, frame) -> None:
        samples = self._mono(frame)
        self.frames += 1
        self.connected()  # a frame may be handled before the connection state
        wall = int((time.monotonic() - self.start) * RATE)
        if frame.pts is None or frame.time_base is None:
            at = max(wall, len(self.samples))
        else:
            pts = int(frame.pts * frame.time_base * RATE)
            if self._first_pts is None:
                self._first_pts, self._anchor = pts, wall
            at = self._anchor + (pts - self._first_pts) % (1 << 32)
            if abs(at - wall) > RATE:  # a timestamp jump: start again from the arrival time
                self._first_pts, self._anchor, at = pts, wall, wall
        end = at + len(samples)
        if end > len(self.samples):
            self.samples.extend(array.array("h", [0]) * (end - len(self.samples)))
        self.samples[at:end] = samples

    async def consume(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.put(frame)

    def finish(self) -> None:
        if self.path is None:
            return
        data = self.samples
        if sys.byteorder != "little":
            data = array.array("h", data)
            data.byteswap()
        with wave.open(self.path, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(data.tobytes())


def tampered_fingerprint(sdp: str) -> str:
    """The SDP with one hex digit of each certificate fingerprint changed: what a man in the
    middle's SDP looks like to the other side, whose DTLS check must then fail."""
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=fingerprint:"):
            algorithm, value = line.split(" ", 1)
            first = value[0]
            value = ("B" if first == "A" else "A") + value[1:]
            line = f"{algorithm} {value}"
        lines.append(line)
    return "\r\n".join(lines)


def parse_candidate(event: dict):
    from aiortc.sdp import candidate_from_sdp

    text = event.get("candidate", "")
    candidate = candidate_from_sdp(text[len("candidate:") :] if text.startswith("candidate:") else text)
    candidate.sdpMid = event.get("sdp_mid")
    candidate.sdpMLineIndex = event.get("sdp_mline_index")
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # one audio m-line
    return candidate


async def media_stats(pc) -> tuple:
    sent = received = 0
    report = await pc.getStats()
    for stats in report.values():
        if stats.type == "outbound-rtp" and stats.kind == "audio":
            sent += stats.packetsSent
        elif stats.type == "inbound-rtp" and stats.kind == "audio":
            received += stats.packetsReceived
    return sent, received


async def hold_call(args, sig: Signaling, call_id: str, offerer: bool) -> None:
    """Runs the call's media until a hangup; raises Failure when it does not succeed."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    # No ICE servers: aiortc's default is a public STUN server, and this peer stays on loopback.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    mic = make_mic(args.mic)
    speaker = Speaker(args.speaker)
    readers = []
    pending = []  # remote candidates that came before the remote description

    @pc.on("track")
    def on_track(track) -> None:
        if track.kind == "audio":
            readers.append(asyncio.ensure_future(speaker.consume(track)))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            speaker.connected()
        sig.events.put_nowait({"type": "_pc", "state": pc.connectionState})

    async def send_description() -> None:
        kind = pc.localDescription.type
        sdp = pc.localDescription.sdp
        if args.tamper_fingerprint:
            sdp = tampered_fingerprint(sdp)
        await sig.request("sdp", call_id=call_id, kind=kind, sdp=sdp)
        # aiortc does not trickle: every candidate is in the SDP. Say so (docs/protocol.md §9.2).
        await sig.request("ice", call_id=call_id, candidate="")

    async def add_candidate(candidate) -> None:
        try:
            await pc.addIceCandidate(candidate)
        except Exception as e:  # a bad candidate is the other side's problem, not a reason to end
            logging.warning("ignoring a remote candidate: %r", e)

    connected = False
    connect_deadline = loop.time() + args.connect_timeout
    hangup_at = None
    outcome = None
    ended = False  # the server has ended the call, or we asked it to
    try:
        if offerer:
            pc.addTrack(mic)
            await pc.setLocalDescription(await pc.createOffer())
            await send_description()
        while outcome is None:
            now = loop.time()
            deadline = hangup_at if connected else connect_deadline
            try:
                event = await sig.next_event(max(0.0, deadline - now) if deadline is not None else None)
            except asyncio.TimeoutError:
                ended = True
                if not connected:
                    await sig.request("call.end", call_id=call_id, failure="ice")
                    raise Failure(f"media did not connect within {args.connect_timeout:g} s") from None
                await sig.request("call.end", call_id=call_id)
                outcome = "ended: you hung up"
                continue
            if event is None:
                raise Failure("the signaling connection closed during the call", EXIT_SERVER)
            kind = event.get("type")
            if kind != "_pc" and event.get("call_id") != call_id:
                continue
            if kind == "sdp":
                description = RTCSessionDescription(sdp=loopback_sdp(event["sdp"]), type=event["kind"])
                try:
                    await pc.setRemoteDescription(description)
                except Exception as e:
                    raise Failure(f"aiortc refused the other side's {event['kind']}: {e!r}") from e
                for candidate in pending:
                    await add_candidate(candidate)
                pending.clear()
                if description.type == "offer":
                    if not pc.getSenders() or all(s.track is None for s in pc.getSenders()):
                        pc.addTrack(mic)
                    await pc.setLocalDescription(await pc.createAnswer())
                    await send_description()
            elif kind == "ice":
                if not event.get("candidate"):
                    candidate = None  # end of candidates
                else:
                    try:
                        candidate = parse_candidate(event)
                    except Exception as e:
                        logging.warning("ignoring an unreadable remote candidate %r: %r", event.get("candidate"), e)
                        continue
                    if not is_loopback(candidate.ip):
                        logging.warning("ignoring a remote candidate that is not on loopback: %s", event["candidate"])
                        continue
                if pc.remoteDescription is None:
                    pending.append(candidate)
                else:
                    await add_candidate(candidate)
            elif kind == "ice.restart":
                logging.warning("the other side asked for an ICE restart; aiortc cannot restart ICE")
            elif kind == "_pc":
                state = event["state"]
                if state == "connected" and not connected:
                    connected = True
                    say("connected")
                    if args.duration is not None:
                        hangup_at = loop.time() + args.duration
                elif state == "failed" and args.tamper_fingerprint and not connected:
                    # With a forged fingerprint this side's failure is expected; the test is
                    # whether the other side notices by itself, so leave ending the call to it.
                    say("the peer connection failed (expected with a tampered fingerprint)")
                elif state == "failed":
                    ended = True
                    await sig.request("call.end", call_id=call_id, failure="ice" if not connected else "media")
                    raise Failure("the peer connection failed")
            elif kind == "call.ended":
                ended = True
                reason = event.get("reason")
                if reason == "hangup":
                    by = event.get("by")
                    outcome = (
                        "ended: you hung up" if by == sig.user else f"ended: hung up by {event.get('by_name') or by}"
                    )
                else:
                    raise Failure(f"ended: {reason}" + (f" ({event['failure']})" if event.get("failure") else ""))
        sent, received = await media_stats(pc)
        say(
            f"media: sent {sent} RTP packets (microphone up to {mic.max_late_ms:.0f} ms behind real time), "
            f"received {received}; {speaker.frames} audio frames heard"
        )
        if not connected:
            raise Failure("the call ended before media connected")
        if sent == 0 or received == 0 or speaker.frames == 0:
            raise Failure(f"media did not flow both ways (sent {sent} packets, received {received})")
        say(outcome)
    except BaseException:
        # Leave the call on the server too, unless it is already over; a failure here changes
        # nothing about the exit code.
        if outcome is None and not ended:
            try:
                await sig.request("call.end", call_id=call_id, failure="media")
            except Exception:
                pass
        raise
    finally:
        mic.stop()
        await pc.close()
        for reader in readers:
            try:
                await asyncio.wait_for(reader, 2)
            except (asyncio.TimeoutError, Exception):
                reader.cancel()
        speaker.finish()


async def run(args) -> int:
    loopback_only()
    sig = Signaling(args.server, args.user, args.name or args.user, args.device)
    try:
        await sig.open()
        if args.call:
            call_id = secrets.token_hex(16)
            say(f"calling {args.call}")
            created = await sig.request("call.invite", call_id=call_id, to=args.call, media="audio")
            call_id = created["call"]["call_id"]
            while True:
                try:
                    event = await sig.next_event(args.ring_timeout)
                except asyncio.TimeoutError:
                    await sig.request("call.cancel", call_id=call_id)
                    raise Failure(f"nobody answered within {args.ring_timeout:g} s") from None
                if event is None:
                    raise Failure("the signaling connection closed while ringing", EXIT_SERVER)
                if event.get("call_id") != call_id:
                    continue
                if event["type"] == "call.ringing":
                    say("ringing")
                elif event["type"] == "call.accepted":
                    say(f"answered by {event.get('user')}")
                    break
                elif event["type"] == "call.ended":
                    raise Failure(f"ended: {event.get('reason')}")
            await hold_call(args, sig, call_id, offerer=True)
        else:
            say("waiting for calls")
            while True:
                try:
                    event = await sig.next_event(args.ring_timeout)
                except asyncio.TimeoutError:
                    raise Failure(f"no call came within {args.ring_timeout:g} s") from None
                if event is None:
                    raise Failure("the signaling connection closed while waiting for a call", EXIT_SERVER)
                if event["type"] == "call.invite":
                    break
            call = event["call"]
            call_id = call["call_id"]
            say(f"incoming {call.get('media')} call from {call.get('caller_name')} ({call.get('caller')})")
            await sig.request("call.ringing", call_id=call_id)
            await sig.request("call.accept", call_id=call_id, media="audio")
            await hold_call(args, sig, call_id, offerer=False)
        return EXIT_OK
    finally:
        await sig.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="base URL, e.g. http://127.0.0.1:7878")
    parser.add_argument("--user", required=True)
    parser.add_argument("--name", help="display name (default: the user name)")
    parser.add_argument("--device", default="aiortc", help="device id (default: aiortc)")
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--call", metavar="PEER", help="call this user")
    role.add_argument("--answer", action="store_true", help="wait for one call and answer it")
    parser.add_argument("--mic", help="WAV file to play as the microphone (then silence); default silence")
    parser.add_argument("--speaker", help="WAV file to write what is heard into (48 kHz mono 16-bit)")
    parser.add_argument("--duration", type=float, help="hang up this many seconds after media connects")
    parser.add_argument("--connect-timeout", type=float, default=15.0, help="seconds for media to connect")
    parser.add_argument("--ring-timeout", type=float, default=60.0, help="seconds to wait for an answer or a call")
    parser.add_argument(
        "--tamper-fingerprint",
        action="store_true",
        help="send SDP whose DTLS certificate fingerprint is wrong (tests the other side's check)",
    )
    parser.add_argument("--verbose", action="store_true", help="log signaling frames, aiortc and aioice at debug level")
    args = parser.parse_args()
    if args.mic and not os.path.isfile(args.mic):
        parser.error(f"--mic {args.mic}: no such file")
    if args.call and args.duration is None:
        parser.error("--call needs --duration")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s aiortc-peer %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(run(args))
    except Failure as e:
        print(f"aiortc-peer: {e}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        return EXIT_FAILED
    except Exception:
        traceback.print_exc()
        print("aiortc-peer: internal error (above)", file=sys.stderr, flush=True)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
