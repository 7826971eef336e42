"""`webrtc.close_pc`: a peer connection whose close never finishes (aiortc can wait
forever on a sender, or for ICE's pending transactions) must not hold up the live's end,
a WHIP/WHEP DELETE or a guest's leave. A stand-in for the peer connection whose `close`
never returns, since a real one cannot be made to hang on demand; the real closes are
exercised by every media test. And a real pair whose receiver's decoder is behind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from liveserver.media import decodequeue, webrtc
from mediakit import LocalPair, slow_decoders


class NeverCloses:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = False

    def getReceivers(self) -> list[Any]:  # noqa: N802 (aiortc's name)
        return []

    async def close(self) -> None:
        self.started.set()
        await self.release.wait()
        self.closed = True


async def test_a_close_that_hangs_is_left_to_finish_in_the_background(monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: Any) -> None:
    monkeypatch.setattr(webrtc, "PC_CLOSE_TIMEOUT_S", 0.05)
    pc = NeverCloses()
    await asyncio.wait_for(webrtc.close_pc(pc, "a stuck viewer"), 5)  # type: ignore[arg-type]
    assert pc.started.is_set() and not pc.closed
    assert "a stuck viewer" in caplog.text
    assert len(webrtc._closing) == 1, "the close goes on, referenced until it ends"
    pc.release.set()
    await asyncio.wait_for(asyncio.gather(*webrtc._closing), 5)
    assert pc.closed
    await asyncio.sleep(0)  # the done callback runs
    assert not webrtc._closing


async def test_a_quick_close_is_awaited() -> None:
    pc = NeverCloses()
    pc.release.set()
    await asyncio.wait_for(webrtc.close_pc(pc, "a viewer"), 5)  # type: ignore[arg-type]
    assert pc.closed and not webrtc._closing


@pytest.mark.parametrize("closer", ["server", "remote"])
async def test_a_decode_backlog_does_not_stall_the_loop_at_close(monkeypatch: pytest.MonkeyPatch, closer: str) -> None:
    """A real publisher -> server pair whose decoder falls behind. aiortc stops a receiver
    by joining its decoder thread on the loop's thread after the whole backlog, both when
    the server closes (`close_pc`: a DELETE, a live's end) and when the publisher goes
    away (its RTCP BYE / DTLS close): without the drop the loop stood still for seconds,
    every live of the media process with it."""
    slow_decoders(monkeypatch)
    # the close's own drop, not the bound on the backlog (decodequeue.py) keeping it short
    monkeypatch.setattr(decodequeue, "DECODE_LIMIT", 10_000)
    pair = await LocalPair.connect()
    stall = 0.0

    async def watch_loop() -> None:
        nonlocal stall
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            stall = max(stall, time.monotonic() - before)

    try:
        await asyncio.wait_for(pair.first.wait(), 20)
        assert {size for _, _, size in pair.frames} == {(320, 240)}
        await asyncio.sleep(3)  # 30 frames/s in, 10 decoded: a backlog of ~60 frames (~6 s of decoding)
        watcher = asyncio.ensure_future(watch_loop())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        if closer == "server":
            await asyncio.wait_for(webrtc.close_pc(pair.server, "a receiver behind"), 10)
        else:
            await asyncio.wait_for(pair.publisher.close(), 10)
            await asyncio.wait_for(pair.ended.wait(), 10)  # the server's track ended: its receiver stopped
        took = time.monotonic() - started
        await asyncio.sleep(0.05)
        watcher.cancel()
        assert took < 2 and stall < 1.5, f"close took {took:.1f} s, the loop stood still {stall:.1f} s"
    finally:
        await pair.close()
