"""Two real nodes on one Redis: events fan out across nodes through the room stream, likes
sum exactly, online counts both nodes, and a SIGKILLed node's viewers drop out."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import httpx
import pytest

from harness import Client, Node, RedisServer, admin_headers, create_room, free_port, node_env
from liveserver.engine.keys import RoomKeys

NODE_TTL_MS = 1000


@pytest.fixture(scope="module")
def redis_server(redis_backend: RedisServer) -> RedisServer:
    """This suite runs twice: on one Redis and on a Redis Cluster (conftest.redis_backend)."""
    return redis_backend


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[tuple[Node, Node]]:
    env = dict(LIVESERVER_NODE_TTL_MS=str(NODE_TTL_MS), LIVESERVER_OP_RATE="200")
    a = Node(port=free_port(), env=node_env(redis_server.url, **env)).start()
    b = Node(port=free_port(), env=node_env(redis_server.url, **env)).start()
    yield a, b
    a.kill()
    b.kill()


async def test_danmaku_and_notices_cross_nodes(pair: tuple[Node, Node], room_name: str) -> None:
    a, b = pair
    create_room(a, room_name)
    on_a = await Client.connect(a, room_name, user="alice")
    on_b = await Client.connect(b, room_name, user="bob")
    assert on_a.welcome["epoch"] == on_b.welcome["epoch"]
    sent = await on_a.request("danmaku", text="from node A")
    assert sent["ok"], sent
    seen_b = await on_b.wait_event("danmaku", lambda e: e["offset"] == sent["data"]["offset"], timeout=5)
    assert seen_b["text"] == "from node A" and seen_b["user"] == "alice"
    # And back the other way, plus a host notice posted through node B's API.
    back = await on_b.request("danmaku", text="from node B")
    await on_a.wait_event("danmaku", lambda e: e["offset"] == back["data"]["offset"], timeout=5)
    r = httpx.post(f"{b.http}/api/v1/rooms/{room_name}/notices", json={"text": "via B"}, headers=admin_headers(), timeout=5)
    assert r.status_code == 201
    await on_a.wait_event("notice", lambda e: e["offset"] == r.json()["offset"], timeout=5)
    # Both nodes deliver the same events in the same order.
    await on_b.wait_event("notice", lambda e: e["offset"] == r.json()["offset"], timeout=5)
    assert [e["offset"] for e in on_a.events] == [e["offset"] for e in on_b.events]
    await on_a.close()
    await on_b.close()


async def test_likes_sum_exactly_across_nodes(pair: tuple[Node, Node], room_name: str, redis_server: RedisServer) -> None:
    a, b = pair
    create_room(a, room_name)
    clients = [await Client.connect(a if i % 2 else b, room_name, user=f"liker{i}") for i in range(20)]
    watch_a, watch_b = clients[1], clients[0]

    async def like_50(c: Client) -> None:
        replies = await asyncio.gather(*(c.request("like", n=1, timeout=15) for _ in range(50)))
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]

    await asyncio.wait_for(asyncio.gather(*(like_50(c) for c in clients)), 30)
    # Every like was taken (replied); the room total reaches 1,000 on both nodes and not more.
    for watcher in (watch_a, watch_b):
        state = await watcher.wait_state(lambda s: s["likes"] >= 1000, timeout=10)
        assert state["likes"] == 1000
    # A few more ticks change nothing.
    sent = await watch_a.request("danmaku", text="tick")
    await watch_b.wait_event("danmaku", lambda e: e["offset"] == sent["data"]["offset"])
    assert watch_a.state["likes"] == watch_b.state["likes"] == 1000
    assert int(redis_server.client().get(RoomKeys(room_name).likes)) == 1000
    # likes with n count n.
    assert (await watch_a.request("like", n=50))["ok"]
    assert (await watch_b.request("like", n=25))["ok"]
    await watch_a.wait_state(lambda s: s["likes"] == 1075, timeout=5)
    await watch_b.wait_state(lambda s: s["likes"] == 1075, timeout=5)
    for c in clients:
        await c.close()


async def test_resume_on_the_other_node(pair: tuple[Node, Node], room_name: str) -> None:
    a, b = pair
    create_room(a, room_name)
    writer = await Client.connect(a, room_name, user="writer")
    first = await writer.request("danmaku", text="before")
    reader = await Client.connect(a, room_name, user="reader")
    if reader.offset != first["data"]["offset"]:  # the welcome came before that tick's batch
        await reader.wait_event("danmaku", lambda e: e["offset"] == first["data"]["offset"])
    since, epoch = reader.offset, reader.welcome["epoch"]
    await reader.close()
    offsets = []
    for i in range(5):
        r = httpx.post(f"{a.http}/api/v1/rooms/{room_name}/notices", json={"text": f"n{i}"}, headers=admin_headers(), timeout=5)
        offsets.append(r.json()["offset"])
    again = await Client.connect(b, room_name, user="reader", since=since, epoch=epoch)
    assert again.welcome["recovered"] is True
    await again.wait_event("notice", lambda e: e["offset"] == offsets[-1], timeout=5)
    assert [e["offset"] for e in again.events if e["k"] == "notice"][:5] == offsets
    await again.close()
    await writer.close()


async def test_a_node_opening_a_busy_room_misses_nothing(pair: tuple[Node, Node], room_name: str, redis_server: RedisServer) -> None:
    """Events published while node B opens a room (its first viewer there) all reach that
    viewer: the streams reader may deliver them before the join has finished."""
    a, b = pair
    rooms = [f"{room_name}-{i}" for i in range(10)]
    for name in rooms:
        create_room(a, name)
    stop = asyncio.Event()
    first_round = asyncio.Event()
    async with httpx.AsyncClient(headers=admin_headers(), timeout=5) as http:

        async def publish(start: int) -> None:
            i = start
            while not stop.is_set():
                r = await http.post(f"{a.http}/api/v1/rooms/{rooms[i % len(rooms)]}/notices", json={"text": str(i)})
                assert r.status_code == 201
                i += 3
                if i >= len(rooms):
                    first_round.set()

        publishers = [asyncio.create_task(publish(i)) for i in range(3)]
        await asyncio.wait_for(first_round.wait(), 5)
        viewers = [await Client.connect(b, name, user="v") for name in rooms]
        stop.set()
        await asyncio.gather(*publishers)
    r = redis_server.client()
    for name, viewer in zip(rooms, viewers):
        key = RoomKeys(name).events
        last = r.xrevrange(key, count=1)[0][0]
        if viewer.offset != last:
            await viewer.wait_for(lambda f: f.get("t") == "batch" and f["offset"] == last, timeout=5)
        expected = [eid for eid, _ in r.xrange(key, min="(" + viewer.welcome["offset"], max=last)]
        assert [e["offset"] for e in viewer.events] == expected, name
        await viewer.close()


async def test_online_counts_both_nodes_and_drops_a_killed_node(pair: tuple[Node, Node], room_name: str) -> None:
    """Runs last in this module: it SIGKILLs node B."""
    a, b = pair
    create_room(a, room_name)
    on_a = [await Client.connect(a, room_name, user=f"a{i}") for i in range(3)]
    on_b = [await Client.connect(b, room_name, user=f"b{i}") for i in range(2)]
    await on_a[0].wait_state(lambda s: s["online"] == 5, timeout=5)
    await on_b[0].wait_state(lambda s: s["online"] == 5, timeout=5)
    # A viewer leaving is counted out at the next tick.
    await on_a[2].close()
    await on_b[0].wait_state(lambda s: s["online"] == 4, timeout=5)
    b.kill()
    killed_at = time.monotonic()
    for c in on_b:
        assert await asyncio.wait_for(asyncio.shield(c.closed), 5) != 1000  # not a clean close
    await on_a[0].wait_state(lambda s: s["online"] == 2, timeout=NODE_TTL_MS / 1000 + 4)
    assert time.monotonic() - killed_at < NODE_TTL_MS / 1000 + 3
    for c in on_a[:2]:
        await c.close()
