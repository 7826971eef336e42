"""The Redis side of live data, reports and the archive (keys of one room, `{room}` tag):

| key | type | holds |
| --- | --- | --- |
| `lc:{room}:sessions` | list | connection records `j|<sid>|<user>|<ms>|<node>`, `l|<sid>|<ms>` (stats_tick.lua) |
| `lc:{room}:beats` | hash | node -> its last stats heartbeat ms (an open session of a dead node ends there) |
| `lc:{room}:uv` | set | every viewer id that joined (exact unique viewers) |
| `lc:{room}:minute` | hash | `likes:<minute>` -> likes in that minute |
| `lc:{room}:clickers` | hash | user -> product clicks (follow-ups: clicked but did not buy) |
| `lc:{room}:archive` | stream | every room event, same ids as `lc:{room}:ev`, never trimmed (the replay) |
"""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import ResponseError

from liveserver.engine.commerce_keys import JobKeys
from liveserver.engine.keys import Layout, RoomKeys
from liveserver.engine.scripts import ScriptRunner

ARCHIVE_GROUP = "archive"


def _keys(room: str) -> list[str]:
    k = RoomKeys(room)
    return [k.sub("sessions"), k.sub("beats"), k.sub("uv"), k.sub("minute"), k.meta]


ROOMS_PER_PASS = 20  # rooms an archive pass copies at most (see archive_pass)


