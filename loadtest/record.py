"""`liveload record`: a recording proxy in front of one node.

Opt-in by construction: only traffic sent through the proxy is recorded, and the server
needs no change. Viewers (and the host console) connect to the proxy instead of the
node; every websocket frame a viewer sends and every host API call that changes
something is appended to a JSONL file with its time, then forwarded unchanged.

Lines (one JSON map each, `t` = wall ms):
  {"kind":"meta", "t", "upstream"}
  {"kind":"join", "t", "conn", "room", "user", "role", "resume": bool}
  {"kind":"op", "t", "conn", "room", "user", "frame": {op, ...}}
  {"kind":"leave", "t", "conn", "room", "user"}
  {"kind":"host", "t", "method", "path", "body", "status", "response"}
The response of a host call is kept so a replay can map recorded ids (sales, coupons,
lotteries) to the ones its own calls create.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from pathlib import Path
from typing import Any, TextIO

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protocol.codec import JSON, MSGPACK
from protocol.codes import ProtocolError

HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade"}


def _identity(token: str | None) -> tuple[str, str]:
    if not token:
        return "guest", "guest"
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "?", "?"
    return str(claims.get("sub", "?")), str(claims.get("role", "viewer"))


def _decode(data: bytes | str) -> dict[str, Any] | None:
    """A viewer's frame as the server reads it (binary = msgpack), or None if it can't be."""
    try:
        return MSGPACK.decode(data) if isinstance(data, bytes) else JSON.decode(data)
    except ProtocolError:
        return None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


class Recorder:
    def __init__(self, upstream: str, out: TextIO, rooms: list[str] | None) -> None:
        self.upstream = upstream.rstrip("/")
        self.ws_upstream = "ws" + self.upstream[4:] if self.upstream.startswith("http") else self.upstream
        self.out = out
        self.rooms = set(rooms) if rooms else None
        self.conns = itertools.count(1)
        self.http = httpx.AsyncClient(timeout=30)
        self.write({"kind": "meta", "upstream": self.upstream})

    def write(self, line: dict[str, Any]) -> None:
        line.setdefault("t", int(time.time() * 1000))
        self.out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False, default=str) + "\n")
        self.out.flush()

    def wanted(self, room: str | None) -> bool:
        return self.rooms is None or room in self.rooms

    async def websocket(self, ws: WebSocket) -> None:
        room = ws.path_params["room"]
        query = ws.url.query
        offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        try:
            up = await connect(f"{self.ws_upstream}/ws/rooms/{room}" + (f"?{query}" if query else ""),
                               subprotocols=offered or None, max_size=None, compression=None, ping_interval=None)
        except Exception:
            await ws.close(1013)
            return
        await ws.accept(subprotocol=up.subprotocol)
        record = self.wanted(room)
        conn = next(self.conns)
        user, role = _identity(ws.query_params.get("token"))
        if record:
            self.write({"kind": "join", "conn": conn, "room": room, "user": user, "role": role,
                        "resume": "since" in ws.query_params})

        async def client_to_upstream() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("text") if msg.get("text") is not None else msg.get("bytes")
                if data is None:
                    continue
                if record:
                    frame = _decode(data)
                    if isinstance(frame, dict) and frame.get("op") != "ping":
                        self.write({"kind": "op", "conn": conn, "room": room, "user": user, "frame": frame})
                await up.send(data)

        async def upstream_to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in up:
                    if isinstance(data, bytes):
                        await ws.send_bytes(data)
                    else:
                        await ws.send_text(data)
            with contextlib.suppress(Exception):
                await ws.close(up.close_code or 1000)

        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await up.close()
            if record:
                self.write({"kind": "leave", "conn": conn, "room": room, "user": user})

    async def http_proxy(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        r = await self.http.request(request.method, self.upstream + path, params=request.url.query or None,
                                    content=body, headers=headers)
        if request.method in ("POST", "PUT", "DELETE") and path.startswith("/api/v1/"):
            room = path.split("/")[4] if path.startswith("/api/v1/rooms/") and len(path.split("/")) > 4 else None
            if room is None or self.wanted(room):
                self.write({"kind": "host", "method": request.method, "path": path, "body": _json(body) if body else None,
                            "status": r.status_code, "response": _json(r.content)})
        out_headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
        return Response(r.content, status_code=r.status_code, headers=out_headers)


def make_app(upstream: str, out: TextIO, rooms: list[str] | None = None) -> Starlette:
    recorder = Recorder(upstream, out, rooms)
    return Starlette(routes=[
        WebSocketRoute("/ws/rooms/{room}", recorder.websocket),
        Route("/{path:path}", recorder.http_proxy, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    ])


def serve_recorder(upstream: str, out_path: str, host: str, port: int, rooms: list[str] | None) -> int:
    import uvicorn

    with open(Path(out_path), "a", encoding="utf-8") as out:
        app = make_app(upstream, out, rooms)
        print(f"liveload record: proxy on http://{host}:{port} -> {upstream}, recording to {out_path}", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", ws="websockets-sansio", loop="uvloop",
                    ws_per_message_deflate=False)
    return 0


__all__ = ["make_app", "serve_recorder", "WebSocketDisconnect"]
