"""Small rules shared by the commerce kinds: clocks, phases, ids, permissions."""

from __future__ import annotations

import time
from typing import Any

from protocol import ErrorCode

from liveserver.core.errors import OpError
from liveserver.core.http_api import Call
from liveserver.core.ops import OpContext
from liveserver.engine.commerce_keys import room_of
from liveserver.engine.engine import RoomEngine


def now_ms() -> int:
    return int(time.time() * 1000)


async def room_product(rooms: RoomEngine, room: str, product_id: str) -> dict[str, Any]:
    """A product of the room's list (what a card, a sale or a group deal is of), or not_found."""
    product = await rooms.product(room, product_id)
    if product is None:
        raise OpError(ErrorCode.NOT_FOUND, f"no product {product_id!r} in room {room!r}")
    return product


def ints(raw: dict[str, str], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = dict(raw)
    for f in fields:
        if f in out:
            out[f] = int(out[f])
    return out


def window_phase(obj: dict[str, Any], now: int) -> str:
    if now < obj["start_ms"]:
        return "scheduled"
    return "ended" if now >= obj["end_ms"] else "live"


def job(kind: str, room: str, object_id: str) -> str:
    """A scheduled job's member in the jobs zset: `<kind>|<room>|<object id>`."""
    return f"{kind}|{room}|{object_id}"


def signed_in(ctx: OpContext, what: str) -> str:
    if ctx.identity.is_guest:
        raise OpError(ErrorCode.UNAUTHORIZED, f"sign in to {what}")
    return ctx.user


def in_room(object_id: str, room: str, what: str) -> str:
    """An object id sent by a viewer must belong to the viewer's room."""
    if room_of(object_id) != room:
        raise OpError(ErrorCode.NOT_FOUND, f"no {what} {object_id!r} in this room")
    return object_id


def host_of(call: Call, object_id: str) -> str:
    """Object-scoped endpoints (sales/{sale}, orders/{order}) check the host's room here."""
    room = room_of(object_id)
    if room is None:
        raise OpError(ErrorCode.NOT_FOUND, f"no such object {object_id!r}")
    identity = call.identity
    if identity is None or not identity.can_host(room):
        raise OpError(ErrorCode.FORBIDDEN, "this needs a host token for this room (or admin)")
    return room
