"""The Redis engine: everything the hub and the host API store or read about a room.

Layers call downward only: hub / host API -> engine -> Redis. Nothing above this module
builds a key name or speaks a Redis command.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from .keys import ROOMS_INDEX, RoomKeys
from .scripts import ScriptRunner

Event = dict[str, Any]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Muted(Exception):
    def __init__(self, until_ms: int) -> None:
        super().__init__(f"muted until {until_ms}")
        self.until_ms = until_ms


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
    def __init__(self, redis: Redis, scripts: ScriptRunner, stream_maxlen: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.stream_maxlen = stream_maxlen

    # -- rooms -------------------------------------------------------------------
    async def put_room(self, room: str, fields: dict[str, str]) -> tuple[dict[str, str], bool]:
        """Create or update a room; returns (meta, created)."""
        keys = RoomKeys(room)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(keys.meta, "epoch", new_epoch())
        pipe.hsetnx(keys.meta, "created_ms", str(int(time.time() * 1000)))
        if fields:
            pipe.hset(keys.meta, mapping=fields)
        pipe.sadd(ROOMS_INDEX, room)
        pipe.hgetall(keys.meta)
        results = await pipe.execute()
        return results[-1], bool(results[0])

    async def room_meta(self, room: str) -> dict[str, str] | None:
        meta = await self.redis.hgetall(RoomKeys(room).meta)
        return meta or None

    async def room_exists(self, room: str) -> bool:
        return bool(await self.redis.hexists(RoomKeys(room).meta, "epoch"))

    async def list_rooms(self) -> list[str]:
        return sorted(await self.redis.smembers(ROOMS_INDEX))

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
        args: list[Any] = [kind, _dumps(body), self.stream_maxlen, mute_user, new_epoch(), flag]
        for field, value in (pins or {}).items():
            args += [field, value]
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

    async def stream_bounds(self, room: str) -> tuple[str | None, str | None]:
        """(first, last) offsets still in the room stream; (None, None) when empty."""
        key = RoomKeys(room).events
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(key, count=1)
        pipe.xrevrange(key, count=1)
        first, last = await pipe.execute()
        return (first[0][0] if first else None, last[0][0] if last else None)

    async def history_trimmed(self, room: str) -> bool:
        """True once trimming has dropped any event of the room stream (publish.lua)."""
        return bool(await self.redis.hexists(RoomKeys(room).meta, "trimmed"))

    # -- counters ------------------------------------------------------------------
    async def tick(self, room: str, node: str, likes_delta: int, online: int, node_ttl_ms: int) -> tuple[int, int]:
        keys = RoomKeys(room)
        likes, total = await self.scripts.run(
            "tick", [keys.likes, keys.online, keys.nodes], [node, likes_delta, online, node_ttl_ms]
        )
        return int(likes), int(total)

    async def counters(self, room: str) -> tuple[int, int]:
        """(likes, online) of a room as the tick sees them, without reporting a node."""
        return await self.tick(room, "", 0, 0, 1 << 40)

    # -- moderation ------------------------------------------------------------------
    async def mute(self, room: str, user: str, until_ms: int) -> None:
        await self.redis.hset(RoomKeys(room).mutes, user, str(until_ms))

    async def muted_until(self, room: str, user: str) -> int:
        return int(await self.redis.hget(RoomKeys(room).mutes, user) or 0)

    async def ban(self, room: str, user: str, banned: bool = True) -> None:
        key = RoomKeys(room).bans
        await (self.redis.sadd(key, user) if banned else self.redis.srem(key, user))

    async def is_banned(self, room: str, user: str) -> bool:
        return bool(await self.redis.sismember(RoomKeys(room).bans, user))

    async def find_event(self, room: str, offset: str) -> Event | None:
        entries = await self.redis.xrange(RoomKeys(room).events, min=offset, max=offset, count=1)
        return decode_entry(*entries[0]) if entries else None

    # -- products ------------------------------------------------------------------
    async def set_products(self, room: str, products: list[dict[str, Any]]) -> None:
        key = RoomKeys(room).products
        pipe = self.redis.pipeline(transaction=True)
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
