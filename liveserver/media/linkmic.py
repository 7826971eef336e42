"""Link-mic (连麦) on web nodes: a viewer asks to join the host on camera (op `linkmic`
{action: request | cancel | join}), the host accepts or ends (`POST rooms/{room}/linkmic`)
and opens or closes requests (`PUT rooms/{room}/linkmic`); `state.linkmic` and the
`linkmic` events. The accepted viewer's `join` reply carries a short-lived, single-use
co-host token for WHIP; the media process composes its picture into the program (see
compose.py). Imports no aiortc/PyAV."""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

from protocol import ClientOp, ErrorCode

from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler
from liveserver.core.ratelimit import TokenBucket
from liveserver.engine.engine import KeyRead, RoomSnapshot
from liveserver.engine.linkmic_store import LinkmicStore, Outcome, linkmic_key, stats, view

from liveserver.media.server_deps import mint_cohost

MAX_GUESTS_LIMIT = 4


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        raise SystemExit(f"{name} must be an integer") from None


def max_guests() -> int:
    """Guests on camera at once (LIVESERVER_LINKMIC_MAX_GUESTS, 1..4, default 1)."""
    return max(1, min(MAX_GUESTS_LIMIT, _int_env("LIVESERVER_LINKMIC_MAX_GUESTS", 1)))


TOKEN_TTL_S = _int_env("LIVESERVER_LINKMIC_TOKEN_TTL_S", 60)
MAX_QUEUE = 50
REQUEST_RATE = (0.2, 3.0)  # per user: one request (or cancel) every 5 s, 3 in a burst

