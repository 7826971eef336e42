"""RTMP ingest: PyAV publishes testsrc (H.264 Main/High with B-frames + AAC) to rtmp://.../live/{room} with
the host token as stream key; the HLS segments carry the very same H.264 (same profile,
size and SPS: remuxed, not transcoded), and state.media goes live and back offline."""

from __future__ import annotations

import asyncio
import fractions
import io
import threading
import time

import av
import httpx
import pytest

from harness import Client, create_room, free_port, host_headers, token

pytestmark = pytest.mark.timeout(180)


def _publish(url: str, stop: threading.Event, info: dict) -> None:
    """A real-time RTMP publisher (paced like an encoder fed by a camera)."""
    try:
        src = av.open("testsrc=size=426x240:rate=30", format="lavfi")
        out = av.open(url, mode="w", format="flv")
        v = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "profile": "high", "g": "30", "bf": "2"})
        v.width, v.height, v.pix_fmt = 426, 240, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        tone = av.open("sine=frequency=440:sample_rate=48000", format="lavfi")
        tone_frames = tone.decode(audio=0)
        started = time.monotonic()
        samples = 0
        for i, frame in enumerate(src.decode(video=0)):
            if stop.is_set() or i > 30 * 60:
                break
            frame.pts, frame.time_base = i, fractions.Fraction(1, 30)
            frame.pict_type = av.video.frame.PictureType.NONE
            for p in v.encode(frame):
                out.mux(p)
            while samples < (i + 1) * 1600:  # 48 kHz audio up to this video frame's time
                af = next(tone_frames)
                af.pts, af.time_base = samples, fractions.Fraction(1, 48000)
                samples += af.samples
                for p in a.encode(af):
                    out.mux(p)
            if "extradata" not in info and v.codec_context.extradata:
                info["extradata"] = bytes(v.codec_context.extradata)
            delay = started + (i + 1) / 30 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for p in v.encode(None):
            out.mux(p)
        out.close()
    except Exception as exc:  # reported to the test
        info["error"] = repr(exc)


def _sps(extradata: bytes) -> bytes:
    """The SPS NAL unit of libx264's extradata (Annex B: start codes, SPS, PPS...)."""
    for nal in extradata.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01"):
        if nal and nal[0] & 0x1F == 7:
            return nal
    raise AssertionError(f"no SPS in {extradata.hex()}")


async def test_rtmp_is_remuxed_to_hls_without_transcoding(start_media_node, room_name) -> None:
    rtmp_port = free_port()
    node = start_media_node(LIVESERVER_RTMP_PORT=str(rtmp_port))
    create_room(node, room_name)
    ws = await Client.connect(node, room_name, "v1")
    stop = threading.Event()
    info: dict = {}
    host = token("host-1", "host", room=room_name)

    # A wrong stream key is refused: the room never goes live.
    bad = threading.Thread(target=_publish, args=(f"rtmp://127.0.0.1:{rtmp_port}/live/{room_name}/{token('v1')}", stop, {}))
    bad.start()
    await asyncio.get_running_loop().run_in_executor(None, bad.join, 20)
    assert ws.state["media"]["live"] is False

    pub = threading.Thread(target=_publish, args=(f"rtmp://127.0.0.1:{rtmp_port}/live/{room_name}/{host}", stop, info))
    pub.start()
    try:
        state = await ws.wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)
        assert state["media"]["source"] == "rtmp" and state["media"]["whep"] is None
        assert (state["media"]["width"], state["media"]["height"]) == (426, 240)
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:  # segments appear as the publisher's clock advances (1 s each)
                pl = await http.get(state["media"]["hls"])
                segs = [x for x in pl.text.splitlines() if x and not x.startswith("#")] if pl.status_code == 200 else []
                if len(segs) >= 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)  # polling a file that appears on the publisher's clock
            assert len(segs) >= 2, pl.text
            data = (await http.get(str(pl.url.join(segs[1])))).content
            health = (await http.get(f"{node.http}/api/v1/rooms/{room_name}/media/health", headers=host_headers(room_name))).json()
        with av.open(io.BytesIO(data), format="mpegts") as seg:
            vs = seg.streams.video[0]
            assert vs.codec_context.name == "h264"
            assert (vs.codec_context.width, vs.codec_context.height) == (426, 240)
            profile = {66: "Baseline", 77: "Main", 100: "High"}[_sps(info["extradata"])[1]]  # profile_idc
            assert vs.codec_context.profile == profile != "Baseline"  # our own encoder makes Baseline only
            assert [s.codec_context.name for s in seg.streams.audio] == ["aac"]
            first_key = next(p for p in seg.demux(vs) if p.is_keyframe)
            assert _sps(info["extradata"]) in bytes(first_key)  # the publisher's own SPS
        with av.open(io.BytesIO(data), format="mpegts") as seg:
            frames = list(seg.decode(video=0))
            assert len(frames) >= 25 and {(f.width, f.height) for f in frames} == {(426, 240)}
        with av.open(io.BytesIO(data), format="mpegts") as seg:
            assert len(list(seg.decode(audio=0))) >= 30  # ~47 AAC frames a second, as sent
        src = health["sources"][0]
        assert src["kind"] == "rtmp" and src["width"] == 426 and src["encoded_frames"] == 0
    finally:
        stop.set()
        await asyncio.get_running_loop().run_in_executor(None, pub.join, 20)
    assert "error" not in info, info
    await ws.wait_state(lambda s: s.get("media", {}).get("live") is False, timeout=20)
    await ws.close()
