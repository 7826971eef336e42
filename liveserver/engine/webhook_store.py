"""The Redis side of webhooks: subscriptions, the event queue, deliveries and dead letters.

Keys (one hash tag, `{wh}`, so a fan-out and its acknowledgement are one transaction):

| key | type | holds |
| --- | --- | --- |
| `lc:{wh}:hooks` | hash | hook id -> hook JSON (url, events, secret, room, owner, created_ms) |
| `lc:{wh}:ev` | stream | events waiting for fan-out (consumer group `fanout`); deleted once fanned out |
| `lc:{wh}:seen:<event id>` | string | dedupe marker of an emitted event id (expires) |
| `lc:{wh}:due` | zset | delivery id -> when it is due (or its lease end while a worker attempts it) |
| `lc:{wh}:dl` | hash | delivery id -> delivery JSON (hook, event body, attempts, first_ms, last error) |
| `lc:{wh}:dead` | zset | delivery id -> when it was given up (its JSON stays in `lc:{wh}:dl`) |

The orders relay reads each room's orders stream `lc:{room}:orders` through the consumer
group `webhooks` (entries are never deleted there: merchants' own consumers may read it).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from redis.exceptions import ResponseError

from liveserver.engine.commerce_keys import JobKeys
from liveserver.engine.keys import Layout
from liveserver.engine.keys import RoomKeys
from liveserver.engine.scripts import ScriptRunner
from liveserver.engine.transaction import transaction

HOOKS = "lc:{wh}:hooks"
EVENTS = "lc:{wh}:ev"
DUE = "lc:{wh}:due"
DATA = "lc:{wh}:dl"
DEAD = "lc:{wh}:dead"
FANOUT_GROUP = "fanout"
ORDERS_GROUP = "webhooks"
SEEN_TTL_S = 7 * 86400

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def seen_key(event_id: str) -> str:
    # hashed: a global key never carries a room's name (room keys carry the room's tag)
    return "lc:{wh}:seen:" + hashlib.sha1(event_id.encode()).hexdigest()


class WebhookStore:
    def __init__(self, redis: Any, scripts: ScriptRunner, layout: Layout | None = None) -> None:
        self._redis = redis
        self.scripts = scripts
        self.layout = layout or Layout()
        self._groups: set[tuple[str, str]] = set()

    # -- subscriptions ---------------------------------------------------------------
    async def put_hook(self, hook: dict[str, Any]) -> None:
        await self._redis.hset(HOOKS, hook["id"], _dumps(hook))

    async def hooks(self) -> list[dict[str, Any]]:
        return sorted((json.loads(v) for v in (await self._redis.hgetall(HOOKS)).values()), key=lambda h: h["created_ms"])

    async def hook(self, hook_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(HOOKS, hook_id)
        return json.loads(raw) if raw else None

    async def delete_hook(self, hook_id: str) -> bool:
        return bool(await self._redis.hdel(HOOKS, hook_id))

    # -- producing events ----------------------------------------------------------------
    async def emit(self, event_id: str, event_type: str, room: str, body: str, ts_ms: int) -> bool:
        """Queue an event for fan-out; False when this event id was emitted before."""
        entry = await self.scripts.run("webhook_emit", [EVENTS, seen_key(event_id)],
                                       [event_id, event_type, room, body, SEEN_TTL_S, ts_ms])
        return entry is not None

    async def _ensure_group(self, stream: str, group: str, mkstream: bool = True) -> bool:
        """Create the consumer group (from the start of the stream) once; False when the
        stream does not exist yet and `mkstream` is off (nothing to read there)."""
        if (stream, group) in self._groups:
            return True
        try:
            await self._redis.xgroup_create(stream, group, id="0", mkstream=mkstream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                if not mkstream and "requires the key to exist" in str(exc):
                    return False
                raise
        self._groups.add((stream, group))
        return True

    async def read_events(self, consumer: str, count: int, block_ms: int, reclaim_idle_ms: int) -> list[tuple[str, dict[str, str]]]:
        """Events to fan out: first any another consumer left unacknowledged for longer
        than `reclaim_idle_ms` (it died), then new ones (blocking up to `block_ms`)."""
        await self._ensure_group(EVENTS, FANOUT_GROUP)
        claimed = await self._redis.xautoclaim(EVENTS, FANOUT_GROUP, consumer, reclaim_idle_ms, "0-0", count=count)
        entries = [(eid, f) for eid, f in claimed[1] if f]
        if entries:
            return entries
        reply = await self._redis.xreadgroup(FANOUT_GROUP, consumer, {EVENTS: ">"}, count=count, block=block_ms)
        return [(eid, f) for _stream, rows in (reply or []) for eid, f in rows if f]

    async def fan_out(self, events: list[tuple[str, dict[str, str]]], now_ms: int) -> None:
        """Schedule the deliveries of events [(entry id, {delivery id: data})] and
        acknowledge them, atomically (one slot): one round trip for a pass, not one per event."""
        if not events:
            return
        pipe = transaction(self._redis)
        for entry_id, deliveries in events:
            for delivery_id, data in deliveries.items():
                pipe.hsetnx(DATA, delivery_id, data)
                pipe.zadd(DUE, {delivery_id: now_ms}, nx=True)
        ids = [entry_id for entry_id, _ in events]
        pipe.xack(EVENTS, FANOUT_GROUP, *ids)
        pipe.xdel(EVENTS, *ids)
        await pipe.execute()

    # -- deliveries -----------------------------------------------------------------------
    async def claim(self, count: int, lease_ms: int) -> tuple[int, int | None, list[tuple[str, str]]]:
        """(Redis now ms, the next due ms or None, [(delivery id, delivery JSON)]) taken with a lease."""
        reply = await self.scripts.run("webhook_claim", [DUE, DATA], [count, lease_ms])
        now = int(reply[0])
        nxt = int(float(reply[1])) if reply[1] else None
        return now, nxt, [(reply[i], reply[i + 1]) for i in range(2, len(reply), 2)]

    async def delivered(self, delivery_id: str) -> None:
        pipe = transaction(self._redis)
        pipe.zrem(DUE, delivery_id)
        pipe.hdel(DATA, delivery_id)
        await pipe.execute()

    async def retry_at(self, delivery_id: str, data: str, due_ms: int) -> None:
        pipe = transaction(self._redis)
        pipe.hset(DATA, delivery_id, data)
        pipe.zadd(DUE, {delivery_id: due_ms})
        await pipe.execute()

    async def postpone(self, delivery_ids: list[str], due_ms: int) -> None:
        """Put claimed deliveries back (their receiver is busy), in one round trip."""
        if delivery_ids:
            await self._redis.zadd(DUE, {d: due_ms for d in delivery_ids})

    async def dead(self, delivery_id: str, data: str, now_ms: int) -> None:
        pipe = transaction(self._redis)
        pipe.hset(DATA, delivery_id, data)
        pipe.zrem(DUE, delivery_id)
        pipe.zadd(DEAD, {delivery_id: now_ms})
        await pipe.execute()

    async def drop(self, delivery_id: str) -> None:
        pipe = transaction(self._redis)
        pipe.zrem(DUE, delivery_id)
        pipe.zrem(DEAD, delivery_id)
        pipe.hdel(DATA, delivery_id)
        await pipe.execute()

    async def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        ids = await self._redis.zrange(DEAD, 0, limit - 1)
        if not ids:
            return []
        raws = await self._redis.hmget(DATA, ids)
        return [json.loads(r) for r in raws if r]

    async def revive(self, delivery_id: str, data: str, now_ms: int) -> bool:
        """Move a dead letter back to the due set; False when it is not dead."""
        pipe = transaction(self._redis)
        pipe.zrem(DEAD, delivery_id)
        pipe.hset(DATA, delivery_id, data)
        pipe.zadd(DUE, {delivery_id: now_ms})
        removed, *_ = await pipe.execute()
        return bool(removed)

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(DATA, delivery_id)
        return json.loads(raw) if raw else None

    async def pending_count(self) -> int:
        return int(await self._redis.zcard(DUE))

    # -- the orders relay -------------------------------------------------------------------
    async def order_rooms(self) -> list[str]:
        """Rooms that ever had a sale (so may have an orders stream)."""
        rooms: set[str] = set()
        for sched in JobKeys.all(self.layout):  # one key on one Redis, buckets on a Cluster
            rooms.update(await self._redis.smembers(sched.sweep_rooms))
        return sorted(rooms)

    async def read_orders(self, rooms: list[str], consumer: str, count: int, reclaim_idle_ms: int,
                          reclaim: bool = True) -> list[tuple[str, str, dict[str, str]]]:
        """New (and abandoned) entries of each room's orders stream: [(room, entry id, fields)]."""
        rooms = [room for room in rooms if await self._ensure_group(RoomKeys(room).orders, ORDERS_GROUP, mkstream=False)]
        if not rooms:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for room in rooms:
            if reclaim:  # entries a dead relay left unacknowledged
                pipe.xautoclaim(RoomKeys(room).orders, ORDERS_GROUP, consumer, reclaim_idle_ms, "0-0", count=count)
            pipe.xreadgroup(ORDERS_GROUP, consumer, {RoomKeys(room).orders: ">"}, count=count)
        results = await pipe.execute()
        per = 2 if reclaim else 1
        out: list[tuple[str, str, dict[str, str]]] = []
        for i, room in enumerate(rooms):
            if reclaim:
                out += [(room, eid, f) for eid, f in results[per * i][1] if f]
            fresh = results[per * i + per - 1]
            out += [(room, eid, f) for _s, rows in (fresh or []) for eid, f in rows if f]
        return out

    async def ack_orders(self, room: str, entry_ids: list[str]) -> None:
        if entry_ids:
            await self._redis.xack(RoomKeys(room).orders, ORDERS_GROUP, *entry_ids)
