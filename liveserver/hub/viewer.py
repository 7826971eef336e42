"""One viewer connection as the hub sees it: an identity, a codec and an outbound queue.

The hub never awaits a viewer: it writes a frame straight to the socket when nothing is
queued (see `direct.py`), else appends it to the queue. A writer task drains the queue
and ends when it is empty; it is started again by the next frame that has to wait, so
an idle connection costs no task of its own. The queue is bounded in bytes; past the bound the
viewer is *lagging*: event frames are skipped (and caught up later from the stream, or
the connection is closed with 4408).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from protocol import Codec

from liveserver.core.auth import Identity
from liveserver.hub.direct import FrameWriter


Frame = bytes  # an encoded frame; text frames (lc1.json) hold UTF-8


def encode_frame(codec: Codec, frame: dict[str, Any]) -> Frame:
    data = codec.encode(frame)
    return data.encode() if isinstance(data, str) else data


class Viewer:
    __slots__ = (
        "conn_id", "identity", "codec", "limit", "room", "_queue", "queued_bytes", "_start_writer",
        "writing", "paused", "lagging_since", "delivered", "close_code", "skipped", "catching_up",
        "text", "direct",
    )

    def __init__(self, conn_id: str, identity: Identity, codec: Codec, limit: int,
                 direct: FrameWriter | None = None, start_writer: Callable[[], None] | None = None) -> None:
        self.conn_id = conn_id
        self.identity = identity
        self.codec = codec
        self.text = not codec.binary
        self.direct = direct
        self.limit = limit
        # The LocalRoom (hub/room.py) this viewer is in; typed Any so that this module does
        # not import room.py, whose rooms hold viewers (no import cycle).
        self.room: Any = None
        # A list, not a deque: it is nearly always empty or short, and an empty deque
        # costs ~600 B per viewer (memory per idle viewer, docs/performance.md).
        self._queue: list[Frame] = []
        self.queued_bytes = 0
        self._start_writer = start_writer  # starts a task that drains the queue (ws.py)
        self.writing = False  # a writer task is draining (or about to)
        self.paused = True  # until the welcome is queued: batches wait behind it
        self.lagging_since: float | None = None
        self.delivered = ""  # offset of the last event frame queued for this viewer
        self.close_code: int | None = None  # set by the hub: the writer closes with it
        self.skipped = 0
        self.catching_up = False

    # -- called by the hub / session (never blocks) ---------------------------------
    def encode(self, frame: dict[str, Any]) -> Frame:
        return encode_frame(self.codec, frame)

    def push_events(self, data: Frame, offset: str, framed: bytes | None = None) -> bool:
        """Queue an event frame; False (and lagging) when the buffer is over its limit.
        `framed`: the same frame already framed for the socket (`direct.ws_frame`)."""
        if self.lagging_since is not None:
            self.skipped += 1
            return False
        if self.queued_bytes + len(data) > self.limit and self.queued_bytes > 0:
            self.lagging_since = time.monotonic()
            self.skipped += 1
            return False
        self._append(data, framed)
        self.delivered = offset
        return True

    def push_control(self, data: Frame) -> None:
        """Replies and pongs are small and owed: always queued."""
        self._append(data)

    def push_front(self, frames: list[Frame]) -> None:
        """Put the welcome (and any replay) ahead of batches queued while joining.
        Written at once when nothing is in flight (a join then wakes no writer task)."""
        if (not self.writing and self.close_code is None and self.direct is not None
                and self.direct.write_all(frames, self.text)):
            self.paused = False
            if self._queue:
                self._kick_writer()
            return
        self._queue[0:0] = frames
        self.queued_bytes += sum(len(data) for data in frames)
        self.paused = False
        self._kick_writer()

    def close(self, code: int) -> None:
        """Ask the connection to close with `code` once what is queued has been written."""
        if self.close_code is None:
            self.close_code = code
        self._kick_writer()

    def _append(self, data: Frame, framed: bytes | None = None) -> None:
        if (not self.paused and self.queued_bytes == 0 and self.close_code is None
                and self.direct is not None and self.direct.write(data, self.text, framed)):
            return
        self._queue.append(data)
        self.queued_bytes += len(data)
        if not self.paused:
            self._kick_writer()

    def _kick_writer(self) -> None:
        if not self.writing and self._start_writer is not None:
            self.writing = True
            self._start_writer()

    def detach(self) -> None:
        """The connection is over: drop the writer callback and the direct path, so the
        viewer, its socket and their closures are freed without the cyclic GC."""
        self._start_writer = None
        self.direct = None

    # -- called by the connection's writer task ------------------------------------
    def take_frames(self) -> list[Frame] | None:
        """What to write next: None means close now with `close_code`; [] means the
        queue is empty and the writer ends (synchronously, so no frame can slip in
        between this check and the writer being marked as gone)."""
        if self.close_code is not None:
            return None
        if self._queue and not self.paused:
            frames, self._queue = self._queue, []
            return frames
        self.writing = False
        return []

    def sent(self, data: Frame) -> None:
        self.queued_bytes -= len(data)
