"""The viewer socket `/ws/rooms/{room}` on our own asyncio protocol: the handshake, the
frames and the close, with no uvicorn, websockets or ASGI object per viewer.

Why: a join through uvicorn's websocket protocol cost the node ~470 us of CPU, most of it
the per-connection set-up of three libraries (protocol objects, the handshake parsed into
header objects, an ASGI scope, a Starlette `WebSocket`), where a bare asyncio protocol
answers a handshake for ~27 us (docs/performance.md, tenth pass). Every frame a viewer
sends also went through websockets' generator-based parser.

What it takes: only a handshake that arrives whole in the connection's first read and is
exactly what browsers and our clients send (`GET`, HTTP/1.1, `Upgrade: websocket`,
`Connection: Upgrade`, version 13, one valid key, a room path without %-escapes). Anything
else (a head split over reads, an odd or bad request) goes the uvicorn way (edge/lean.py),
whose answers (400, 426, ...) stay what they were. No extension is negotiated (the node
turns permessage-deflate off anyway, cli). What the viewer does once accepted is the same
code as on the ASGI path: `edge/ws.py` `run_viewer`, through the `ViewerLink` interface.

Close codes follow RFC 6455 and what uvicorn sent: 1002 for a protocol error (unmasked
frame, reserved bits, a bad control frame), 1007 for text that is not UTF-8, 1009 for a
message over the size limit, 1011 when keepalive pings go unanswered, 1012 at shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from starlette.datastructures import QueryParams

from liveserver.edge.inbox import FrameInbox
from liveserver.edge.services import Services
from liveserver.edge.session import ViewerSession
from liveserver.edge.ws import VIEWER_PREFIX, run_viewer
from liveserver.hub.direct import frame_size, ws_frame

try:  # websockets' C helper; its pure-Python fallback otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

log = logging.getLogger("liveserver.ws")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16 * 1024  # a longer head goes the uvicorn way (which answers 431 or 400)
CLOSE_TIMEOUT_S = 5.0  # after our close frame, the client has this long to answer it
MAX_EARLY = 8  # messages held before the viewer has joined; then reading pauses
# Close codes a peer may send (RFC 6455 7.4; websockets' EXTERNAL_CLOSE_CODES)
VALID_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


@dataclass(slots=True)
class Upgrade:
    """A viewer's handshake request, as `parse_upgrade` understood it."""
    room: str
    query: str
    accept: bytes  # the Sec-WebSocket-Accept value for its key
    offered: list[str]  # subprotocols offered, in order
    rest: bytes  # what followed the head in the same read


def _tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",")]


