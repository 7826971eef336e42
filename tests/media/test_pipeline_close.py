"""A pipeline closes while frames keep coming. Its track readers wait for each frame with
`asyncio.wait_for`, and Python 3.11's wait_for loses a cancel that comes as a frame
arrives: a reader cancelled once read on until the publisher left (a live's end took 25 s
in CI, its DELETE long answered). The close goes through cancel_and_wait, which repeats
its cancel; with a single cancel this test fails (about one close in four hangs)."""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from liveserver.media.health import IngestHealth
from liveserver.media.pipeline import Pipeline
from liveserver.media.settings import MediaSettings

pytestmark = pytest.mark.timeout(120)
ROUNDS = 20


class BusyTrack(MediaStreamTrack):
    """Real decoded-size frames, as fast as they are asked for (a publisher never idle)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.pts = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0)
        if self.readyState != "live":
            raise MediaStreamError
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")
        frame.pts, frame.time_base = self.pts, fractions.Fraction(1, 90000)
        self.pts += 3000
        return frame


async def test_close_ends_the_readers_while_frames_keep_coming(tmp_path: Path) -> None:
    settings = MediaSettings(data_dir=tmp_path)
    hung = 0
    for i in range(ROUNDS):
        started = asyncio.Event()

        async def on_start(width: int, height: int) -> None:
            started.set()

        pipeline = Pipeline(settings, tmp_path / f"live{i}", tmp_path / f"rec{i}", IngestHealth("whip"), on_start)
        for d in (pipeline.live_dir, pipeline.rec_dir):
            d.mkdir(parents=True)
        track = BusyTrack()
        pipeline.consume(track, lambda reason: None)
        await asyncio.wait_for(started.wait(), 10)  # frames are flowing through the encoder
        closing = asyncio.ensure_future(pipeline.close())
        done, _ = await asyncio.wait([closing], timeout=3)
        if not done:
            hung += 1
        track.stop()  # a reader still running now ends (MediaStreamError on its next recv)
        await asyncio.wait_for(closing, 10)
    assert hung == 0, f"{hung} of {ROUNDS} closes did not end their readers within 3 s"
