"""The Redis key layout. Every key of a room carries `{room}` as its hash tag, so every
Lua script touches one cluster slot."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from liveserver.core.names import valid_room  # noqa: F401  (room names are checked before keys are built)


@dataclass(frozen=True, slots=True)
class RoomKeys:
    room: str

    def _k(self, suffix: str) -> str:
        return f"lc:{{{self.room}}}:{suffix}"

    @property
    def meta(self) -> str:  # hash: epoch, title, status, created_ms, last, trimmed, card
        return self._k("meta")

    @property
    def events(self) -> str:  # stream: the room's events; entry id = offset
        return self._k("ev")

    @property
    def archive(self) -> str:  # stream: every room event, same ids as `events`, never trimmed
        return self._k("archive")

    @property
    def likes(self) -> str:  # string: like total
        return self._k("likes")

    @property
    def likes_by_node(self) -> str:  # hash: node -> its likes total already in `likes` (tick.lua)
        return self._k("likes-by-node")

    @property
    def online(self) -> str:  # hash: node -> viewers
        return self._k("online")

    @property
    def nodes(self) -> str:  # zset: node -> heartbeat ms
        return self._k("nodes")

    @property
    def mutes(self) -> str:  # hash: user -> muted until ms
        return self._k("mutes")

    @property
    def bans(self) -> str:  # set: banned users
        return self._k("bans")

    @property
    def products(self) -> str:  # hash: product id -> JSON
        return self._k("products")

    @property
    def orders(self) -> str:  # stream: order events for merchant backends
        return self._k("orders")

    @property
    def media(self) -> str:  # hash: `state` -> JSON of state.media (engine/media_store.py)
        return self._k("media")

    @property
    def media_owner(self) -> str:  # string with TTL: base URL of the media process that owns the live
        return self._k("media:owner")

    @property
    def media_recordings(self) -> str:  # list: JSON of each recording, newest first
        return self._k("media:recs")

    @property
    def linkmic(self) -> str:  # hash: link-mic queue, guests, tokens, stats (engine/linkmic_store.py)
        return self._k("linkmic")

    def sub(self, suffix: str) -> str:
        """Keys owned by one commerce object, e.g. `sale:<id>`."""
        return self._k(suffix)


ROOMS_INDEX = "lc:rooms"  # set of room names (listing only; never used inside a script)

CLUSTER_BUCKETS = 16  # global indexes on a Redis Cluster are split in this many keys


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the global indexes live (the list of rooms, the job schedule, the sweep list).

    One Redis: one key each (`lc:rooms`, `lc:{jobs}:due`, ...), as always, so existing data
    keeps working. A Redis Cluster refuses a command or MULTI whose keys hash to different
    slots (CROSSSLOT), so there each index is `buckets` keys with their own hash tag
    (`lc:{rooms:3}`, `lc:{jobs:3}:due`) spread over the shards; a room's entries go to
    bucket crc32(room) % buckets. Index writes then run before (not inside) the MULTI of
    the room's own keys: an index may name a room or job whose write failed, never miss one.
    """

    cluster: bool = False
    buckets: int = 1

    @classmethod
    def for_cluster(cls, buckets: int = CLUSTER_BUCKETS) -> "Layout":
        return cls(cluster=True, buckets=buckets)

    def bucket(self, room: str) -> int:
        return zlib.crc32(room.encode()) % self.buckets if self.cluster else 0

    def rooms_index(self, room: str) -> str:
        return f"lc:{{rooms:{self.bucket(room)}}}" if self.cluster else ROOMS_INDEX

    def rooms_indexes(self) -> list[str]:
        return [f"lc:{{rooms:{b}}}" for b in range(self.buckets)] if self.cluster else [ROOMS_INDEX]