class ReportStore:
    def __init__(self, redis: Any, scripts: ScriptRunner, layout: Layout | None = None) -> None:
        self._redis = redis
        self.scripts = scripts
        self.layout = layout or Layout()
        self._groups: set[str] = set()
        self._copied: dict[str, str] = {}  # room -> last id this archiver copied

    # -- per tick (hub) ------------------------------------------------------------------
    async def stats_tick(self, room: str, node: str, likes_delta: int, online: int,
                         records: list[str]) -> tuple[int, int]:
        uv, now = await self.scripts.run("stats_tick", _keys(room), [node, likes_delta, online, *records])
        return int(uv), int(now)

    async def now_ms(self) -> int:
        """Redis time (the one clock of live data)."""
        sec, usec = await self._redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    # -- reads for a report -------------------------------------------------------------
    async def live_data(self, room: str) -> dict[str, Any]:
        keys = RoomKeys(room)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(keys.sub("sessions"), 0, -1)
        pipe.hgetall(keys.sub("beats"))
        pipe.scard(keys.sub("uv"))
        pipe.hgetall(keys.sub("minute"))
        pipe.hgetall(keys.sub("clickers"))
        pipe.hgetall(keys.meta)
        pipe.hgetall(keys.sub("clicks"))
        pipe.hvals(keys.sub("orderdata"))
        pipe.time()
        sessions, seen, uv, minute, clickers, meta, clicks, orders, now = await pipe.execute()
        return {
            "sessions": sessions, "seen": {k: int(v) for k, v in seen.items()}, "uv": int(uv),
            "minute": {k: int(v) for k, v in minute.items()}, "clickers": {k: int(v) for k, v in clickers.items()},
            "meta": meta, "clicks": {k: int(v) for k, v in clicks.items()},
            "orders": [json.loads(o) for o in orders], "now_ms": int(now[0]) * 1000 + int(now[1]) // 1000,
        }

    async def live_series(self, room: str, since_ms: int) -> dict[str, Any]:
        """What the console's live cards draw: the 10 s series kept by stats_tick.lua, the
        orders stream since `since_ms`, unique viewers and the counters."""
        keys = RoomKeys(room)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.sub("minute"))
        pipe.xrange(keys.orders, min=str(since_ms), max="+", count=100_000)
        pipe.scard(keys.sub("uv"))
        pipe.hget(keys.meta, "n_danmaku")
        pipe.time()
        minute, orders, uv, danmaku, now = await pipe.execute()
        return {"series": minute, "orders": [f for _id, f in orders], "uv": int(uv), "danmaku": int(danmaku or 0),
                "now_ms": int(now[0]) * 1000 + int(now[1]) // 1000}

    async def schedule(self, job: str, at_ms: int) -> None:
        """A scheduled job (run once across all nodes by the commerce scheduler)."""
        room = job.split("|", 2)[1]  # "<kind>|<room>|<object id>"
        await self._redis.zadd(JobKeys.of_room(self.layout, room).due, {job: at_ms})

    # -- archive ----------------------------------------------------------------------------
    async def history(self, room: str, after: str = "-", count: int = 5000) -> list[tuple[str, dict[str, str]]]:
        """Events of the archive (complete), or of the live stream when nothing is archived yet."""
        keys = RoomKeys(room)
        for key in (keys.sub("archive"), keys.events):
            rows = await self._redis.xrange(key, min=after, max="+", count=count)
            if rows or key == keys.events:
                return rows
        return []

    async def archive_rooms(self) -> list[str]:
        rooms: set[str] = set()
        for index in self.layout.rooms_indexes():  # one key on one Redis, buckets on a Cluster
            rooms.update(await self._redis.smembers(index))
        return sorted(rooms)

    async def archive_pass(self, rooms: list[str], consumer: str, count: int, reclaim_idle_ms: int,
                           reclaim: bool = True) -> int:
        """Copy new room events into each room's archive stream with the same ids
        (consumer group `archive` on the live stream; re-copying an id is refused by
        Redis, so a retry after a crash is harmless). Returns entries copied. Rooms whose
        last event this archiver already copied are skipped (one HGET each); `reclaim`
        also takes over entries another archiver left unacknowledged."""
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            pipe.hget(RoomKeys(room).meta, "last")
        lasts = await pipe.execute()
        behind = [(last, r) for r, last in zip(rooms, lasts) if last and (reclaim or self._copied.get(r) != last)]
        # Newest activity first, and a bounded number of rooms per pass: a backlog (an
        # archiver starting on a Redis with many rooms) is worked off over several short
        # passes instead of one pass that copies everything while live rooms wait.
        behind.sort(reverse=True, key=lambda lr: tuple(int(x) for x in lr[0].split("-")))
        rooms = [r for _last, r in behind[:ROOMS_PER_PASS]]
        ready = []
        for room in rooms:
            key = RoomKeys(room).events
            if key not in self._groups:
                try:  # not MKSTREAM: a room without events keeps no stream key
                    await self._redis.xgroup_create(key, ARCHIVE_GROUP, id="0")
                except ResponseError as exc:
                    if "requires the key to exist" in str(exc):
                        continue
                    if "BUSYGROUP" not in str(exc):
                        raise
                self._groups.add(key)
            ready.append(room)
        rooms = ready
        if not rooms:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            key = RoomKeys(room).events
            if reclaim:
                pipe.xautoclaim(key, ARCHIVE_GROUP, consumer, reclaim_idle_ms, "0-0", count=count)
            pipe.xreadgroup(ARCHIVE_GROUP, consumer, {key: ">"}, count=count)
        results = await pipe.execute()
        per = 2 if reclaim else 1
        copied = 0
        for i, room in enumerate(rooms):
            rows = [(e, f) for e, f in results[per * i][1] if f] if reclaim else []
            rows += [(e, f) for _s, r in (results[per * i + per - 1] or []) for e, f in r if f]
            if not rows:
                continue
            rows.sort(key=lambda row: tuple(int(x) for x in row[0].split("-")))
            keys = RoomKeys(room)
            pipe = self._redis.pipeline(transaction=False)
            for entry_id, fields in rows:
                pipe.xadd(keys.sub("archive"), fields, id=entry_id)
            results_add = await pipe.execute(raise_on_error=False)
            copied += sum(1 for r in results_add if not isinstance(r, Exception))
            await self._redis.xack(keys.events, ARCHIVE_GROUP, *[e for e, _ in rows])
            self._copied[room] = rows[-1][0]
        return copied
