"""Fan-out bench clients: the same websocket client stack for every peer, speaking each
peer's own protocol (liveserver frames, raw text, Engine.IO 4 / Socket.IO 4 packets).

Every published payload is `"<send ms>|<padding>"`; a client's latency for it is its
receive wall time minus the send time (same machine clock)."""

from __future__ import annotations

import asyncio
import json
import time
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.codec import JSON, MSGPACK

from .. import hist


def payload(size: int) -> str:
    return f"{time.time() * 1000:.3f}|" + "x" * size


def _ts(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    head, _, _ = text.partition("|")
    try:
        return float(head)
    except ValueError:
        return None


class Protocol:
    """How one peer is spoken to."""

    def __init__(self, kind: str, path: str, token: str | None = None) -> None:
        self.kind = kind  # liveserver | raw | engineio
        self.path = path
        self.token = token

    def url(self, base: str) -> str:
        if self.kind == "engineio":
            return f"{base}/socket.io/?EIO=4&transport=websocket"
        if self.kind == "liveserver":
            return f"{base}{self.path}?token={self.token}"
        return base + self.path

    def subprotocols(self) -> list[str] | None:
        return [MSGPACK.subprotocol] if self.kind == "liveserver" else None

    async def handshake(self, ws: ClientConnection) -> None:
        if self.kind == "engineio":
            opened = await asyncio.wait_for(ws.recv(), 20)
            assert isinstance(opened, str) and opened.startswith("0"), opened
            await ws.send("40")
            while True:
                msg = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(msg, str) and msg.startswith("40"):
                    return
        elif self.kind == "liveserver":
            first = MSGPACK.decode(await asyncio.wait_for(ws.recv(), 20))
            assert first.get("t") == "welcome", first

    def publish_frame(self, text: str) -> str | bytes:
        if self.kind == "engineio":
            return "42" + json.dumps(["pub", text])
        if self.kind == "liveserver":
            return MSGPACK.encode({"op": "danmaku", "text": text})
        return text

    async def messages(self, ws: ClientConnection, on_payload: Any, on_frame: Any = None) -> None:
        """Read until closed; call on_payload(text) for each delivered message, and
        on_frame() for each websocket frame that carried at least one (a liveserver batch
        frame carries many: CPU per delivered frame compares the peers' per-frame cost)."""
        async for msg in ws:
            if self.kind == "liveserver":
                frame = MSGPACK.decode(msg) if isinstance(msg, bytes) else JSON.decode(msg)
                if frame.get("t") == "batch":
                    carried = False
                    for event in frame.get("events", ()):
                        if event.get("k") == "danmaku":
                            carried = True
                            on_payload(event.get("text"))
                    if carried and on_frame is not None:
                        on_frame()
            elif self.kind == "engineio":
                if msg == "2":
                    await ws.send("3")
                elif msg.startswith("42"):
                    name, *args = json.loads(msg[2:])
                    if name == "msg" and args:
                        on_payload(args[0])
                        if on_frame is not None:
                            on_frame()
            else:
                on_payload(msg if isinstance(msg, str) else msg.decode())
                if on_frame is not None:
                    on_frame()


async def open_client(proto: Protocol, url: str) -> ClientConnection:
    ws = await connect(url, subprotocols=proto.subprotocols(), max_size=None, compression=None,
                       ping_interval=None, open_timeout=30, close_timeout=1)
    await proto.handshake(ws)
    return ws


async def _generator(spec: dict[str, Any], conn: Connection) -> None:
    proto = Protocol(spec["kind"], spec["path"])
    tokens = spec.get("tokens") or []
    h = hist.new()
    count = 0
    frames = 0

    def on_payload(text: Any) -> None:
        nonlocal count
        ts = _ts(text)
        if ts is None:
            return
        count += 1
        hist.record_ms(h, time.time() * 1000 - ts)

    def on_frame() -> None:
        nonlocal frames
        frames += 1

    sem = asyncio.Semaphore(100)
    failures = 0
    sockets: list[ClientConnection] = []

    async def one(i: int) -> None:
        nonlocal failures
        base = spec["bases"][i % len(spec["bases"])]
        p = Protocol(spec["kind"], spec["path"], tokens[i] if tokens else None)
        async with sem:
            try:
                ws = await open_client(p, p.url(base))
            except Exception:
                failures += 1
                return
        sockets.append(ws)
        try:
            await proto.messages(ws, on_payload, on_frame)
        except (ConnectionClosed, Exception):
            pass

    tasks = [asyncio.create_task(one(i)) for i in range(spec["count"])]
    while len(sockets) + failures < spec["count"]:
        await asyncio.sleep(0.05)
    conn.send(("ready", len(sockets), failures))
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: stop.done() or stop.set_result(conn.recv()))
    msg = await stop
    if msg[0] == "reset":  # the publisher starts now: forget warm-up deliveries
        h.reset()
        count = frames = 0
        stop = loop.create_future()
        msg = await stop
    dropped = sum(1 for ws in sockets if ws.close_code is not None)
    for ws in sockets:
        ws.transport.abort() if ws.transport else None
    for t in tasks:
        t.cancel()
    conn.send(("done", count, hist.encode(h), dropped, frames))


def generator_main(spec: dict[str, Any], conn: Connection) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_generator(spec, conn))
