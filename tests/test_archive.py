"""The archive holds every room event although the live stream is trimmed by MAXLEN: the
stream is trimmed to MAXLEN only by the archiver's copy (`archive_copy.lua`), once the
archive holds all of it (the writers, `_append_event.lua`, trim only at 10x MAXLEN, when no
archiver runs), and each copy starts after the archive's own last id, so archivers running
at once neither skip nor reorder an event. On one Redis and on a Redis Cluster, then
through a node and its history API."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import httpx

from harness import Node, RedisClusterServers, RedisServer, admin_headers, archive_caught_up, async_redis, create_room
from liveserver.engine.engine import RoomEngine
from liveserver.engine.keys import RoomKeys
from liveserver.engine.scripts import ScriptRunner
from waiting import wait_until


@asynccontextmanager
async def _room(url: str, maxlen: int) -> AsyncIterator[tuple[str, RoomKeys, RoomEngine]]:
    """A fresh room and an engine (no node) at LIVESERVER_STREAM_MAXLEN `maxlen`."""
    client = async_redis(url)
    room = f"arch-{uuid.uuid4().hex[:8]}"
    try:
        yield room, RoomKeys(room), RoomEngine(client, ScriptRunner(client), maxlen)
    finally:
        await client.aclose()


async def _publish(engine: RoomEngine, room: str, n: int, start: int = 0) -> list[str]:
    """`n` notices, one after another; their offsets in order."""
    offsets = []
    for i in range(start, start + n):
        offset, _ts = await engine.publish(room, "notice", {"text": f"n{i}"})  # type: ignore[misc]
        offsets.append(offset)
    return offsets


async def _archive_all(engine: RoomEngine, room: str, archivers: int, count: int) -> int:
    """Passes of `archivers` archivers at once, `count` events per room each, until none
    has more; returns the passes it took."""
    for passes in range(1, 1001):
        results = await asyncio.wait_for(
            asyncio.gather(*(engine.reports.archive_pass([room], count) for _ in range(archivers))), 10)
        if not any(more for _copied, more in results):
            return passes
    raise AssertionError("the archivers still had more after 1,000 passes")


async def test_no_event_leaves_the_stream_before_it_is_archived(redis_backend: RedisServer | RedisClusterServers) -> None:
    client = redis_backend.client()
    async with _room(redis_backend.url, 50) as (room, keys, engine):
        sent = await _publish(engine, room, 300)
        # Six times MAXLEN and nothing archived yet: all of it stays.
        assert client.xlen(keys.events) == 300
        assert not client.hexists(keys.meta, "trimmed")

        # Two archivers at once, 7 events a call: the archive is the stream, in order, once.
        assert await _archive_all(engine, room, archivers=2, count=7) > 300 // 14
        assert [eid for eid, _f in client.xrange(keys.archive)] == sent
        assert client.hget(keys.meta, "archived_last") == sent[-1]
        assert await engine.reports.archive_pass([room], 7) == (0, False)  # nothing left
        # All archived: the last copy trimmed the stream back to MAXLEN ~ 50.
        assert 50 <= client.xlen(keys.events) < 300
        assert client.hexists(keys.meta, "trimmed")

        # The history is whole: the archive, then the event not copied yet.
        sent += await _publish(engine, room, 1, start=300)
        rows = await engine.reports.history(room)
        assert [eid for eid, _f in rows] == sent
        assert [f["d"] for _eid, f in rows][-1] == '{"text":"n300"}'


async def test_without_an_archiver_the_stream_stays_bounded(redis_backend: RedisServer | RedisClusterServers) -> None:
    """No archiver runs: the stream keeps at most 10x MAXLEN (plus one stream node of 100
    entries, trimming is approximate) and loses what is older; an archiver started later
    copies what is left and trims the stream to MAXLEN."""
    client = redis_backend.client()
    async with _room(redis_backend.url, 10) as (room, keys, engine):
        sent = await _publish(engine, room, 400)
        assert 100 <= client.xlen(keys.events) <= 200
        assert client.hexists(keys.meta, "trimmed")

        kept = [eid for eid, _f in client.xrange(keys.events)]
        await _archive_all(engine, room, archivers=1, count=500)
        assert [eid for eid, _f in client.xrange(keys.archive)] == kept == sent[-len(kept):]
        assert client.xlen(keys.events) <= 110  # back to MAXLEN ~ 10


N = 600


async def test_archive_keeps_every_event_the_live_stream_trimmed(start_node: Callable[..., Node], room_name: str,
                                                                  redis_server: RedisServer) -> None:
    """A node's own archiver, a burst of 600 notices at MAXLEN 100: whenever the archiver
    runs (a pass every 100 ms, or a second after a quiet spell), the history is whole."""
    node = start_node(LIVESERVER_STREAM_MAXLEN="100")
    create_room(node, room_name)
    async with httpx.AsyncClient(base_url=node.http, headers=admin_headers(), timeout=10) as http:
        for i in range(N):
            r = await http.post(f"/api/v1/rooms/{room_name}/notices", json={"text": f"n{i}"})
            assert r.status_code == 201

    def history() -> list[dict[str, Any]]:
        events, after = [], ""
        while True:
            r = httpx.get(f"{node.http}/api/v1/rooms/{room_name}/history" + (f"?after={after}" if after else ""), timeout=10)
            body = r.json()
            events += body["events"]
            if not body["more"]:
                return events
            after = body["events"][-1]["offset"]

    events = history()  # whole at once: the archive, then what the stream holds after it
    assert [e["text"] for e in events] == [f"n{i}" for i in range(N)]
    assert all(a["offset"] < b["offset"] or len(a["offset"]) < len(b["offset"]) for a, b in zip(events, events[1:]))

    client = redis_server.client()
    keys = RoomKeys(room_name)
    await wait_until(lambda: archive_caught_up(client, room_name), timeout=10, what="the archiver to catch up")
    archived = [f["d"] for _eid, f in client.xrange(keys.archive) if f["k"] == "notice"]
    assert archived == [f'{{"text":"n{i}"}}' for i in range(N)]
    assert client.xlen(keys.events) < N  # archived, the live stream is trimmed


async def test_a_lost_stream_owes_the_archive_nothing(redis_backend: RedisServer | RedisClusterServers) -> None:
    """The live stream is lost (flushed, a failover) with events not archived yet: they
    are gone, so the archiver marks the room done rather than looking for them every pass,
    and copies from the next event (a new epoch) on."""
    client = redis_backend.client()
    async with _room(redis_backend.url, 10) as (room, keys, engine):
        sent = await _publish(engine, room, 3)
        await _archive_all(engine, room, archivers=1, count=500)
        sent += await _publish(engine, room, 2, start=3)
        client.delete(keys.events)
        assert await engine.reports.archive_pass([room], 500) == (0, False)
        assert client.hget(keys.meta, "archived_last") == sent[-1]  # done: the next pass skips it
        epoch = client.hget(keys.meta, "epoch")

        sent += await _publish(engine, room, 1, start=5)
        assert client.hget(keys.meta, "epoch") != epoch
        assert await engine.reports.archive_pass([room], 500) == (1, False)
        assert [eid for eid, _f in client.xrange(keys.archive)] == sent[:3] + sent[5:]


def _id(offset: str) -> tuple[int, int]:
    ms, seq = offset.split("-")
    return int(ms), int(seq)


async def test_a_new_stream_numbers_after_the_lost_one(redis_backend: RedisServer | RedisClusterServers) -> None:
    """The lost stream's last event was written by a primary whose clock ran ahead (or in
    the same millisecond as the next one): the new stream still numbers after it, so
    offsets only grow and the archive copies the new event, which a clock-numbered id at or
    below the archive's last one would have hidden from it forever."""
    client = redis_backend.client()
    async with _room(redis_backend.url, 10) as (room, keys, engine):
        sent = await _publish(engine, room, 1)
        ahead = f"{_id(sent[0])[0] + 3_600_000}-7"  # an hour ahead of this Redis's clock
        client.xadd(keys.events, {"k": "notice", "ts": "0", "d": '{"text":"ahead"}'}, id=ahead)
        client.hset(keys.meta, "last", ahead)
        await _archive_all(engine, room, archivers=1, count=500)
        assert client.hget(keys.meta, "archived_last") == ahead
        client.delete(keys.events)

        sent += [ahead] + await _publish(engine, room, 2, start=1)
        assert _id(sent[2]) == (_id(ahead)[0], 8) and _id(sent[3]) > _id(sent[2])
        assert await engine.reports.archive_pass([room], 500) == (2, False)
        assert [eid for eid, _f in client.xrange(keys.archive)] == sent
