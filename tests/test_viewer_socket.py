"""The native viewer socket (edge/viewer_socket.py): what it takes from uvicorn, what it
leaves to it, and RFC 6455 on raw sockets against real nodes: masked frames only, control
frames whole and short, fragments joined, the size cap, the close handshake both ways,
keepalive pings, and 1012 at shutdown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from typing import AsyncIterator, Iterator

import pytest

from harness import Client, Node, RedisServer, create_room, node_with_room, token
from liveserver.edge.viewer_socket import parse_upgrade

TIMEOUT = 10
ROOM = "native"


def _request(path: str = f"/ws/rooms/{ROOM}", query: str = "", extra: str = "", key: str | None = None,
             version: str = "13") -> bytes:
    key = key or base64.b64encode(os.urandom(16)).decode()
    target = path + (f"?{query}" if query else "")
    return (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n"
            f"Sec-WebSocket-Protocol: lc1.json\r\n{extra}\r\n").encode()


# -- the handshake parse (no I/O) -----------------------------------------------------------------
def test_the_rfc_example_key_gets_the_rfc_accept() -> None:
    up = parse_upgrade(_request(query="token=abc&since=1-0", key="dGhlIHNhbXBsZSBub25jZQ==") + b"\x81")
    assert up is not None
    assert up.accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
    assert (up.room, up.query, up.offered, up.rest) == (ROOM, "token=abc&since=1-0", ["lc1.json"], b"\x81")


@pytest.mark.parametrize("data", [
    _request()[:-2],  # the head is not whole yet
    _request().replace(b"GET ", b"POST ", 1),
    _request().replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1),
    _request(version="8"),
    _request(key="c2hvcnQ="),  # a key of 5 bytes
    _request(key="not base64!"),
    _request(extra="Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),  # two keys
    _request(path="/ws/rooms/a%20b"),
    _request(path="/ws/rooms/a/b"),
    _request(path="/ws/rooms/"),
    _request().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
    _request().replace(b"Connection: keep-alive, Upgrade", b"Connection: keep-alive"),
    _request().replace(b"Host: 127.0.0.1", b"Host : 127.0.0.1"),
])
def test_anything_but_a_plain_whole_upgrade_is_left_to_uvicorn(data: bytes) -> None:
    assert parse_upgrade(data) is None


# -- against a node ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def native_node(redis_server: RedisServer) -> Iterator[Node]:
    with node_with_room(redis_server.url, ROOM, LIVESERVER_WS_PING_MS="500", LIVESERVER_MAX_FRAME="1024") as node:
        yield node


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes((0x80 * fin | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += bytes((0x80 | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((0x80 | 127,)) + struct.pack("!Q", n)
    return head + mask + body


class Raw:
    """A websocket client on a bare TCP connection, to send what a library would not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node: Node, user: str, first: bytes = b"", room: str = ROOM) -> "Raw":
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write(_request(path=f"/ws/rooms/{room}", query=f"token={token(user)}") + first)
        raw = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"sec-websocket-protocol: lc1.json" in head.lower()
        return raw

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(cls, node: Node, user: str, first: bytes = b"") -> AsyncIterator["Raw"]:
        """`open`, then close the connection however the block ends."""
        raw = await cls.open(node, user, first)
        try:
            yield raw
        finally:
            raw.close()

    async def frame(self) -> tuple[int, bytes]:
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        assert not b1 & 0x80, "a server frame is never masked"
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT)

    async def json_frame(self, t: str) -> dict:
        while True:
            op, payload = await self.frame()
            if op == 1:
                f = json.loads(payload)
                if f["t"] == t:
                    return f

    async def close_code(self) -> int:
        """Read to the server's close frame (skipping anything before it); its code."""
        while True:
            op, payload = await self.frame()
            if op == 8:
                return int.from_bytes(payload[:2], "big")

    async def eof(self) -> None:
        assert await asyncio.wait_for(self.reader.read(), TIMEOUT) == b""

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


async def test_a_frame_sent_with_the_handshake_is_answered_after_the_welcome(native_node: Node) -> None:
    ping = _masked(1, json.dumps({"op": "ping", "id": 7}).encode())
    async with Raw.opened(native_node, "n-early", first=ping) as raw:
        assert (await raw.json_frame("welcome"))["user"]["id"] == "n-early"
        assert (await raw.json_frame("pong"))["re"] == 7


async def test_fragments_are_joined_and_control_frames_between_them_answered(native_node: Node) -> None:
    async with Raw.opened(native_node, "n-frag") as raw:
        await raw.json_frame("welcome")
        text = json.dumps({"op": "ping", "id": 9}).encode()
        raw.send(_masked(1, text[:5], fin=False) + _masked(9, b"hb") + _masked(0, text[5:12], fin=False)
                 + _masked(0, text[12:]))
        op, payload = await raw.frame()
        while op == 9:  # the node's own keepalive ping
            op, payload = await raw.frame()
        assert (op, payload) == (10, b"hb")  # the pong, in the middle of the message
        assert (await raw.json_frame("pong"))["re"] == 9


