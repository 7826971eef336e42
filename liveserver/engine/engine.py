"""The Redis engine: everything the hub and the host API store or read about a room.

Layers call downward only: hub / host API -> engine -> Redis. Nothing above this module
builds a key name or speaks a Redis command.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from redis.asyncio import Redis, RedisCluster

from liveserver.engine.keys import Layout, RoomKeys
from liveserver.engine.report_store import ReportStore
from liveserver.engine.scripts import ScriptRunner
from liveserver.engine.webhook_store import WebhookStore
from liveserver.engine.transaction import transaction

Event = dict[str, Any]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Muted(Exception):
    def __init__(self, until_ms: int) -> None:
        super().__init__(f"muted until {until_ms}")
        self.until_ms = until_ms


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What the room-open round trip reads for one kind of object: the newest `count` ids
    of the `index` zset, each object's hash at `<prefix><id>`, and `extras`: (read, suffix)
    pairs read at `<prefix><id><suffix>` (read = "hgetall" | "scard")."""

    name: str
    index: str
    prefix: str
    count: int
    extras: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class KeyRead:
    """One more key of the room read in the room-open round trip: a hash (HGETALL), a
    string (GET) or a set (SMEMBERS, as a Python set), by its type;
    `RoomSnapshot.values[name]` is None when it does not exist."""

    name: str
    key: str


