"""A viewer's frames go from the protocol straight to its session (edge/inbox.py), not
through ASGI: in order, none lost, the socket read again after a burst, frames sent before
the welcome answered after it, a frame that is not UTF-8 text closed with 1007."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import pytest
import websockets

from harness import Client, Node, RedisServer, node_with_room, token

ROOM = "inbox"


@pytest.fixture(scope="module", params=["native", "lean"])
def inbox_node(redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[Node]:
    """Both ways frames reach the inbox: the native viewer socket (edge/viewer_socket.py)
    and uvicorn's protocol with edge/lean.py's sink (LIVESERVER_NATIVE_WS=0)."""
    native = "1" if request.param == "native" else "0"
    with node_with_room(redis_server.url, ROOM, LIVESERVER_OP_RATE="100000", LIVESERVER_NATIVE_WS=native,
                        LIVESERVER_DANMAKU_RATE="100000", LIVESERVER_DANMAKU_BURST="1000") as node:
        yield node


async def _frames_until(ws: Any, done: Any, timeout: float = 15) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        while not done(seen):
            seen.append(json.loads(await ws.recv()))

    await asyncio.wait_for(read(), timeout)
    return seen


async def test_frames_sent_before_the_welcome_are_answered_in_order(inbox_node: Node) -> None:
    url = f"{inbox_node.ws}/ws/rooms/{ROOM}?token={token('early')}"
    async with websockets.connect(url, subprotocols=["lc1.json"]) as ws:
        # No wait for the welcome: these reach the node while it is still joining the viewer.
        for i in range(50):
            await ws.send(json.dumps({"op": "ping", "id": i}))
        frames = await _frames_until(ws, lambda seen: sum(f["t"] == "pong" for f in seen) == 50)
    assert frames[0]["t"] == "welcome"
    assert [f["re"] for f in frames if f["t"] == "pong"] == list(range(50))


async def test_a_burst_far_over_the_pause_threshold_is_all_answered_in_order(inbox_node: Node) -> None:
    c = await Client.connect(inbox_node, ROOM, user="burster")
    # Danmaku awaits Redis, pings do not: replies still come in the order sent, and the
    # socket, paused while frames wait, is read again until the last one.
    burst = []
    for i in range(400):
        frame = {"op": "ping", "id": i} if i % 4 else {"op": "danmaku", "id": i, "text": f"d{i}"}
        burst.append(json.dumps(frame))
    for data in burst:  # no wait between: the node reads many frames per read
        await c.ws.send(data)
    answered: list[int] = []

    def done(frame: dict[str, Any]) -> bool:
        if frame["t"] == "pong" or frame["t"] == "reply":
            answered.append(frame["re"])
            if frame["t"] == "reply":
                assert frame["ok"], frame
        return len(answered) == 400

    await c.wait_for(done, timeout=20)
    assert answered == list(range(400))
    await c.close()


async def test_text_that_is_not_utf8_closes_1007_and_the_node_serves_on(inbox_node: Node) -> None:
    c = await Client.connect(inbox_node, ROOM, user="garbler")
    await c.ws.send(b"\xff\xfe not utf-8", text=True)
    code = await asyncio.wait_for(asyncio.shield(c.closed), 10)
    assert code == 1007
    other = await Client.connect(inbox_node, ROOM, user="after-garbler")
    reply = await other.request("danmaku", timeout=5, text="still here")
    assert reply["ok"], reply
    await other.close()


@pytest.fixture(scope="module")
def asgi_node(redis_server: RedisServer) -> Iterator[Node]:
    """uvicorn's own protocols (LIVESERVER_LEAN_WS=0): frames come through ASGI (ws.py `_read`)."""
    with node_with_room(redis_server.url, ROOM, LIVESERVER_LEAN_WS="0", LIVESERVER_ABUSE_ERRORS="20") as node:
        yield node


async def test_through_asgi_frames_are_answered_in_order_and_abuse_closes_4429(asgi_node: Node) -> None:
    c = await Client.connect(asgi_node, ROOM, user="asgi")
    for i in range(20):
        await c.ws.send(json.dumps({"op": "ping", "id": i}))
    pongs: list[int] = []
    await c.wait_for(lambda f: f["t"] == "pong" and pongs.append(f["re"]) is None and len(pongs) == 20, timeout=10)
    assert pongs == list(range(20))
    for _ in range(30):
        await c.ws.send("not json")
    assert await asyncio.wait_for(asyncio.shield(c.closed), 10) == 4429