@pytest.mark.parametrize(("bad", "code"), [
    (b"\x81\x02hi", 1002),  # not masked
    (_masked(1, b"hi")[:0] + bytes((0xC1,)) + _masked(1, b"hi")[1:], 1002),  # RSV1 set
    (_masked(9, b"x" * 126), 1002),  # a control frame over 125 bytes
    (_masked(9, b"x", fin=False), 1002),  # a fragmented control frame
    (_masked(0, b"x"), 1002),  # a continuation with nothing to continue
    (_masked(3, b"x"), 1002),  # a reserved opcode
    (_masked(1, b"\xff\xfe"), 1007),  # text that is not UTF-8
    (_masked(8, struct.pack("!H", 999)), 1002),  # a close code nobody may send
    (_masked(1, b"x" * 20_000), 1009),  # over 16x LIVESERVER_MAX_FRAME
])
async def test_a_broken_frame_closes_with_its_code_and_the_node_serves_on(native_node: Node, bad: bytes,
                                                                          code: int) -> None:
    async with Raw.opened(native_node, "n-bad") as raw:
        await raw.json_frame("welcome")
        raw.send(bad)
        assert await raw.close_code() == code
        await raw.eof()  # and the connection is closed, not left open
    ok = await Client.connect(native_node, ROOM, user="n-after")
    assert (await ok.request("danmaku", timeout=5, text="still here"))["ok"]
    await ok.close()


async def test_a_message_over_the_frame_limit_but_under_the_cap_gets_too_long(native_node: Node) -> None:
    async with Raw.opened(native_node, "n-long") as raw:
        await raw.json_frame("welcome")
        raw.send(_masked(1, json.dumps({"op": "ping", "id": 1, "pad": "x" * 2000}).encode()))
        err = await raw.json_frame("error")  # not parsed, so no `id` to reply to
        assert err["code"] == "too_long", err


async def test_the_client_closes_and_the_server_echoes_its_code(native_node: Node) -> None:
    async with Raw.opened(native_node, "n-bye") as raw:
        await raw.json_frame("welcome")
        raw.send(_masked(8, struct.pack("!H", 1000) + b"bye"))
        assert await raw.close_code() == 1000
        await raw.eof()


async def test_the_server_closes_a_bad_token_and_waits_for_the_echo(native_node: Node) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", native_node.port)
    writer.write(_request(query="token=not-a-jwt"))
    raw = Raw(reader, writer)
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert await raw.close_code() == 4401
        raw.send(_masked(8, struct.pack("!H", 4401)))  # our echo: the server ends the TCP connection
        await raw.eof()
    finally:
        raw.close()


async def test_a_peer_that_answers_no_ping_is_cut_and_one_that_does_stays(native_node: Node) -> None:
    silent = await Raw.open(native_node, "n-silent")
    polite = await Client.connect(native_node, ROOM, user="n-polite")  # websockets answers pings
    try:
        await silent.json_frame("welcome")
        pinged = False
        while True:  # pings every 0.5 s; unanswered, the next one is a close 1011
            op, payload = await silent.frame()
            if op == 9:
                pinged = True
            if op == 8:
                assert int.from_bytes(payload[:2], "big") == 1011
                break
        assert pinged
        assert (await polite.request("danmaku", timeout=5, text="alive"))["ok"]
    finally:
        silent.close()
        await polite.close()


async def test_requests_it_does_not_take_are_still_served_the_uvicorn_way(native_node: Node) -> None:
    """A head split over two reads, and a %-escaped room name, go to edge/lean.py's path."""
    create_room(native_node, "native-esc")
    request = _request(path="/ws/rooms/native%2Desc", query=f"token={token('n-esc')}")
    for cuts in ([len(request)], [30, len(request)]):
        reader, writer = await asyncio.open_connection("127.0.0.1", native_node.port)
        try:
            start = 0
            for cut in cuts:
                writer.write(request[start:cut])
                await writer.drain()
                await asyncio.sleep(0.05)  # separate reads
                start = cut
            raw = Raw(reader, writer)
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            welcome = await raw.json_frame("welcome")
            assert (welcome["room"], welcome["user"]["id"]) == ("native-esc", "n-esc")
        finally:
            writer.close()


async def test_a_node_that_stops_closes_its_viewers_with_1012(redis_server: RedisServer) -> None:
    with node_with_room(redis_server.url, ROOM) as node:
        raw = await Raw.open(node, "n-stop")
        await raw.json_frame("welcome")
        stopping = asyncio.get_running_loop().run_in_executor(None, node.stop)
        assert await raw.close_code() == 1012
        raw.close()
        assert await asyncio.wait_for(stopping, 20) is not None  # it ended (the stop's own bound)
