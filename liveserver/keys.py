"""The Redis key layout. Every key of a room carries `{room}` as its hash tag, so every
Lua script touches one cluster slot."""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_room(name: str) -> bool:
    return bool(ROOM_NAME.match(name))


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
    def likes(self) -> str:  # string: like total
        return self._k("likes")

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

    def sub(self, suffix: str) -> str:
        """Keys owned by one commerce object, e.g. `sale:<id>`."""
        return self._k(suffix)


ROOMS_INDEX = "lc:rooms"  # set of room names (listing only; never used inside a script)
