"""Media state in Redis: which media process owns a room's live video, the room's
`state.media`, the `media` event, and the list of recordings.

The only media module that speaks Redis. Keys (all carry the `{room}` hash tag):

- `lc:{room}:media`         hash  `state` -> JSON of `state.media`
- `lc:{room}:media:owner`   string, TTL: base URL of the owning media process (media_owner.lua)
- `lc:{room}:media:recs`    list  JSON of each recording, newest first
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from redis.asyncio import Redis

from liveserver.engine.keys import RoomKeys
from liveserver.engine.transaction import transaction

RECORDINGS_KEPT = 200


class Publisher(Protocol):
    """The room engine's `publish` (appends one event to the room stream)."""

    async def publish(self, room: str, kind: str, body: dict[str, Any]) -> tuple[str, int] | None: ...


class Scripts(Protocol):
    def run(self, name: str, keys: list[str], args: list[Any]) -> Any: ...


def media_key(room: str, suffix: str = "") -> str:
    """`lc:{room}:media`, `...:media:owner`, `...:media:recs` (names from RoomKeys)."""
    keys = RoomKeys(room)
    return {"": keys.media, "owner": keys.media_owner, "recs": keys.media_recordings}[suffix]


def offline_state(poster: str | None = None) -> dict[str, Any]:
    return {"live": False, "hls": None, "whep": None, "poster": poster, "width": 0, "height": 0}


class MediaStore:
    def __init__(self, redis: Redis, scripts: Scripts, publisher: Publisher | None = None) -> None:
        self.redis = redis
        self.scripts = scripts
        self.publisher = publisher

    # -- ownership -----------------------------------------------------------------
    async def _owner_op(self, op: str, room: str, owner: str, ttl_ms: int) -> str:
        reply = await self.scripts.run("media_owner", [media_key(room, "owner")], [op, owner, ttl_ms])
        return str(reply or "")

    async def claim(self, room: str, owner: str, ttl_ms: int) -> str:
        """Take the room for `owner` if free (or already ours); returns who owns it now."""
        return await self._owner_op("claim", room, owner, ttl_ms)

    async def refresh(self, room: str, owner: str, ttl_ms: int) -> bool:
        return await self._owner_op("refresh", room, owner, ttl_ms) == owner

    async def release(self, room: str, owner: str) -> None:
        await self._owner_op("release", room, owner, 0)

    async def owner(self, room: str) -> str | None:
        return await self.redis.get(media_key(room, "owner")) or None

    async def owners(self, rooms: list[str]) -> list[str | None]:
        """The owner of each room (None where the lease is gone), in one round trip."""
        if not rooms:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for room in rooms:
            pipe.get(media_key(room, "owner"))
        return [v or None for v in await pipe.execute()]

    # -- state.media ---------------------------------------------------------------
    async def state(self, room: str) -> dict[str, Any]:
        raw = await self.redis.hget(media_key(room), "state")
        return json.loads(raw) if raw else offline_state()

    async def set_state(self, room: str, media: dict[str, Any]) -> None:
        """Store `state.media` and announce it with a `media` event on the room stream."""
        await self.redis.hset(media_key(room), "state", json.dumps(media, separators=(",", ":")))
        if self.publisher is not None:
            await self.publisher.publish(room, "media", {"media": media})

    # -- recordings ----------------------------------------------------------------
    async def add_recording(self, room: str, recording: dict[str, Any]) -> None:
        key = media_key(room, "recs")
        pipe = transaction(self.redis)
        pipe.lpush(key, json.dumps(recording, separators=(",", ":")))
        pipe.ltrim(key, 0, RECORDINGS_KEPT - 1)
        await pipe.execute()

    async def recordings(self, room: str) -> list[dict[str, Any]]:
        return [json.loads(r) for r in await self.redis.lrange(media_key(room, "recs"), 0, -1)]
