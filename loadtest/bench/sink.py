"""Cheap viewers for the capacity and idle benches: a raw asyncio protocol that does the
websocket upgrade and then only counts bytes and reads. No frame is parsed or decoded, so
one generator process can hold thousands of them while the server does the real work.

The exceptions are heartbeats, since a server closes a client that does not answer them:
an `engineio` sink looks for Engine.IO's ping frame (text "2") in what it reads and
answers with a masked "3"; a `liveserver` sink follows frame boundaries (headers only,
payloads are skipped: a few frames/s) to answer uvicorn's websocket pings with pongs.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any
from urllib.parse import urlsplit

from liveserver.hub.direct import frame_size

PING = b"\x81\x012"  # server -> client text frame "2" (unmasked)
PONG = b"\x81\x81\x00\x00\x00\x003"  # client -> server text frame "3", masked with key 0
CONNECT = b"\x81\x82\x00\x00\x00\x0040"  # Socket.IO namespace connect "40", masked with key 0


class Sink(asyncio.Protocol):
    __slots__ = ("request", "engineio", "wait_data", "opened", "transport", "head", "open", "bytes", "reads", "closed", "tail",
                 "pongs", "pend", "skip")

    def __init__(self, request: bytes, engineio: bool, wait_data: bool, pongs: bool = False) -> None:
        self.request = request
        self.engineio = engineio
        self.wait_data = wait_data  # opened once the first frame (welcome / EIO open) arrived
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.head = b""
        self.open = False
        self.bytes = 0
        self.reads = 0
        self.closed = False
        self.tail = b""
        self.pongs = pongs  # answer websocket pings (needs frame boundaries)
        self.pend = b""  # an incomplete frame header (or ping) carried to the next read
        self.skip = 0  # payload bytes of the current frame still to come

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self._fail()
                return
            data, self.head = self.head[end + 4 :], b""
            self.open = True
            if self.engineio:
                self.transport.write(CONNECT)
            if not self.wait_data and not self.opened.done():
                self.opened.set_result(True)
            if not data:
                return
        if not self.opened.done():
            self.opened.set_result(True)
        self.bytes += len(data)
        self.reads += 1
        if self.pongs:
            self._pong(data)
        if self.engineio:
            if PING in self.tail + data:
                self.transport.write(PONG)
            self.tail = data[-2:]

    def _pong(self, data: bytes) -> None:
        buf = self.pend + data if self.pend else data
        n = len(buf)
        pos = min(self.skip, n)
        self.skip -= pos
        while pos < n:
            if n - pos < 2:
                break
            b0 = buf[pos]
            sized = frame_size(buf, pos)
            if sized is None:
                break
            size, head = sized
            if b0 & 0x0F == 0x9:  # ping: answer with its payload (masked with key 0)
                if n - pos - head < size:
                    break
                self.transport.write(bytes((0x8A, 0x80 | size)) + b"\0\0\0\0" + buf[pos + head : pos + head + size])
                pos += head + size
                continue
            if n - pos - head < size:
                self.skip = size - (n - pos - head)
                pos = n
                break
            pos += head + size
        self.pend = buf[pos:] if pos < n else b""

    def _fail(self) -> None:
        if not self.opened.done():
            self.opened.set_result(False)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_result(False)


def upgrade_request(url: str, subprotocol: str | None) -> bytes:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_sink(url: str, kind: str, subprotocol: str | None, timeout: float = 30) -> Sink | None:
    """A connected sink, or None when the connect or the upgrade failed."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    sink = Sink(upgrade_request(url, subprotocol), kind == "engineio", kind in ("engineio", "liveserver"),
                pongs=kind == "liveserver")
    try:
        await asyncio.wait_for(loop.create_connection(lambda: sink, parts.hostname, parts.port), timeout)
        ok = await asyncio.wait_for(sink.opened, timeout)
    except (OSError, asyncio.TimeoutError):
        if sink.transport is not None:
            sink.transport.abort()
        return None
    if not ok:
        return None
    return sink
