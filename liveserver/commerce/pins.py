"""Pins and audience: the host pins a danmaku above the chat (until unpinned) and can
unpin the product card; `state.peak_online` is the room's highest online count across
nodes (peak.lua keeps the maximum in the room's meta hash)."""

from __future__ import annotations

import json
from typing import Any

from protocol import ErrorCode, parse_offset

from liveserver.commerce.kind import CommerceKind, Objects
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.engine.commerce_store import CommerceStore, Read
from liveserver.engine.engine import Event, LoadSpec
from liveserver.engine.keys import RoomKeys

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

PIN = obj(["offset"], offset={"type": "string", "minLength": 3, "maxLength": 40})


class Pins(CommerceKind):
    name = "pin"
    event = "pin"

    def __init__(self, store: CommerceStore) -> None:
        super().__init__(store)
        self._raise: dict[str, int] = {}  # room -> an online count above the stored peak

    def load_spec(self, room: str) -> LoadSpec | None:
        return None  # the pin and the peak live in the room's meta hash

    def loaded_from_meta(self, meta: dict[str, str]) -> dict[str, Any]:
        raw = meta.get("pin")
        return {"pin": json.loads(raw) if raw else None, "peak_online": int(meta.get("peak_online") or 0)}

    def apply(self, objects: Objects, event: Event) -> dict[str, Any]:
        return {"pin": event.get("pin")}

    # peak_online: read once per tick; a node that sees more viewers online raises it
    def room_reads(self, room: str) -> list[Read]:
        return [Read("hget", RoomKeys(room).meta, "peak_online")]

    def room_absorb(self, room: str, values: list[Any], state: dict[str, Any]) -> dict[str, Any]:
        stored = int(values[0] or 0)
        online = int(state.get("online") or 0)
        if online > stored:
            self._raise[room] = online
        return {"peak_online": max(stored, online)}

    async def after_refresh(self) -> None:
        raise_, self._raise = self._raise, {}
        for room, online in raise_.items():
            await self.store.raise_peak(room, online)

    # -- pins ----------------------------------------------------------------------------
    async def pin(self, room: str, offset: str) -> dict[str, Any]:
        if parse_offset(offset) is None:
            raise OpError(ErrorCode.BAD_REQUEST, "offset is not a stream offset like 1700000000000-0")
        event = await self.store.event_at(room, offset)
        if event is None or event.get("k") != "danmaku":
            raise OpError(ErrorCode.NOT_FOUND, f"no danmaku at {offset!r} in this room's history")
        pin = {k: event[k] for k in ("offset", "ts", "user", "name", "text", "role", "badge") if k in event}
        await self.store.rooms.publish(room, "pin", {"pin": pin}, pins={"pin": _dumps(pin)})
        return pin

    async def unpin(self, room: str) -> None:
        await self.store.rooms.publish(room, "pin", {"pin": None}, pins={"pin": ""})

    async def unpin_card(self, room: str) -> None:
        await self.store.rooms.publish(room, "card", {"product": None}, pins={"card": ""})


def _pins(call: Call) -> Pins:
    return call.services.commerce.kind(Pins)


@API.add("PUT", "/rooms/{room}/pin", "Pin a danmaku above the chat (by its offset)", body=PIN)
async def put_pin(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return {"pin": await _pins(call).pin(room, call.body["offset"])}


@API.add("DELETE", "/rooms/{room}/pin", "Unpin the pinned danmaku")
async def delete_pin(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    await _pins(call).unpin(room)
    return {"pin": None}


@API.add("DELETE", "/rooms/{room}/cards", "Unpin the product card", tag="commerce")
async def delete_card(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    await _pins(call).unpin_card(room)
    return {"card": None}
