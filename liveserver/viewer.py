"""One viewer connection as the hub sees it: an identity, a codec and an outbound queue.

The hub never awaits a viewer: it writes a frame straight to the socket when nothing is
queued (see `direct.py`), else appends it to the queue that the connection's writer task
drains. The queue is bounded in bytes; past the bound the
viewer is *lagging*: event frames are skipped (and caught up later from the stream, or
the connection is closed with 4408).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from protocol import Codec

from .auth import Identity
from .direct import DirectWriter

if TYPE_CHECKING:
    from .hub import LocalRoom

Frame = bytes  # an encoded frame; text frames (lc1.json) hold UTF-8


def encode_frame(codec: Codec, frame: dict[str, Any]) -> Frame:
    data = codec.encode(frame)
    return data.encode() if isinstance(data, str) else data


class Viewer:
    __slots__ = (
        "conn_id", "identity", "codec", "limit", "room", "_queue", "queued_bytes", "_wake",
        "paused", "lagging_since", "delivered", "close_code", "closed", "skipped", "catching_up",
        "text", "direct",
    )

    def __init__(self, conn_id: str, identity: Identity, codec: Codec, limit: int,
                 direct: DirectWriter | None = None) -> None:
        self.conn_id = conn_id
        self.identity = identity
        self.codec = codec
        self.text = not codec.binary
        self.direct = direct
        self.limit = limit
        self.room: LocalRoom | None = None
        self._queue: deque[Frame] = deque()
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self.paused = True  # until the welcome is queued: batches wait behind it
        self.lagging_since: float | None = None
        self.delivered = ""  # offset of the last event frame queued for this viewer
        self.close_code: int | None = None  # set by the hub: the writer closes with it
        self.closed = False
        self.skipped = 0
        self.catching_up = False

    # -- called by the hub / session (never blocks) ---------------------------------
    def encode(self, frame: dict[str, Any]) -> Frame:
        return encode_frame(self.codec, frame)

    def push_events(self, data: Frame, offset: str) -> bool:
        """Queue an event frame; False (and lagging) when the buffer is over its limit."""
        if self.lagging_since is not None:
            self.skipped += 1
            return False
        if self.queued_bytes + len(data) > self.limit and self.queued_bytes > 0:
            self.lagging_since = time.monotonic()
            self.skipped += 1
            return False
        self._append(data)
        self.delivered = offset
        return True

    def push_control(self, data: Frame) -> None:
        """Replies and pongs are small and owed: always queued."""
        self._append(data)

    def push_front(self, frames: list[Frame]) -> None:
        """Put the welcome (and any replay) ahead of batches queued while joining."""
        for data in reversed(frames):
            self._queue.appendleft(data)
            self.queued_bytes += len(data)
        self.paused = False
        self._wake.set()

    def close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        self._wake.set()

    def _append(self, data: Frame) -> None:
        if (not self.paused and self.queued_bytes == 0 and self.close_code is None
                and self.direct is not None and self.direct.write(data, self.text)):
            return
        self._queue.append(data)
        self.queued_bytes += len(data)
        if not self.paused:
            self._wake.set()

    # -- called by the connection's writer task ------------------------------------
    async def next_frames(self) -> list[Frame]:
        """Wait for frames to write; [] means: close now with `close_code`."""
        while True:
            if self.close_code is not None:
                return []
            if self._queue and not self.paused:
                frames = list(self._queue)
                self._queue.clear()
                return frames
            self._wake.clear()
            await self._wake.wait()

    def sent(self, data: Frame) -> None:
        self.queued_bytes -= len(data)
