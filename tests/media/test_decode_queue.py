"""The bounded decode queue (media/decodequeue.py): a receiver whose decoder falls
behind drops its backlog and skips to a keyframe it asks the publisher for, so it never
lags more than DECODE_LIMIT frames. A real aiortc publisher of a lavfi test pattern,
its H.264 decoded for real, only slower (100 ms a frame: a box too busy to keep up)."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import pytest

from liveserver.media.decodequeue import DECODE_LIMIT, DecodeQueue, is_keyframe
from mediakit import LocalPair, slow_decoders

pytestmark = pytest.mark.timeout(60)


def encoded(codec: str) -> list[tuple[bytes, bool]]:
    """Twelve frames of testsrc through a real encoder: (data, the encoder's keyframe mark)."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 120, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.gop_size = 5
    ctx.max_b_frames = 0
    out = []
    graph = av.open("testsrc=size=160x120:rate=30", format="lavfi")
    for i, frame in enumerate(graph.decode(video=0)):
        if i == 12:
            break
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None)]
    graph.close()
    return out


@pytest.mark.parametrize("codec, mime", [("libx264", "video/H264"), ("libvpx", "video/VP8")])
def test_keyframes_are_recognised(codec: str, mime: str) -> None:
    frames = encoded(codec)
    assert len(frames) >= 10 and sum(key for _, key in frames) >= 2
    assert [is_keyframe(mime, data) for data, _ in frames] == [key for _, key in frames]
    assert is_keyframe("audio/opus", b"\x00") is None


async def test_a_decoder_behind_skips_to_a_fresh_keyframe(monkeypatch: pytest.MonkeyPatch) -> None:
    decoders = slow_decoders(monkeypatch)
    pair = await LocalPair.connect()
    try:
        sender = pair.publisher.getSenders()[0]
        asked: list[float] = []  # the publisher's keyframe requests (PLIs it received)
        send_keyframe = sender._send_keyframe

        def note_keyframe_request() -> None:
            asked.append(time.monotonic())
            send_keyframe()

        sender._send_keyframe = note_keyframe_request
        bounded = pair.server.getReceivers()[0]._RTCRtpReceiver__decoder_queue
        assert isinstance(bounded, DecodeQueue), "aiortc's decoder queue was not replaced"
        longest, first_drop = 0, None
        deadline = time.monotonic() + 20
        # 30 frames/s in, 10 decoded: the backlog passes the limit in ~1.5 s
        while time.monotonic() < deadline:
            longest = max(longest, bounded.qsize())
            if first_drop is None and bounded.dropped:
                first_drop = time.monotonic()
            if first_drop is not None and time.monotonic() > first_drop + 3:
                break
            await asyncio.sleep(0.01)
        assert first_drop is not None, "the backlog never reached the limit"
        assert longest <= DECODE_LIMIT, f"{longest} frames waited"
        assert any(t >= first_drop for t in asked), "the publisher was not asked for a keyframe"
        after = [f for f in pair.frames if f[0] > first_drop]
        assert after and after[0][0] - first_drop < 2.5, "nothing decoded soon after the drop"
        assert any(key for _, key, _ in after), "no keyframe after the skip"
        assert {size for _, _, size in pair.frames} == {(320, 240)}
        assert sum(d.errors for d in decoders) == 0, "a frame was decoded without its reference"
    finally:
        await pair.close()
