"""A viewer socket's received frames, handed to its session without a trip through ASGI.

Through ASGI, every frame a viewer sends goes: uvicorn queues a message dict and pauses
reading; the endpoint's reader wakes up through four coroutines (Starlette's `receive`,
uvicorn's, the queue's `get`, its future), handles the frame, resumes reading, and
builds that chain anew to wait for the next frame. Two epoll calls per frame, and a
waiting chain per viewer that outlives the young GC generations: in the seckill rush
(10,000 viewers per node each sending one `buy`) the cyclic GC walked those chains
through every generation and was a third of the node's CPU (docs/performance.md).

Here `edge/lean.py`'s protocol calls `FrameInbox.put` with each frame's text or bytes;
frames are handled in order, one at a time, by a task that exists only while frames are
pending (a viewer that sends nothing holds no task). Reading pauses only when
`MAX_PENDING` frames wait. What the session does with a frame is unchanged
(`ViewerSession.receive`). The endpoint, meanwhile, waits on the protocol's queue for
the disconnect, or for the protocol's `close_asked()`, called when a frame made the
session close the connection (e.g. 4429 for abuse). The same inbox serves the native
viewer socket (edge/viewer_socket.py), whose frames never went through ASGI.
"""

from __future__ import annotations

import asyncio
from typing import Any

from liveserver.core.tasks import cancel_and_wait
from liveserver.edge.session import ViewerSession

MAX_PENDING = 8  # frames queued before the socket stops being read


def received_data(message: Any) -> bytes | str:
    """The payload of an ASGI `websocket.receive` message: its text, else its bytes."""
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


class FrameInbox:
    __slots__ = ("session", "_protocol", "_pending", "_task", "_paused", "_over")

    def __init__(self, session: ViewerSession, protocol: Any) -> None:
        self.session = session
        self._protocol = protocol
        self._pending: list[bytes | str] = []
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._over = False  # closing: later frames are dropped, and reading never pauses again

    def put(self, data: bytes | str) -> None:
        """One whole message from the socket (called by the protocol, in order)."""
        if self._over:
            return
        self._pending.append(data)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        elif len(self._pending) >= MAX_PENDING and not self._paused:
            self._paused = True
            self._protocol.transport.pause_reading()

    async def _drain(self) -> None:
        session = self.session
        pending = self._pending
        try:
            while pending:
                await session.receive(pending.pop(0))
                if session.viewer.close_code is not None:
                    # What the client sent after the frame that closed it is moot; reading
                    # goes on, for the client's reply to the close frame.
                    self._stop()
                    self._protocol.close_asked()
                    return
                if len(pending) < MAX_PENDING // 2:
                    self._resume()
        finally:
            self._task = None

    def _stop(self) -> None:
        self._over = True
        self._pending.clear()
        self._resume()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            transport = self._protocol.transport
            if not transport.is_closing():
                transport.resume_reading()

    async def close(self) -> None:
        """The connection is over: drop what was not handled yet, stop a frame in flight."""
        self._stop()
        await cancel_and_wait(self._task)
