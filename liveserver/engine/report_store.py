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

import asyncio
import json
from typing import Any

from liveserver.engine.commerce_keys import JobKeys
from liveserver.engine.keys import Layout, RoomKeys
from liveserver.engine.scripts import ScriptRunner


def _keys(room: str) -> list[str]:
    k = RoomKeys(room)
    return [k.sub("sessions"), k.sub("beats"), k.sub("uv"), k.sub("minute"), k.meta]


ROOMS_PER_PASS = 20  # rooms an archive pass copies at most (see archive_pass)


class ReportStore:
    def __init__(self, redis: Any, scripts: ScriptRunner, stream_maxlen: int, layout: Layout | None = None) -> None:
        self._redis = redis
        self.scripts = scripts
        self.stream_maxlen = stream_maxlen  # the archiver trims a caught-up stream to this
        self.layout = layout or Layout()

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
        """Events of the archive, then of the live stream after the archive's last one (the
        newest events, not copied yet): the room's whole history in order."""
        keys = RoomKeys(room)
        rows = await self._redis.xrange(keys.archive, min=after, max="+", count=count)
        if len(rows) < count:
            start = f"({rows[-1][0]}" if rows else after
            rows += await self._redis.xrange(keys.events, min=start, max="+", count=count - len(rows))
        return rows

    async def archive_rooms(self) -> list[str]:
        rooms: set[str] = set()
        for index in self.layout.rooms_indexes():  # one key on one Redis, buckets on a Cluster
            rooms.update(await self._redis.smembers(index))
        return sorted(rooms)

    async def archive_pass(self, rooms: list[str], count: int) -> tuple[int, bool]:
        """Copy new room events into each room's archive stream with the same ids, and
        trim each caught-up live stream to MAXLEN (archive_copy.lua: atomic, and ordered
        by the archive's own last id, so any number of archivers may run). Rooms whose
        last event is archived already are skipped (one HMGET each). Returns (events
        copied, whether a room has more)."""
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            pipe.hmget(RoomKeys(room).meta, "last", "archived_last")
        metas = await pipe.execute()
        behind = [(last, r) for r, (last, archived) in zip(rooms, metas) if last and last != archived]
        # Newest activity first, and a bounded number of rooms per pass: a backlog (an
        # archiver starting on a Redis with many rooms) is worked off over several short
        # passes instead of one pass that copies everything while live rooms wait.
        behind.sort(reverse=True, key=lambda lr: tuple(int(x) for x in lr[0].split("-")))
        calls = []
        for _last, room in behind[:ROOMS_PER_PASS]:
            keys = RoomKeys(room)
            calls.append(self.scripts.run("archive_copy", [keys.events, keys.archive, keys.meta],
                                          [count, self.stream_maxlen]))
        copied, more = 0, False
        for copied_now, room_more in await asyncio.gather(*calls):
            copied += int(copied_now)
            more = more or bool(room_more)
        # More rooms than one pass takes: the next pass at once, while passes copy.
        return copied, more or (len(behind) > ROOMS_PER_PASS and copied > 0)
