"""A viewer that stops reading must not slow anyone else down, and is closed with 4408.

The slow viewer is a raw websockets client on a socket with a tiny receive buffer and a
small MSS (so the kernel on the server side cannot soak up megabytes for it either), which
simply never calls recv() until the end."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any, Iterator

import httpx
import pytest
import websockets

from harness import Node, RedisServer, admin_headers, create_room, free_port, metric, node_env, token
from waiting import wait_until

TICK_MS = 50
SLOW_CLOSE_MS = 1000
ROOM = "slow-consumer"
TEXT = "慢" * 500  # ~1.5 kB of UTF-8 per notice


@pytest.fixture(scope="module")
def slow_node(redis_server: RedisServer) -> Iterator[Node]:
    env = node_env(redis_server.url, LIVESERVER_TICK_MS=str(TICK_MS), LIVESERVER_VIEWER_BUFFER="16384",
                   LIVESERVER_SLOW_CLOSE_MS=str(SLOW_CLOSE_MS))
    node = Node(port=free_port(), env=env).start()
    create_room(node, ROOM)
    yield node
    node.kill()


async def connect_stalled(node: Node, user: str, room: str = ROOM) -> Any:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", node.port)), 5)
    return await asyncio.wait_for(
        websockets.connect(f"{node.ws}/ws/rooms/{room}?token={token(user)}", sock=sock, subprotocols=["lc1.json"],
                           max_queue=1, ping_interval=None, max_size=None),
        5,
    )


class Recorder:
    """A normal viewer that reads everything and notes when each frame arrived."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append((time.time() * 1000, json.loads(raw)))
        except websockets.ConnectionClosed:
            pass

    def notices(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, e) for at, f in self.frames if f["t"] == "batch" for e in f["events"] if e["k"] == "notice"]


def slow_closes(node: Node) -> float:
    return metric(node, "liveserver_slow_closes_total")


def assert_chain(frames: list[dict[str, Any]]) -> None:
    batches = [f for f in frames if f["t"] == "batch"]
    welcome = frames[0]
    assert welcome["t"] == "welcome"
    prev = welcome["offset"]
    for f in batches:
        assert f["prev"] == prev, "a gap in the batch chain"
        prev = f["offset"]


async def test_stalled_viewer_does_not_delay_others_and_is_closed_4408(slow_node: Node) -> None:
    node = slow_node
    before = slow_closes(node)
    normal = Recorder(await asyncio.wait_for(websockets.connect(f"{node.ws}/ws/rooms/{ROOM}?token={token('normal')}",
                                                                subprotocols=["lc1.json"]), 5))
    stalled = await connect_stalled(node, "stalled")
    published: list[str] = []
    started = time.monotonic()

    async with httpx.AsyncClient(headers=admin_headers(), timeout=5) as http:
        stop = asyncio.Event()

        async def publish() -> None:
            while not stop.is_set():
                r = await http.post(f"{node.http}/api/v1/rooms/{ROOM}/notices", json={"text": TEXT})
                assert r.status_code == 201, r.text
                published.append(r.json()["offset"])

        publishers = [asyncio.create_task(publish()) for _ in range(3)]
        try:
            # Flood until the node gives up on the stalled viewer (bounded: 20 s from `started`).
            def stalled_closed() -> bool:
                if slow_closes(node) > before:
                    return True
                for p in publishers:
                    if p.done():
                        p.result()
                return False

            await wait_until(stalled_closed, timeout=20 - (time.monotonic() - started), interval=0.1,
                             what="the stalled viewer to be closed")
            # The normal viewer must also see the tail of the flood promptly after the close.
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.gather(*publishers)
    closed_after = time.monotonic() - started
    assert closed_after >= SLOW_CLOSE_MS / 1000, "closed before it had been slow for LIVESERVER_SLOW_CLOSE_MS"
    assert len(published) * len(TEXT.encode()) > 100_000, "not enough traffic to fill the stalled viewer's buffers"

    # The normal viewer got every notice, in order, each within about one tick.
    last = max(published, key=lambda o: tuple(map(int, o.split("-"))))
    await wait_until(lambda: any(e["offset"] == last for _, e in normal.notices()), timeout=5, interval=0.05,
                     what="the normal viewer to get the last notice")
    got = normal.notices()
    assert sorted(e["offset"] for _, e in got) == sorted(published)
    assert [e["offset"] for _, e in got] == sorted((e["offset"] for _, e in got), key=lambda o: tuple(map(int, o.split("-"))))
    delays = sorted(at - e["ts"] for at, e in got)
    p95, worst = delays[int(len(delays) * 0.95)], delays[-1]
    assert p95 <= TICK_MS + 100, f"p95 delay {p95:.0f} ms (max {worst:.0f} ms) over {len(delays)} notices"
    assert worst <= TICK_MS + 400, f"max delay {worst:.0f} ms (p95 {p95:.0f} ms)"
    assert_chain([f for _, f in normal.frames])

    # The stalled viewer, reading at last, finds what it was sent and then the 4408 close.
    seen: list[dict[str, Any]] = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(15):
            while True:
                seen.append(json.loads(await stalled.recv()))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    assert_chain(seen)  # skipped frames are never papered over: the stream just stops
    await normal.ws.close()
    await asyncio.wait_for(normal.task, 5)


async def test_lagging_viewer_that_drains_in_time_is_caught_up_from_the_stream(redis_server: RedisServer) -> None:
    """A viewer that falls behind (its buffer passes LIVESERVER_VIEWER_BUFFER, so batches
    are skipped) but starts reading again before LIVESERVER_SLOW_CLOSE_MS is refilled from
    the stream: every event once, in order, the batch chain unbroken, and no close."""
    room = "slow-catch-up"
    env = node_env(redis_server.url, LIVESERVER_TICK_MS=str(TICK_MS), LIVESERVER_VIEWER_BUFFER="16384",
                   LIVESERVER_SLOW_CLOSE_MS="30000")
    node = Node(port=free_port(), env=env).start()
    try:
        create_room(node, room)
        stalled = await connect_stalled(node, "lagger", room)
        published: list[str] = []
        async with httpx.AsyncClient(headers=admin_headers(), timeout=5) as http:
            # Enough to fill the socket buffers and then the viewer's 16 KiB queue.
            for _ in range(400):
                r = await http.post(f"{node.http}/api/v1/rooms/{room}/notices", json={"text": TEXT})
                assert r.status_code == 201, r.text
                published.append(r.json()["offset"])
        assert len(published) * len(TEXT.encode()) > 500_000
        # Now read everything; the catch-up arrives once the queue has drained.
        seen: list[dict[str, Any]] = []
        last = published[-1]
        async with asyncio.timeout(20):
            while not any(e["offset"] == last for f in seen if f["t"] == "batch" for e in f["events"]):
                seen.append(json.loads(await stalled.recv()))
        notices = [e["offset"] for f in seen if f["t"] == "batch" for e in f["events"] if e["k"] == "notice"]
        assert notices == published, "missed, repeated or reordered events after the catch-up"
        assert_chain(seen)
        # It was really behind: the node skipped batches for it and caught it up.
        assert metric(node, "liveserver_catch_ups_total") >= 1, "the viewer never lagged: the test proved nothing"
        assert metric(node, "liveserver_slow_closes_total") == 0
        assert stalled.close_code is None
        await stalled.close()
    finally:
        node.kill()