def parse_upgrade(data: bytes) -> Upgrade | None:
    """The viewer handshake in `data` (a connection's first read), or None when `data` is
    not a whole, plain viewer upgrade request (the caller then takes the uvicorn way)."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD:
        return None
    lines = data[:end].split(b"\r\n")
    request = lines[0].split(b" ")
    if len(request) != 3 or request[0] != b"GET" or request[2] != b"HTTP/1.1":
        return None
    try:
        target = request[1].decode("ascii")
    except UnicodeDecodeError:
        return None
    path, _, query = target.partition("?")
    room = path[len(VIEWER_PREFIX):] if path.startswith(VIEWER_PREFIX) else ""
    if not room or "/" in room or "%" in path or "#" in target:
        return None
    key = version = None
    upgrade = connection = False
    offered: list[str] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"sec-websocket-key":
            if key is not None:
                return None
            key = value
        elif name == b"sec-websocket-version":
            if version is not None:
                return None
            version = value
        elif name == b"upgrade":
            upgrade = upgrade or b"websocket" in _tokens(value)
        elif name == b"connection":
            connection = connection or b"upgrade" in _tokens(value)
        elif name == b"sec-websocket-protocol":
            offered += [p for p in value.decode("latin-1").replace(" ", "").split(",") if p]
    if not (upgrade and connection and version == b"13" and key):
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return Upgrade(room, query, accept, offered, data[end + 4:])


def query_params(query: str) -> dict[str, str]:
    """The last value of each name in a query string, as `QueryParams.get` reads it: a
    token, an offset and an epoch carry no escape, so the full parse runs only for one
    that does."""
    if "%" in query or "+" in query:
        return dict(QueryParams(query).multi_items())
    params: dict[str, str] = {}
    for item in query.split("&"):
        name, _, value = item.partition("=")
        params[name] = value
    return params


def accept_response(upgrade: Upgrade, subprotocol: str | None) -> bytes:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
    head += upgrade.accept
    if subprotocol:
        head += b"\r\nSec-WebSocket-Protocol: " + subprotocol.encode("latin-1")
    return head + b"\r\n\r\n"


def close_frame(code: int | None, reason: str = "") -> bytes:
    if code is None:
        return b"\x88\x00"
    payload = code.to_bytes(2, "big") + reason.encode()[:123].decode("utf-8", "ignore").encode()
    return bytes((0x88, len(payload))) + payload


class FrameError(Exception):
    """The client broke the protocol: close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ViewerSocket(asyncio.Protocol):
    """One viewer's accepted websocket. `take_over` builds it from the connection's
    first read; the viewer itself (`run_viewer`) runs in one task, as on the ASGI path."""

    __slots__ = ("transport", "_upgrade", "_connections", "_max_size", "_keepalive_s", "_buf", "_accepted",
                 "_frag", "_frag_text", "_sink", "_early", "_read_paused", "_write_paused", "_drain",
                 "close_sent", "disconnected", "_dead", "_over", "_ended", "_timer", "_ping_due", "_head")

    def __init__(self, transport: asyncio.Transport, upgrade: Upgrade, connections: set[Any],
                 max_size: int, keepalive_s: float | None) -> None:
        self.transport = transport
        self._upgrade: Upgrade | None = upgrade
        self._connections = connections
        self._max_size = max_size
        self._keepalive_s = keepalive_s
        self._buf = upgrade.rest  # raw bytes not parsed yet (frames sent before the 101, kept)
        self._accepted = False
        self._frag: list[bytes] | None = None  # a fragmented message's parts so far
        self._frag_text = False
        self._sink: Callable[[bytes | str], None] | None = None
        self._early: list[bytes | str] = []  # messages before the viewer joined
        self._read_paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.close_sent = False
        self.disconnected = False
        self._dead = False  # the read side is done (a close received, a protocol error)
        self._over = False  # the viewer's session is over: disconnected, or a close was asked
        self._ended: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # keepalive, then the close's deadline
        self._ping_due = False
        # The 101 response, held until the first frame so that both go out in one write
        # (a join is then one write: 101 + welcome); `_flush_head` sends it alone if need be.
        self._head = b""

    @classmethod
    def take_over(cls, transport: asyncio.Transport, upgrade: Upgrade, services: Services, server_state: Any,
                  config: Any) -> "ViewerSocket":
        """Make the connection `transport` (whose first read was `upgrade`) a viewer
        socket, and start the viewer's task. `server_state`: uvicorn's, so that a shutdown
        closes this socket (1012) and waits for its task, as for its own connections."""
        sock = cls(transport, upgrade, server_state.connections, config.ws_max_size, config.ws_ping_interval)
        transport.set_protocol(sock)
        server_state.connections.add(sock)
        params = query_params(upgrade.query)
        task = asyncio.get_running_loop().create_task(run_viewer(
            services, sock, upgrade.room, params.get("token"), params.get("since"), params.get("epoch"),
            upgrade.offered))
        server_state.tasks.add(task)
        task.add_done_callback(sock._task_done(server_state.tasks))
        return sock

    def _task_done(self, tasks: set[Any]) -> Callable[["asyncio.Task[None]"], None]:
        def done(task: "asyncio.Task[None]") -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("viewer socket failed", exc_info=task.exception())
            if not self.close_sent and not self.disconnected:
                self.transport.close()
        return done

    # -- ViewerLink (edge/ws.py) ------------------------------------------------------------
    async def accept(self, subprotocol: str | None) -> None:
        upgrade, self._upgrade = self._upgrade, None
        if upgrade is None or self.disconnected:
            return
        self._head = accept_response(upgrade, subprotocol)
        # Nothing else may hold it back long: a viewer that is not written to at once
        # (a slow admission) still gets its 101 at the end of this loop turn.
        asyncio.get_running_loop().call_soon(self._flush_head)
        self._accepted = True
        self._arm_keepalive()
        if self._buf:
            data, self._buf = self._buf, b""
            self.data_received(data)

    async def close(self, code: int, reason: str = "") -> None:
        self._send_close(code, reason)

    async def send(self, data: bytes, text: bool) -> None:
        while self._write_paused and not self.disconnected:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
        if self.close_sent or self.disconnected:
            raise ConnectionError("the viewer socket is closed")
        self._write(ws_frame(data, text))

    def direct_writer(self) -> "ViewerSocket":
        return self

    async def frames_until_closed(self, session: ViewerSession) -> None:
        inbox = FrameInbox(session, self)
        self._sink = inbox.put
        early, self._early = self._early, []
        for message in early:
            inbox.put(message)
        self._resume_reading()
        try:
            if not self._over:
                self._ended = asyncio.get_running_loop().create_future()
                await self._ended
        finally:
            self._sink = None
            await inbox.close()

    def close_asked(self) -> None:
        """The session closes the connection (its writer sends the close frame)."""
        self._end_session()

    # -- direct writes (hub/direct.py's FrameWriter) -------------------------------------------
    def write(self, data: bytes, text: bool, framed: bytes | None = None) -> bool:
        if not self._writable():
            return False
        self._write(framed if framed is not None else ws_frame(data, text))
        return True

    def write_all(self, frames: list[bytes], text: bool) -> bool:
        if not self._writable():
            return False
        self._write(b"".join(ws_frame(data, text) for data in frames))
        return True

    def _writable(self) -> bool:
        """Can a frame go out now? Not while the transport's buffer is over its high-water
        mark (the viewer's writer task waits for it then), nor once the socket is closing."""
        return not (self._write_paused or self.close_sent or self.disconnected)

    # -- asyncio.Protocol --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        buf = self._buf + data if self._buf else data
        if not self._accepted:
            self._buf = buf  # parsed once the 101 is out
            return
        try:
            pos = self._parse(buf)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        self._buf = buf[pos:] if pos < len(buf) else b""

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        self._dead = True
        self._connections.discard(self)
        self._cancel_timer()
        self._wake_writer()
        self._sink = None  # the inbox holds the session, which holds this socket
        self._end_session()

    def shutdown(self) -> None:
        """uvicorn's shutdown: 1012 to an accepted socket, then close."""
        if self._accepted:
            self._send_close(1012)
        self._cancel_timer()
        self._dead = True
        self.transport.close()
        self._end_session()

    # -- frames --------------------------------------------------------------------------------
    def _parse(self, buf: bytes) -> int:
        """Handle every whole frame in `buf`; the number of bytes used."""
        pos, n = 0, len(buf)
        while n - pos >= 2 and not self._dead:
            b0, b1 = buf[pos], buf[pos + 1]
            if not b1 & 0x80:
                raise FrameError(1002, "a client frame must be masked")
            if b0 & 0x70:
                raise FrameError(1002, "reserved bits are set (no extension was negotiated)")
            sized = frame_size(buf, pos)
            if sized is None:
                break
            size, head = sized
            opcode = b0 & 0x0F
            if opcode >= 8:
                if size > 125 or not b0 & 0x80:
                    raise FrameError(1002, "a control frame must be whole and at most 125 bytes")
            elif size + (sum(map(len, self._frag)) if self._frag else 0) > self._max_size:
                raise FrameError(1009, f"message over {self._max_size} bytes")
            end = pos + head + 4 + size
            if end > n:
                break
            mask = buf[pos + head:pos + head + 4]
            payload = apply_mask(buf[pos + head + 4:end], mask) if size else b""
            pos = end
            self._frame(b0 & 0x80, opcode, payload)
        return pos

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == 1 or opcode == 2:
            if self._frag is not None:
                raise FrameError(1002, "a new message inside a fragmented one")
            if fin:
                self._message(payload, opcode == 1)
            else:
                self._frag, self._frag_text = [payload], opcode == 1
        elif opcode == 0:
            if self._frag is None:
                raise FrameError(1002, "a continuation frame with no message to continue")
            self._frag.append(payload)
            if fin:
                parts, self._frag = self._frag, None
                self._message(b"".join(parts), self._frag_text)
        elif opcode == 8:
            self._close_received(payload)
        elif opcode == 9:
            if not self.close_sent:
                self._write(bytes((0x8A, len(payload))) + payload)
        elif opcode == 10:
            self._ping_due = False
        else:
            raise FrameError(1002, f"unknown opcode {opcode}")

    def _message(self, payload: bytes, text: bool) -> None:
        message: bytes | str = payload
        if text:
            try:
                message = payload.decode()
            except UnicodeDecodeError:
                raise FrameError(1007, "text that is not UTF-8") from None
        if self.close_sent:
            return  # closing: only the client's close frame matters now
        sink = self._sink
        if sink is not None:
            sink(message)
            return
        self._early.append(message)
        if len(self._early) >= MAX_EARLY and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def _close_received(self, payload: bytes) -> None:
        code: int | None = None
        if payload:
            if len(payload) < 2:
                raise FrameError(1002, "a close frame of one byte")
            code = int.from_bytes(payload[:2], "big")
            if code not in VALID_CLOSE and not 3000 <= code < 5000:
                raise FrameError(1002, f"close code {code} is not valid")
            try:
                payload[2:].decode()
            except UnicodeDecodeError:
                raise FrameError(1007, "a close reason that is not UTF-8") from None
        self._dead = True
        if not self.close_sent:
            self.close_sent = True
            self._write(close_frame(code))  # echo the code: the handshake is done
        self._cancel_timer()
        self.transport.close()
        self._end_session()

    def _fail(self, code: int, reason: str) -> None:
        self._send_close(code, reason)
        self._dead = True
        self._cancel_timer()
        self.transport.close()
        self._end_session()

    def _send_close(self, code: int, reason: str = "") -> None:
        if self.close_sent or self.disconnected:
            return
        self.close_sent = True
        self._write(close_frame(code, reason))
        self._cancel_timer()
        # The client answers with its own close frame (then we close the TCP connection);
        # one that does not is cut off.
        self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self.transport.abort)

    # -- keepalive -----------------------------------------------------------------------------
    def _arm_keepalive(self) -> None:
        if self._keepalive_s and not self.close_sent:
            self._timer = asyncio.get_running_loop().call_later(self._keepalive_s, self._keepalive)

    def _keepalive(self) -> None:
        """A ping every interval; one still unanswered at the next is a dead peer (1011)."""
        self._timer = None
        if self.close_sent or self.disconnected:
            return
        if self._ping_due:
            self._fail(1011, "keepalive ping timeout")
            return
        self._ping_due = True
        self._write(b"\x89\x04" + os.urandom(4))
        self._arm_keepalive()

    # -- helpers -------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # a shutdown or an abort got there first: nothing more goes out
        head = self._head
        if head:
            self._head = b""
            data = head + data
        self.transport.write(data)

    def _flush_head(self) -> None:
        head, self._head = self._head, b""
        if head and not self.disconnected:
            self.transport.write(head)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake_writer(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def _end_session(self) -> None:
        self._over = True
        ended, self._ended = self._ended, None
        if ended is not None and not ended.done():
            ended.set_result(None)
