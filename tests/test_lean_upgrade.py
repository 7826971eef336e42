"""The viewer upgrade's short path (edge/lean.py `LeanHttpToolsProtocol`): a connection whose
first bytes are `GET /ws/rooms/` goes to the websocket protocol without uvicorn's HTTP
parse. These drive raw sockets at a real node, for the cases that path must not break:
a handshake split across packets, a request that is not an upgrade, garbage after the
request line, and plain HTTP (also on a keep-alive connection that upgrades later)."""

from __future__ import annotations

import asyncio
import base64
import json
import os

from harness import Node, create_room, token

TIMEOUT = 10


def _upgrade(room: str, user: str = "lean-u1") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /ws/rooms/{room}?token={token(user)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: lc1.json\r\n\r\n").encode()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await asyncio.wait_for(reader.readexactly(n), TIMEOUT)


async def _welcome(reader: asyncio.StreamReader) -> dict:
    head = await _read_head(reader)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"sec-websocket-protocol: lc1.json" in head.lower()
    op, payload = await _read_frame(reader)
    assert op == 1
    frame = json.loads(payload)
    assert frame["t"] == "welcome"
    return frame


async def test_a_handshake_split_across_packets_is_served(node: Node, room_name: str) -> None:
    create_room(node, room_name)
    request = _upgrade(room_name)
    # the first packet is shorter than the short path's prefix, the second ends mid-header
    for cuts in ([5, 40], [14, 15, 200]):
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        try:
            start = 0
            for cut in [*cuts, len(request)]:
                writer.write(request[start:cut])
                await writer.drain()
                await asyncio.sleep(0.02)  # separate packets (the server must wait for the rest)
                start = cut
            frame = await _welcome(reader)
            assert frame["room"] == room_name
            assert frame["user"]["id"] == "lean-u1"
        finally:
            writer.close()


async def test_a_get_that_is_not_an_upgrade_is_refused_and_the_node_lives(node: Node, room_name: str) -> None:
    create_room(node, room_name)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(f"GET /ws/rooms/{room_name} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await _read_head(reader)
    status = int(head.split(b" ")[1])
    assert 400 <= status < 500, head
    writer.close()
    # garbage after the prefix: refused too
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(b"GET /ws/rooms/\x00\xff\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), TIMEOUT)  # answered and closed, not left hanging
    assert data.startswith(b"HTTP/1.1 400"), data[:80]
    writer.close()
    # and the node still serves viewers
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(_upgrade(room_name))
    assert (await _welcome(reader))["room"] == room_name
    writer.close()


async def test_plain_http_then_an_upgrade_on_the_same_connection(node: Node, room_name: str) -> None:
    create_room(node, room_name)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await _read_head(reader)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        # a keep-alive connection that has spoken HTTP upgrades through uvicorn's own path
        writer.write(_upgrade(room_name, "lean-u2"))
        frame = await _welcome(reader)
        assert frame["user"]["id"] == "lean-u2"
    finally:
        writer.close()


async def test_http_requests_still_honour_forwarded_headers_from_a_trusted_proxy() -> None:
    """`liveserver serve` turns uvicorn's proxy-headers middleware off; the app applies it
    itself to everything but viewer sockets (edge/app.py `LiveApp`)."""
    import httpx
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from liveserver.edge.app import LiveApp

    async def who(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    app = LiveApp(routes=[Route("/who", who)])
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5555)),
                                 base_url="http://node") as client:
        assert (await client.get("/who", headers=headers)).json() == {"client": "203.0.113.7", "scheme": "https"}
    # from an address that is not a trusted proxy, the headers are ignored
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 5555)),
                                 base_url="http://node") as client:
        assert (await client.get("/who", headers=headers)).json() == {"client": "198.51.100.9", "scheme": "http"}
