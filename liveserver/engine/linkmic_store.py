"""Link-mic (co-host) state in Redis: the queue of viewers asking to join the host on
camera, the accepted guests, each guest's one unused co-host token (its jti) and the
room's link-mic stats. Every transition is one call of `linkmic.lua`.

The only link-mic code that speaks Redis. Key: `lc:{room}:linkmic` (hash, see the script).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from liveserver.engine.keys import RoomKeys


class Scripts(Protocol):
    def run(self, name: str, keys: list[str], args: list[Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    code: str = ""  # when not ok: not_started | already_claimed | not_found | limit_reached | unauthorized
    name: str = ""
    was: str = ""  # "q": it was a queued request; "on": an accepted guest
    ms: int = 0  # for `end`: the guest's milliseconds on camera


def linkmic_key(room: str) -> str:
    return RoomKeys(room).linkmic


def view(raw: dict[str, str]) -> dict[str, Any]:
    """`state.linkmic` from the hash: allow, queue and guests (with names), stats."""
    queue = [{"user": k[2:], "name": v} for k, v in raw.items() if k.startswith("q:")]
    guests = [{"user": k[3:], "name": v, "since_ms": int(raw.get("at:" + k[3:], 0) or 0)}
              for k, v in raw.items() if k.startswith("on:")]
    return {"allow": raw.get("allow") == "1", "queue": queue, "guests": guests}


def stats(raw: dict[str, str]) -> dict[str, Any]:
    ms = int(raw.get("ms", 0) or 0)
    return {"count": int(raw.get("count", 0) or 0), "ms": ms, "minutes": round(ms / 60000, 2)}


class LinkmicStore:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def _run(self, room: str, *args: Any) -> Outcome:
        reply = await self.scripts.run("linkmic", [linkmic_key(room)], [str(a) for a in args])
        if int(reply[0]) == 0:
            return Outcome(False, str(reply[1]))
        return Outcome(True, "", str(reply[1]), str(reply[2]), int(reply[3]))

    async def request(self, room: str, user: str, name: str, max_queue: int) -> Outcome:
        return await self._run(room, "request", user, name, max_queue)

    async def cancel(self, room: str, user: str, now_ms: int) -> Outcome:
        return await self._run(room, "cancel", user, now_ms)

    async def accept(self, room: str, user: str, now_ms: int, max_guests: int) -> Outcome:
        return await self._run(room, "accept", user, now_ms, max_guests)

    async def end(self, room: str, user: str, now_ms: int) -> Outcome:
        return await self._run(room, "end", user, now_ms)

    async def allow(self, room: str, allow: bool) -> Outcome:
        return await self._run(room, "allow", "1" if allow else "0")

    async def record_token(self, room: str, user: str, jti: str) -> Outcome:
        return await self._run(room, "token", user, jti)

    async def consume_token(self, room: str, user: str, jti: str) -> Outcome:
        return await self._run(room, "consume", user, jti)

    async def raw(self, room: str) -> dict[str, str]:
        return await self.redis.hgetall(linkmic_key(room))

    async def guests(self, room: str) -> set[str]:
        """The users accepted as guests right now."""
        return {k[3:] for k in await self.redis.hkeys(linkmic_key(room)) if k.startswith("on:")}
