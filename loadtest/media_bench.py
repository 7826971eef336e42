"""Media benchmarks (docs/performance.md, "Live video"):

  python -m loadtest.media_bench fanout  [--viewers 1,4,8,16] [--size 640x360] [--seconds 10]
  python -m loadtest.media_bench latency [--seconds 15]
  python -m loadtest.media_bench ingest  [--seconds 15]
  python -m loadtest.media_bench linkmic [--seconds 8]

fanout: WHEP viewers per core. One source (lavfi testsrc, decoded: what a WHIP ingest
  hands over), N aiortc viewer peers in another process. `shared` = liveserver's path (one
  encode, packets fanned out: liveserver.media.pipeline + packets); `relay` = aiortc's
  MediaRelay, one RTCRtpSender per viewer, each encoding. Same x264 settings for both
  (aiortc's: preset medium, zerolatency, baseline, 1 Mbps). The viewers do not decode (a
  counting stub decoder), so their process stays light; the server process's CPU is measured.
latency: glass-to-glass through a real `liveserver media` process: a WHIP publisher
  stamps its wall clock into each frame (32 black/white blocks), a WHEP viewer decodes and
  reads it; for HLS, the time from a segment's first frame being captured to the segment
  being listed in the playlist.
ingest: CPU of the media process per WHIP ingest at 720p30 and 360p30 (decode + one
  encode + HLS live + recording, no viewers), and per RTMP ingest at 720p30 (remux).
linkmic: CPU of the media process with the host alone, then (same process, same live)
  with a link-mic guest composed in (one more decode + scale + copy into the program),
  at 720p30 and 360p30.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import av
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
SECRET = "media-bench-secret-0123456789abcdef"
BITS = 32
BLOCK = 16


# -- fan-out -----------------------------------------------------------------------------------
def _fanout_server(mode: str, size: str, conn: Any) -> None:
    from aiortc.contrib.media import MediaPlayer, MediaRelay

    from liveserver.media.health import IngestHealth
    from liveserver.media.packets import PacketTrack
    from liveserver.media.pipeline import Pipeline
    from liveserver.media.settings import MediaSettings
    from liveserver.media.webrtc import add_h264_sender, answer, new_pc

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tmp = Path(tempfile.mkdtemp(prefix="media-bench-"))
        settings = MediaSettings(data_dir=tmp, preset="medium", bitrate=1_000_000)
        player = MediaPlayer(f"testsrc=size={size}:rate=30", format="lavfi")
        pipeline = None
        relay = MediaRelay()
        if mode == "shared":
            async def started(w: int, h: int) -> None:
                return None

            pipeline = Pipeline(settings, tmp / "live", tmp / "rec", IngestHealth("bench"), started)

            async def feed() -> None:
                while True:
                    pipeline.put(await player.video.recv())

            asyncio.ensure_future(feed())
        pcs = []
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg[0] == "stop":
                break
            pc = new_pc(settings)
            if pipeline is not None:
                track: Any = PacketTrack(settings.viewer_queue)
                pipeline.fanout.add(track)
            else:
                track = relay.subscribe(player.video, buffered=False)
            add_h264_sender(pc, track)
            conn.send(await answer(pc, msg[1]))
            pcs.append(pc)
        for pc in pcs:
            await pc.close()

    asyncio.run(main())


def _fanout_clients(n: int, conn: Any, report: Any) -> None:
    import aiortc.rtcrtpreceiver as receiver
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    counters: list[list[int]] = []

    class CountingDecoder:
        def __init__(self) -> None:
            self.count = [0]
            counters.append(self.count)

        def decode(self, encoded_frame: Any) -> list[Any]:
            self.count[0] += 1
            return []

    receiver.get_decoder = lambda codec: CountingDecoder()  # the load generator does not decode

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pcs = []
        for _ in range(n):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            conn.send(("offer", pc.localDescription.sdp))
            sdp = await loop.run_in_executor(None, conn.recv)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            pcs.append(pc)
        while True:
            cmd = await loop.run_in_executor(None, report.recv)
            if cmd == "stop":
                break
            report.send([c[0] for c in counters])
        for pc in pcs:
            await pc.close()

    asyncio.run(main())


def fanout(viewers: list[int], size: str, seconds: float) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    rows = []
    for mode in ("shared", "relay"):
        for n in viewers:
            s_conn, c_conn = ctx.Pipe()
            r_parent, r_child = ctx.Pipe()
            server = ctx.Process(target=_fanout_server, args=(mode, size, s_conn))
            server.start()
            clients = ctx.Process(target=_fanout_clients, args=(n, c_conn, r_child))
            clients.start()
            proc = psutil.Process(server.pid)
            time.sleep(3 + n * 0.3)  # connect + warm up
            r_parent.send("count")
            c0 = r_parent.recv()
            t0, cpu0 = time.monotonic(), sum(proc.cpu_times()[:2])
            time.sleep(seconds)
            r_parent.send("count")
            c1 = r_parent.recv()
            t1, cpu1 = time.monotonic(), sum(proc.cpu_times()[:2])
            rss = proc.memory_info().rss
            r_parent.send("stop")
            clients.join(20)
            c_conn.send(("stop",))  # the clients are gone: their end of the pipe tells the server
            server.join(20)
            for p in (server, clients):
                if p.is_alive():
                    p.kill()
            elapsed = t1 - t0
            fps = [(b - a) / elapsed for a, b in zip(c0, c1)]
            cpu = (cpu1 - cpu0) / elapsed
            row = {
                "mode": mode, "viewers": n, "connected": len(c1), "server_cpu_pct": round(100 * cpu, 1),
                "fps_min": round(min(fps), 1) if fps else 0, "fps_mean": round(statistics.mean(fps), 1) if fps else 0,
                "viewers_per_core": round(n / cpu, 1) if cpu else None, "rss_mb": round(rss / 2**20),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# -- a real media process ------------------------------------------------------------------------
class MediaProcess:
    def __init__(self, rtmp: bool = False) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from harness import RedisServer, free_port

        self.redis = RedisServer().start()
        self.port = free_port()
        self.rtmp_port = free_port() if rtmp else 0
        self.data = Path(tempfile.mkdtemp(prefix="media-bench-data-"))
        env = dict(os.environ, LIVESERVER_REDIS_URL=self.redis.url, LIVESERVER_SECRET=SECRET,
                   LIVESERVER_DATA_DIR=str(self.data), LIVESERVER_RTMP_PORT=str(self.rtmp_port))
        self.proc = subprocess.Popen([sys.executable, "-m", "liveserver", "media", "--port", str(self.port), "--log-level", "warning"],
                                     env=env, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        return sum(self.ps.cpu_times()[:2])

    def host_token(self, room: str) -> str:
        from liveserver.core.auth import mint

        return mint(SECRET, "bench-host", role="host", room=room)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self.redis.stop()


def stamp(frame: av.VideoFrame, ms: int) -> None:
    plane = frame.planes[0]
    stride = plane.line_size
    buf = bytearray(bytes(plane))
    for bit in range(BITS):
        v = 255 if (ms >> bit) & 1 else 0
        x0 = bit * BLOCK
        for y in range(BLOCK):
            start = y * stride + x0
            buf[start : start + BLOCK] = bytes([v]) * BLOCK
    plane.update(bytes(buf))


def read_stamp(frame: av.VideoFrame) -> int:
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    ms = 0
    for bit in range(BITS):
        if data[(BLOCK // 2) * stride + bit * BLOCK + BLOCK // 2] > 128:
            ms |= 1 << bit
    return ms


def now_ms32() -> int:
    return int(time.time() * 1000) & 0xFFFFFFFF


def _stamped_track(width: int, height: int) -> Any:
    from aiortc import VideoStreamTrack

    class Stamped(VideoStreamTrack):
        async def recv(self) -> av.VideoFrame:
            pts, tb = await self.next_timestamp()
            frame = av.VideoFrame(width, height, "yuv420p")
            for i, plane in enumerate(frame.planes):
                plane.update(bytes([90 if i == 0 else 128]) * plane.buffer_size)
            stamp(frame, now_ms32())
            frame.pts, frame.time_base = pts, tb
            return frame

    return Stamped()


async def _whip(url: str, token: str, track: Any) -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcrtpsender import RTCRtpSender

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    t = pc.addTransceiver(track, direction="sendonly")
    t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in ("video/h264", "video/rtx")])
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(url, content=pc.localDescription.sdp, headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return pc, r.headers["location"]


async def _latency(seconds: float) -> dict[str, Any]:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    media = MediaProcess()
    room = "bench-latency"
    out: dict[str, Any] = {}
    try:
        pub, location = await _whip(f"{media.url}/api/v1/rooms/{room}/whip", media.host_token(room), _stamped_track(640, 360))
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(100):
                if (await http.get(f"{media.url}/media/{room}/live.m3u8")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{media.url}/api/v1/rooms/{room}/whep", content=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"})
        whep: list[int] = []

        @pc.on("track")
        def on_track(track: Any) -> None:
            async def read() -> None:
                from aiortc.mediastreams import MediaStreamError

                try:
                    while True:
                        frame = await track.recv()
                        whep.append((now_ms32() - read_stamp(frame)) & 0xFFFFFFFF)
                except MediaStreamError:
                    pass

            asyncio.ensure_future(read())

        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        hls: list[int] = []
        seen: set[str] = set()
        end = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=10) as http:
            while time.monotonic() < end:
                pl = await http.get(f"{media.url}/media/{room}/live.m3u8")
                t_avail = now_ms32()
                for name in [x for x in pl.text.splitlines() if x and not x.startswith("#")]:
                    if name in seen:
                        continue
                    seen.add(name)
                    if len(seen) <= 2:  # the window at join time: not fresh
                        continue
                    import io

                    seg = (await http.get(f"{media.url}/media/{room}/{name}")).content
                    with av.open(io.BytesIO(seg), format="mpegts") as c:
                        first = next(c.decode(video=0))
                    hls.append((t_avail - read_stamp(first)) & 0xFFFFFFFF)
                await asyncio.sleep(0.05)
        whep = [x for x in whep[30:] if x < 60_000]
        out = {
            "whep_frames": len(whep),
            "whep_p50_ms": statistics.median(whep) if whep else None,
            "whep_p95_ms": sorted(whep)[int(len(whep) * 0.95)] if whep else None,
            "hls_segments": len(hls),
            "hls_first_frame_to_listed_p50_ms": statistics.median(hls) if hls else None,
            "hls_max_ms": max(hls) if hls else None,
        }
        await pc.close()
        async with httpx.AsyncClient(timeout=10) as http:
            await http.delete(location)
        await pub.close()
    finally:
        media.stop()
    print(json.dumps(out), flush=True)
    return out


async def _ingest(seconds: float) -> list[dict[str, Any]]:
    rows = []
    for width, height in ((1280, 720), (640, 360)):
        media = MediaProcess()
        room = f"bench-ingest-{height}"
        try:
            from aiortc.contrib.media import MediaPlayer

            player = MediaPlayer(f"testsrc2=size={width}x{height}:rate=30", format="lavfi")
            pub, location = await _whip(f"{media.url}/api/v1/rooms/{room}/whip", media.host_token(room), player.video)
            await asyncio.sleep(4)  # warm-up: ICE, first keyframes (a measurement window, not a sync)
            c0, t0 = media.cpu(), time.monotonic()
            await asyncio.sleep(seconds)
            c1, t1 = media.cpu(), time.monotonic()
            async with httpx.AsyncClient(timeout=10) as http:
                health = (await http.get(f"{media.url}/api/v1/rooms/{room}/media/health",
                                         headers={"Authorization": f"Bearer {media.host_token(room)}"})).json()
                await http.delete(location)
            await pub.close()
            player.video.stop()
            src = health["sources"][0] if health.get("sources") else {}
            row = {"ingest": "whip", "size": f"{width}x{height}", "media_cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1),
                   "ingest_fps": src.get("fps"), "encode_ms_per_frame": src.get("encode_ms_per_frame"),
                   "dropped_frames": src.get("dropped_frames")}
        finally:
            media.stop()
        print(json.dumps(row), flush=True)
        rows.append(row)
    # RTMP remux at 720p30
    media = MediaProcess(rtmp=True)
    room = "bench-rtmp"
    stop = threading.Event()
    try:
        sys.path.insert(0, str(ROOT / "tests" / "media"))
        url = f"rtmp://127.0.0.1:{media.rtmp_port}/live/{room}/{media.host_token(room)}"
        th = threading.Thread(target=_rtmp_publish, args=(url, 1280, 720, stop), daemon=True)
        th.start()
        await asyncio.sleep(5)
        c0, t0 = media.cpu(), time.monotonic()
        await asyncio.sleep(seconds)
        c1, t1 = media.cpu(), time.monotonic()
        stop.set()
        th.join(20)
        row = {"ingest": "rtmp (remux)", "size": "1280x720", "media_cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1)}
    finally:
        media.stop()
    print(json.dumps(row), flush=True)
    rows.append(row)
    return rows


async def _linkmic(seconds: float) -> list[dict[str, Any]]:
    """Host alone vs host + one guest composed, in one media process per size."""
    import secrets as _secrets

    from aiortc.contrib.media import MediaPlayer

    from liveserver.core.auth import mint_cohost

    rows = []
    for width, height in ((1280, 720), (640, 360)):
        media = MediaProcess()
        room = f"bench-linkmic-{height}"
        players = []
        pcs = []
        try:
            async def window(label: str) -> dict[str, Any]:
                await asyncio.sleep(4)  # warm-up: ICE, first keyframes (a measurement window, not a sync)
                async with httpx.AsyncClient(timeout=10) as http:
                    url = f"{media.url}/api/v1/rooms/{room}/media/health"
                    auth = {"Authorization": f"Bearer {media.host_token(room)}"}
                    h0 = (await http.get(url, headers=auth)).json()
                    c0, t0 = media.cpu(), time.monotonic()
                    await asyncio.sleep(seconds)
                    c1, t1 = media.cpu(), time.monotonic()
                    h1 = (await http.get(url, headers=auth)).json()
                s0, s1 = h0["sources"][0], h1["sources"][0]
                encoded = s1["encoded_frames"] - s0["encoded_frames"]
                row = {"size": f"{width}x{height}", "program": label,
                       "media_cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1),
                       # the publishers share the 2 cores: per program frame is the fair unit
                       "cpu_ms_per_program_frame": round(1000 * (c1 - c0) / encoded, 2) if encoded else None,
                       "program_fps": round((s1["encoded_frames"] - s0["encoded_frames"]) / (t1 - t0), 1),
                       "encode_ms_per_frame": s1.get("encode_ms_per_frame"),
                       "compose_ms_per_frame": h1.get("compose_ms_per_frame", 0.0),
                       "dropped_in_window": s1["dropped_frames"] - s0["dropped_frames"]}
                print(json.dumps(row), flush=True)
                return row

            host = MediaPlayer(f"testsrc2=size={width}x{height}:rate=30", format="lavfi")
            players.append(host)
            pc, _ = await _whip(f"{media.url}/api/v1/rooms/{room}/whip", media.host_token(room), host.video)
            pcs.append(pc)
            alone = await window("host alone")
            # The guest, accepted as the web node would record it (linkmic.lua's hash).
            jti = _secrets.token_hex(8)
            media.redis.client().hset(f"lc:{{{room}}}:linkmic", mapping={
                "on:guest": "Guest", "at:guest": int(time.time() * 1000), "tok:guest": jti, "non": 1})
            guest = MediaPlayer("testsrc=size=640x360:rate=30", format="lavfi")  # a phone-sized guest
            players.append(guest)
            pc, _ = await _whip(f"{media.url}/api/v1/rooms/{room}/whip",
                                mint_cohost(SECRET, "guest", "Guest", room, jti, 60), guest.video)
            pcs.append(pc)
            both = await window("host + 1 guest (pip)")
            if alone["cpu_ms_per_program_frame"] and both["cpu_ms_per_program_frame"]:
                both["per_frame_ratio_vs_alone"] = round(both["cpu_ms_per_program_frame"] / alone["cpu_ms_per_program_frame"], 2)
            print(json.dumps({"size": f"{width}x{height}", "per_frame_ratio_vs_alone": both.get("per_frame_ratio_vs_alone")}), flush=True)
            rows += [alone, both]
        finally:
            for pc in pcs:
                await pc.close()
            for player in players:
                if player.video is not None:
                    player.video.stop()
            media.stop()
    return rows


def _rtmp_publish(url: str, width: int, height: int, stop: threading.Event) -> None:
    """Pre-encode 2 s of 720p30 once, then send it in a loop in real time (the publisher's
    own encoding is not what is measured, and the box has 2 cores)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, 1000)
    enc.framerate = fractions.Fraction(30, 1)
    enc.options = {"preset": "ultrafast", "g": "60", "bf": "0"}
    enc.bit_rate = 3_000_000
    src = av.open(f"testsrc2=size={width}x{height}:rate=30", format="lavfi")
    packets = []
    for i, frame in enumerate(src.decode(video=0)):
        if i == 60:
            break
        frame.pts, frame.time_base = i * 1000 // 30, fractions.Fraction(1, 1000)
        frame.pict_type = av.video.frame.PictureType.NONE
        packets += [(bytes(p), p.is_keyframe) for p in enc.encode(frame)]
    packets += [(bytes(p), p.is_keyframe) for p in enc.encode(None)]
    out = av.open(url, mode="w", format="flv")
    stream = out.add_stream("h264", rate=30)
    stream.width, stream.height = width, height
    stream.codec_context.extradata = enc.extradata
    stream.time_base = fractions.Fraction(1, 1000)
    started, i = time.monotonic(), 0
    while not stop.is_set():
        data, key = packets[i % len(packets)]
        p = av.Packet(data)
        p.pts = p.dts = i * 1000 // 30
        p.time_base = fractions.Fraction(1, 1000)
        p.is_keyframe = key
        p.stream = stream
        out.mux(p)
        i += 1
        delay = started + i / 30 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    out.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["fanout", "latency", "ingest", "linkmic", "all"])
    parser.add_argument("--viewers", default="1,4,8,16")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    if args.what in ("fanout", "all"):
        fanout([int(x) for x in args.viewers.split(",")], args.size, args.seconds)
    if args.what in ("latency", "all"):
        asyncio.run(_latency(max(args.seconds, 10)))
    if args.what in ("ingest", "all"):
        asyncio.run(_ingest(args.seconds))
    if args.what in ("linkmic", "all"):
        asyncio.run(_linkmic(args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
