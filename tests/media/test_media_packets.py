"""The shared-packet fan-out: viewers start at a keyframe, queues are bounded (a slow
viewer is reset to the next keyframe, never grows), and every viewer gets the SAME
packet object (no per-viewer copy, no per-viewer encode)."""

from __future__ import annotations

import asyncio
import fractions

import av
import pytest

from liveserver.media.encoder import H264Encoder
from liveserver.media.packets import Encoded, Fanout, PacketTrack

pytestmark = pytest.mark.timeout(60)


def _encoded(n: int) -> list[Encoded]:
    enc = H264Encoder(160, 96, 30, 1.0, 300_000, "ultrafast")
    out = []
    for i in range(n):
        frame = av.VideoFrame(160, 96, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 255]) * plane.buffer_size)
        for p in enc.encode(frame, i * 3000):
            out.append(Encoded(p, bool(p.is_keyframe)))
    return out


async def test_late_joiner_starts_at_a_keyframe_and_queues_are_bounded() -> None:
    items = _encoded(75)  # keyframes at 0, 30, 60
    keys = [i for i, e in enumerate(items) if e.keyframe]
    assert keys == [0, 30, 60]
    fan = Fanout()
    early, late, slow = PacketTrack(100), PacketTrack(100), PacketTrack(20)
    fan.add(early)
    fan.add(slow)
    for i, item in enumerate(items):
        if i == 5:
            fan.add(late)
        fan.publish(item)
    # The late joiner skipped 5..29 and starts exactly at the keyframe of frame 30.
    first_late = await asyncio.wait_for(late.recv(), 1)
    assert first_late is items[30].packet
    # The early viewer got everything, as the very same objects.
    got = [await asyncio.wait_for(early.recv(), 1) for _ in range(len(items))]
    assert all(a is b.packet for a, b in zip(got, items))
    # The slow one (never reading) never held more than 20: reset twice, it restarted at the keyframe of 60.
    assert slow._queue.qsize() == 15 and slow.resets == 2
    first_slow = await asyncio.wait_for(slow.recv(), 1)
    assert first_slow is items[60].packet
    # Packets are what aiortc's sender packs: 90 kHz timestamps, Annex B with SPS on keyframes.
    assert first_late.time_base == fractions.Fraction(1, 90000) and first_late.pts == 30 * 3000
    assert bytes(first_late)[:4] == b"\x00\x00\x00\x01" and bytes(first_late)[4] & 0x1F == 7
    fan.close()
    with pytest.raises(Exception):
        await asyncio.wait_for(early.recv(), 1)
