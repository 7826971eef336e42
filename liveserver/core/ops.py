"""What a viewer op handler sees and returns: the narrow interface between the websocket
session (edge) and whoever serves ops (commerce kinds), so neither imports the other."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

from protocol import ClientOp

from liveserver.core.auth import Identity


class OpContext(Protocol):
    """The caller of an op: its room and identity."""

    room: str

    @property
    def identity(self) -> Identity: ...

    @property
    def user(self) -> str: ...

    @property
    def connected_ms(self) -> int:
        """When this connection opened (ms, the node's clock): watch time so far."""
        ...


OpHandler = Callable[[OpContext, ClientOp], Awaitable[dict[str, Any]]]

# Called after a danmaku was published (e.g. a keyword enters a lottery); returns fields
# merged into the danmaku's reply.
DanmakuListener = Callable[[OpContext, str], Awaitable[dict[str, Any]]]

# Called once when a viewer's connection ends (e.g. to add its watch time).
LeaveListener = Callable[[OpContext], Awaitable[None]]


# An entry of a room's orders stream (`lc:{room}:orders`) of a type a commerce kind owns
# (e.g. `group_failed`), handed over by the webhook orders relay: (room, entry fields).
# It runs before the entry is acknowledged, so an event derived from it survives a crash.
OrderEntryHandler = Callable[[str, dict[str, str]], Awaitable[None]]

