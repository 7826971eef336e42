"""Direct writes: the tick puts a frame on a viewer's socket itself, without waking the
connection's writer task and without a trip through ASGI.

This is the hot path of fan-out (one batch x every viewer x 10 ticks/s). It works with
uvicorn's `websockets-sansio` protocol, which the `liveserver` command selects: the
ASGI `send` uvicorn hands the app is a bound method of that protocol object, and its
`conn` (a websockets `ServerProtocol`) frames the payload. Anything else (another
server, another protocol class, a socket that is paused, closing or closed) makes
`for_scope` or `write` say no, and the frame goes through the viewer's queue and
writer task instead, which is always correct. Order is kept because the hub writes
directly only when that viewer's queue is empty and nothing is in flight.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND = "liveserver.raw_send"
_REQUIRED = ("conn", "transport", "writable", "close_sent", "disconnected")


class RawSendMiddleware:
    """Keeps the server's own `send` of a websocket in the scope, for `DirectWriter`.
    (The app now does this in edge/ws.py `serve_viewer`; kept for embedders.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def ws_frame(data: bytes, text: bool) -> bytes:
    """`data` as one unmasked server websocket frame (FIN, text or binary opcode), the
    bytes websockets' `send_text`/`send_binary` would produce without extensions. A batch
    is framed ONCE per codec and the same bytes go to every viewer's socket."""
    head = 0x81 if text else 0x82
    n = len(data)
    if n < 126:
        return bytes((head, n)) + data
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + data
    return struct.pack("!BBQ", head, 127, n) + data


class FrameWriter(Protocol):
    """Writes a viewer's frames straight to its socket: `DirectWriter` on uvicorn's
    protocol, or the native viewer socket itself (edge/viewer_socket.py)."""

    def write(self, data: bytes, text: bool, framed: bytes | None = None) -> bool: ...

    def write_all(self, frames: list[bytes], text: bool) -> bool: ...


def frame_size(buf: bytes, pos: int) -> tuple[int, int] | None:
    """The payload size and the header's length (2, 4 or 10 bytes, without a mask) of the
    websocket frame at `buf[pos]`, or None until its length field is all in `buf`: the
    other half of `ws_frame`, for the native viewer socket and the bench clients."""
    size = buf[pos + 1] & 0x7F
    if size == 126:
        if len(buf) - pos < 4:
            return None
        return int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
    if size == 127:
        if len(buf) - pos < 10:
            return None
        return int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
    return size, 2


def raw_protocol(scope: Scope) -> Any:
    """The server's protocol object behind a websocket scope (its `send` is a bound
    method of it; see RawSendMiddleware), or None."""
    return getattr(scope.get(RAW_SEND), "__self__", None)


class DirectWriter:
    __slots__ = ("_proto",)

    def __init__(self, proto: Any) -> None:
        self._proto = proto

    @classmethod
    def for_scope(cls, scope: Scope) -> "DirectWriter | None":
        proto = raw_protocol(scope)
        conn = getattr(proto, "conn", None)
        if proto is None or not all(hasattr(proto, name) for name in _REQUIRED):
            return None
        if not (hasattr(conn, "send_text") and hasattr(conn, "data_to_send")):
            return None
        return cls(proto)

    def write(self, data: bytes, text: bool, framed: bytes | None = None) -> bool:
        """Frame and write `data` now; False when the socket cannot take it right now.
        `framed` is `ws_frame(data, text)` made once for all viewers: written as is when
        the connection negotiated no extension (nothing transforms frames), after anything
        the protocol itself still has to send."""
        p = self._writable()
        if p is None:
            return False
        if framed is not None and not p.conn.extensions:
            pending = p.conn.data_to_send()
            if pending:
                p.transport.write(b"".join(pending))
            p.transport.write(framed)
            return True
        _frame_and_write(p, (data,), text)
        return True

    def write_all(self, frames: list[bytes], text: bool) -> bool:
        """Frame and write `frames` now, in one write (a join's welcome and its replay);
        False, with nothing written, when the socket cannot take them right now."""
        p = self._writable()
        if p is None:
            return False
        _frame_and_write(p, frames, text)
        return True

    def _writable(self) -> Any:
        """The protocol, when its socket can take a write right now; else None."""
        p = self._proto
        if p.close_sent or p.disconnected or not p.writable.is_set() or p.transport.is_closing():
            return None
        return p


def _frame_and_write(proto: Any, frames: Sequence[bytes], text: bool) -> None:
    """Frame each of `frames` with the protocol's websockets connection, then one write."""
    conn = proto.conn
    send = conn.send_text if text else conn.send_binary
    for data in frames:
        send(data)
    proto.transport.write(b"".join(conn.data_to_send()))