MESSAGES = {
    "not_started": "the host is not taking link-mic requests now",
    "already_claimed": "already asked (or already on camera)",
    "not_found": "no such link-mic request or guest",
    "limit_reached": "the link-mic is full",
    "unauthorized": "this co-host token was used or revoked",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fail(outcome: Outcome) -> OpError:
    return OpError(ErrorCode(outcome.code), MESSAGES.get(outcome.code, outcome.code))


class LinkmicState:
    """`state.linkmic` {allow, queue: [{user, name}], guests: [{user, name, since_ms}]}:
    read with the room-open round trip, then kept by the `linkmic` events."""

    def load_specs(self, room: str) -> list[Any]:
        return [KeyRead("linkmic", linkmic_key(room))]

    def loaded(self, room: str, snapshot: RoomSnapshot) -> dict[str, Any]:
        return {"linkmic": view(snapshot.values.get("linkmic") or {})}

    def apply(self, room: Any, event: dict[str, Any]) -> None:
        if event.get("k") != "linkmic":
            return
        cur = room.state.get("linkmic") or view({})
        phase, user = event.get("phase"), event.get("user")
        queue = [q for q in cur["queue"] if q["user"] != user]
        guests = [g for g in cur["guests"] if g["user"] != user]
        allow = cur["allow"]
        if phase == "open":
            allow = True
        elif phase == "closed":
            allow = False
        elif phase == "requested":
            queue.append({"user": user, "name": event.get("name", user)})
        elif phase == "accepted":
            guests.append({"user": user, "name": event.get("name", user), "since_ms": event.get("ts", 0)})
        room.state["linkmic"] = {"allow": allow, "queue": queue, "guests": guests}

    async def refresh(self, rooms: list[Any], polled: list[Any]) -> None:
        return None


class Linkmic:
    def __init__(self, store: LinkmicStore, engine: Any, secret: str) -> None:
        self.store = store
        self.engine = engine
        self.secret = secret
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    async def event(self, room: str, phase: str, user: str | None = None, name: str | None = None, **extra: Any) -> None:
        body: dict[str, Any] = {"phase": phase}
        if user is not None:
            body.update(user=user, name=name or user)
        body.update(extra)
        await self.engine.publish(room, "linkmic", body)

    def _bucket(self, room: str, user: str) -> TokenBucket:
        if len(self._buckets) > 10000:
            self._buckets.clear()
        return self._buckets.setdefault((room, user), TokenBucket(*REQUEST_RATE))

    # -- the viewer's op -----------------------------------------------------------------------
    async def op(self, ctx: OpContext, op: ClientOp) -> dict[str, Any]:
        who = ctx.identity
        if who.is_guest:
            raise OpError(ErrorCode.UNAUTHORIZED, "sign in to join the host on camera")
        action, room, user = op.args["action"], ctx.room, ctx.user
        if action == "join":
            return await self.join(room, user)
        if not self._bucket(room, user).take():
            raise OpError(ErrorCode.RATE_LIMITED, "link-mic: too many requests; wait a moment")
        if action == "request":
            got = await self.store.request(room, user, who.name, MAX_QUEUE)
            if not got.ok:
                raise _fail(got)
            extra = {"badge": who.badge} if who.badge else {}
            await self.event(room, "requested", user, who.name, **extra)
            return {"phase": "requested"}
        got = await self.store.cancel(room, user, _now_ms())  # cancel: leave the queue, or the camera
        if not got.ok:
            raise _fail(got)
        await self.ended(room, user, got, "cancelled" if got.was == "q" else "left")
        return {"phase": "ended"}

    async def join(self, room: str, user: str) -> dict[str, Any]:
        """An accepted guest's co-host token (a new one revokes the previous)."""
        jti = secrets.token_urlsafe(12)
        got = await self.store.record_token(room, user, jti)
        if not got.ok:
            raise OpError(ErrorCode.FORBIDDEN, "the host has not accepted you (or has ended your link-mic)")
        token = mint_cohost(self.secret, user, got.name, room, jti, TOKEN_TTL_S)
        return {"phase": "accepted", "token": token, "whip": f"/api/v1/rooms/{room}/whip",
                "expires_ms": _now_ms() + TOKEN_TTL_S * 1000}

    async def ended(self, room: str, user: str, got: Outcome, reason: str) -> None:
        extra: dict[str, Any] = {"reason": reason}
        if got.was == "on":
            extra["ms"] = got.ms
        await self.event(room, "ended", user, got.name, **extra)

    # -- the host ------------------------------------------------------------------------------
    async def host(self, room: str, user: str, action: str) -> dict[str, Any]:
        if action == "accept":
            got = await self.store.accept(room, user, _now_ms(), max_guests())
            if not got.ok:
                raise _fail(got)
            await self.event(room, "accepted", user, got.name)
            return {"user": user, "name": got.name, "phase": "accepted"}
        got = await self.store.end(room, user, _now_ms())
        if not got.ok:
            raise _fail(got)
        await self.ended(room, user, got, "ended" if got.was == "on" else "declined")
        return {"user": user, "name": got.name, "phase": "ended"}

    async def allow(self, room: str, allow: bool) -> dict[str, Any]:
        await self.store.allow(room, allow)
        await self.event(room, "open" if allow else "closed")
        return {"allow": allow}

    async def status(self, room: str) -> dict[str, Any]:
        raw = await self.store.raw(room)
        return {**view(raw), "max_guests": max_guests(), "stats": stats(raw)}

    def ops(self) -> dict[str, OpHandler]:
        return {"linkmic": self.op}


def _linkmic(call: Call) -> Linkmic:
    found: Linkmic | None = getattr(call.request.app.state, "linkmic", None)
    if found is None:
        raise OpError(ErrorCode.INTERNAL, "link-mic is not set up on this node")
    return found


USER = {"type": "string", "minLength": 1, "maxLength": 128}


@API.add("POST", "/rooms/{room}/linkmic", "Accept a link-mic request, or end a guest (declines a queued request)",
         body=obj(["user", "action"], user=USER, action={"enum": ["accept", "end"]}), tag="media")
async def post_linkmic(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return await _linkmic(call).host(room, call.body["user"], call.body["action"])


@API.add("PUT", "/rooms/{room}/linkmic", "Open or close link-mic requests",
         body=obj(["allow"], allow={"type": "boolean"}), tag="media")
async def put_linkmic(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return await _linkmic(call).allow(room, call.body["allow"])


@API.add("GET", "/rooms/{room}/linkmic", "Link-mic queue, guests and stats (count, minutes)", tag="media")
async def get_linkmic(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return await _linkmic(call).status(room)