@dataclass
class RoomSnapshot:
    """A room as one node opens it: meta, stream bounds, counters and loaded objects."""

    meta: dict[str, str]
    first: str | None
    last: str | None
    likes: int
    online: int
    # spec name -> [(id, fields, [extra values])], oldest first
    objects: dict[str, list[tuple[str, dict[str, str], list[Any]]]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # KeyRead name -> hash dict | string | None


class Admission:
    OK = "ok"
    NO_ROOM = "no_room"
    BANNED = "banned"


_ADMISSION = {0: Admission.NO_ROOM, 1: Admission.OK, 2: Admission.BANNED}  # admit.lua's reply


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def new_epoch() -> str:
    return secrets.token_hex(6)


def decode_entry(entry_id: str, fields: dict[str, str]) -> Event:
    """A stream entry -> the event map clients see (`k`, `offset`, `ts` + body)."""
    body = json.loads(fields.get("d") or "{}")
    body["k"] = fields.get("k", "")
    body["offset"] = entry_id
    body["ts"] = int(fields.get("ts") or 0)
    return body


class RoomEngine:
    def __init__(self, redis: Redis, scripts: ScriptRunner, stream_maxlen: int, layout: Layout = Layout()) -> None:
        self.redis = redis  # a Redis, or a RedisCluster when layout.cluster
        self.scripts = scripts
        self.stream_maxlen = stream_maxlen
        self.layout = layout
        self.webhooks = WebhookStore(redis, scripts, layout)  # webhook subscriptions, queue, deliveries
        self.reports = ReportStore(redis, scripts, stream_maxlen, layout)  # live data, reports, the archive

    async def ping(self) -> None:
        if self.layout.cluster:  # ready = every primary answers (every room can be served)
            await self.redis.ping(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
        else:
            await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()

    # -- rooms -------------------------------------------------------------------
    async def put_room(self, room: str, fields: dict[str, str]) -> tuple[dict[str, str], bool]:
        """Create or update a room; returns (meta, created)."""
        meta, created, _previous = await self.update_room(room, fields)
        return meta, created

    async def update_room(self, room: str, fields: dict[str, str]) -> tuple[dict[str, str], bool, str | None]:
        """Create or update a room; returns (meta, created, the status before this call).
        Atomic: of two concurrent calls that change the status, only one sees the old one."""
        keys = RoomKeys(room)
        index = self.layout.rooms_index(room)
        if self.layout.cluster:  # another slot: listed first, then the room's own MULTI
            await self.redis.sadd(index, room)
        pipe = transaction(self.redis)
        pipe.hget(keys.meta, "status")
        pipe.hsetnx(keys.meta, "epoch", new_epoch())
        pipe.hsetnx(keys.meta, "created_ms", str(int(time.time() * 1000)))
        if fields:
            pipe.hset(keys.meta, mapping=fields)
        if not self.layout.cluster:
            pipe.sadd(index, room)
        pipe.hgetall(keys.meta)
        results = await pipe.execute()
        return results[-1], bool(results[1]), results[0]

    # -- reservations (a room in preview) -----------------------------------------------
    async def reserve(self, room: str, user: str, on: bool = True) -> int:
        """Reserve (or cancel) `user`'s reminder for `room`; returns the reservation count."""
        key = RoomKeys(room).sub("reservations")
        pipe = transaction(self.redis)
        pipe.sadd(key, user) if on else pipe.srem(key, user)
        pipe.scard(key)
        return int((await pipe.execute())[1])

    async def reservations(self, room: str) -> list[str]:
        return sorted(await self.redis.smembers(RoomKeys(room).sub("reservations")))

    async def reservation_count(self, room: str, user: str | None = None) -> tuple[int, bool]:
        """(count, whether `user` has reserved)."""
        key = RoomKeys(room).sub("reservations")
        pipe = self.redis.pipeline(transaction=False)
        pipe.scard(key)
        pipe.sismember(key, user or "")
        count, mine = await pipe.execute()
        return int(count), bool(mine) and user is not None

    async def room_meta(self, room: str) -> dict[str, str] | None:
        meta = await self.redis.hgetall(RoomKeys(room).meta)
        return meta or None

    async def room_exists(self, room: str) -> bool:
        return bool(await self.redis.hexists(RoomKeys(room).meta, "epoch"))

    async def admit(self, room: str, user: str | None) -> str:
        """May `user` (None: a guest) join `room`? Admission.OK / NO_ROOM / BANNED.

        One script call through the auto-pipelining runner: the admissions of a join storm
        share round trips (a pipeline per join cost ~200 us of node CPU each)."""
        keys = RoomKeys(room)
        found = await self.scripts.run("admit", [keys.meta, keys.bans], [user or ""])
        return _ADMISSION[int(found)]

    async def open_room(self, room: str, node_ttl_ms: int, reads: Sequence[LoadSpec | KeyRead]) -> RoomSnapshot:
        """Everything a node needs to open a room, whatever the number of objects: one round trip."""
        keys = RoomKeys(room)
        specs = [r for r in reads if isinstance(r, LoadSpec)]
        singles = [r for r in reads if isinstance(r, KeyRead)]
        args: list[Any] = [node_ttl_ms, len(specs)]
        for spec in specs:
            args += [spec.prefix, spec.count, len(spec.extras)]
            for read, suffix in spec.extras:
                args += [read, suffix]
        args.append(len(singles))
        reply = await self.scripts.run(
            "room_open", [keys.meta, keys.events, keys.likes, keys.online, keys.nodes, *(s.index for s in specs),
                          *(k.key for k in singles)], args)
        meta, first, last, likes, online, *loaded = reply
        values = loaded.pop() if singles else []
        snapshot = RoomSnapshot(_pairs(meta), first or None, last or None, int(likes), int(online))
        for single, (kind, value) in zip(singles, values):
            snapshot.values[single.name] = (_pairs(value) if kind == "hash" else value if kind == "string"
                                             else set(value) if kind == "set" else None)
        for spec, rows in zip(specs, loaded):
            snapshot.objects[spec.name] = [
                (row[0], _pairs(row[1]), [_pairs(x) if isinstance(x, list) else x for x in row[2:]]) for row in rows
            ]
        return snapshot

    async def list_rooms(self) -> list[str]:
        rooms: set[str] = set()
        for index in self.layout.rooms_indexes():
            rooms.update(await self.redis.smembers(index))
        return sorted(rooms)

    # -- events ------------------------------------------------------------------
    async def publish(
        self,
        room: str,
        kind: str,
        body: dict[str, Any],
        mute_user: str = "",
        pins: dict[str, str] | None = None,
        once: tuple[str, str] | None = None,
    ) -> tuple[str, int] | None:
        """Append one event; returns (offset, ts_ms).

        Raises Muted when `mute_user` is muted. With `once=(hash key, field)` the event is
        published only by the first call that sets that field; later calls return None.
        """
        keys = RoomKeys(room)
        flag_key, flag = once or (keys.meta, "")
        args: list[Any] = [kind, _dumps(body), self.stream_maxlen, mute_user, "", flag]
        for name, value in (pins or {}).items():
            args += [name, value]
        reply = await self.scripts.run("publish", [keys.events, keys.meta, keys.mutes, flag_key], args)
        if int(reply[0]) == 0:
            if reply[1] == "done":
                return None
            raise Muted(int(reply[2]))
        return str(reply[1]), int(reply[2])

    async def events_after(self, room: str, after: str, upto: str, limit: int) -> list[Event]:
        """Events with after < offset <= upto, oldest first, at most `limit`."""
        entries = await self.redis.xrange(RoomKeys(room).events, min=f"({after}", max=upto, count=limit)
        return [decode_entry(eid, fields) for eid, fields in entries]


    async def missed(self, room: str, after: str, upto: str, limit: int) -> tuple[str | None, bool, list[Event]]:
        """For a resume, in one round trip: the first offset still in the stream, whether
        trimming ever dropped an event (`_append_event.lua`), and the events with
        after < offset <= upto (at most `limit`)."""
        keys = RoomKeys(room)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(keys.events, count=1)
        pipe.hexists(keys.meta, "trimmed")
        pipe.xrange(keys.events, min=f"({after}", max=upto, count=limit)
        first, trimmed, entries = await pipe.execute()
        return (first[0][0] if first else None, bool(trimmed), [decode_entry(eid, f) for eid, f in entries])

    # -- counters ------------------------------------------------------------------
    async def report_counters(self, room: str, node: str, likes_taken: int, online: int, node_ttl_ms: int) -> tuple[int, int]:
        """Report this node's viewers and its likes total for `room` (tick.lua: a repeated
        report adds nothing); returns the room's (likes, online)."""
        keys = RoomKeys(room)
        likes, total = await self.scripts.run(
            "tick", [keys.likes, keys.online, keys.nodes, keys.likes_by_node], [node, likes_taken, online, node_ttl_ms]
        )
        return int(likes), int(total)

    async def counters(self, room: str) -> tuple[int, int]:
        """(likes, online) of a room as the tick sees them, without reporting a node."""
        return await self.report_counters(room, "", 0, 0, 1 << 40)

    # -- moderation ------------------------------------------------------------------
    async def mute(self, room: str, user: str, until_ms: int) -> None:
        await self.redis.hset(RoomKeys(room).mutes, user, str(until_ms))

    async def muted_until(self, room: str, user: str) -> int:
        return int(await self.redis.hget(RoomKeys(room).mutes, user) or 0)

    async def ban(self, room: str, user: str, banned: bool = True) -> tuple[str, int]:
        """Ban (or unban) `user`, atomically with the `ban` event {user, banned} that
        updates every node's copy of the room's bans (ban.lua); returns its (offset, ts)."""
        keys = RoomKeys(room)
        reply = await self.scripts.run("ban", [keys.events, keys.meta, keys.bans],
                                       [user, "1" if banned else "0", self.stream_maxlen])
        return str(reply[0]), int(reply[1])

    @staticmethod
    def bans_read(room: str) -> KeyRead:
        """The room's bans, read with the room when a node opens it (`open_room`)."""
        return KeyRead("bans", RoomKeys(room).bans)

    async def find_event(self, room: str, offset: str) -> Event | None:
        entries = await self.redis.xrange(RoomKeys(room).events, min=offset, max=offset, count=1)
        return decode_entry(*entries[0]) if entries else None

    # -- products ------------------------------------------------------------------
    async def set_products(self, room: str, products: list[dict[str, Any]]) -> None:
        key = RoomKeys(room).products
        pipe = transaction(self.redis)
        pipe.delete(key)
        if products:
            pipe.hset(key, mapping={p["id"]: _dumps(p) for p in products})
        await pipe.execute()

    async def products(self, room: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(RoomKeys(room).products)
        return sorted((json.loads(v) for v in raw.values()), key=lambda p: p["id"])

    async def product(self, room: str, product_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(RoomKeys(room).products, product_id)
        return json.loads(raw) if raw else None
