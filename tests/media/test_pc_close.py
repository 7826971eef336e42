"""`webrtc.close_pc`: a peer connection whose close never finishes (aiortc can wait
forever on a sender, or for ICE's pending transactions) must not hold up the live's end,
a WHIP/WHEP DELETE or a guest's leave. A stand-in for the peer connection whose `close`
never returns, since a real one cannot be made to hang on demand; the real closes are
exercised by every media test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from liveserver.media import webrtc


class NeverCloses:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = False

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
