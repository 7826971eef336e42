"""Host API: rooms, products, notices, mutes, bans, retracting danmaku."""

from __future__ import annotations

import time
from typing import Any

from protocol import ErrorCode
from protocol.offsets import parse_offset

from liveserver.core.errors import OpError
from liveserver.edge.api import schemas
from liveserver.core.http_api import API, Call, require_room
from liveserver.reports.lifecycle import schedule_reminder, status_changed


def room_view(room: str, meta: dict[str, str]) -> dict[str, Any]:
    return {
        "room": room,
        "title": meta.get("title", ""),
        "status": meta.get("status", "preview"),
        "epoch": meta.get("epoch", ""),
        "offset": meta.get("last", "0-0"),
        "created_ms": int(meta.get("created_ms", "0")),
        "start_ms": int(meta.get("start_ms", "0") or 0),
        "host_name": meta.get("host_name", ""),
        "description": meta.get("description", ""),
    }


@API.add("PUT", "/rooms/{room}", "Create or update a room", body=schemas.ROOM_PUT)
async def put_room(call: Call) -> dict[str, Any]:
    room = call.params["room"]
    meta, created, old = await call.services.engine.update_room(room, {k: str(v) for k, v in call.body.items()})
    new = meta.get("status", "preview")
    if "start_ms" in call.body and new == "preview":
        await schedule_reminder(call.services.engine, room, call.body["start_ms"], call.services.settings.reminder_lead_s)
    if "status" in call.body and new != (old or "preview"):
        await status_changed(call.services.engine, call.services.commerce, room, old, new, meta,
                             call.services.settings.followup_watch_s)
    return {**room_view(room, meta), "created": created}


@API.add("GET", "/rooms/{room}", "Read a room", auth="none")
async def get_room(call: Call) -> dict[str, Any]:
    room = call.params["room"]
    meta = await call.services.engine.room_meta(room)
    if not meta:
        raise OpError(ErrorCode.NOT_FOUND, f"no room {room!r}")
    products = await call.services.engine.products(room)
    reservations, _mine = await call.services.engine.reservation_count(room)
    return {**room_view(room, meta), "products": products, "reservations": reservations}


@API.add("PUT", "/rooms/{room}/products", "Replace the room's preset product list", body=schemas.PRODUCTS_PUT)
async def put_products(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    products = call.body["products"]
    ids = [p["id"] for p in products]
    if len(set(ids)) != len(ids):
        raise OpError(ErrorCode.BAD_REQUEST, "products: ids must be unique")
    await call.services.engine.set_products(room, products)
    return {"products": products}


@API.add("GET", "/rooms/{room}/products", "List the room's products", auth="none")
async def get_products(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return {"products": await call.services.engine.products(room)}


@API.add("POST", "/rooms/{room}/notices", "Send a notice to every viewer", body=schemas.NOTICE, status=201)
async def post_notice(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    offset, ts = await call.services.engine.publish(room, "notice", {"text": call.body["text"]})
    return {"offset": offset, "ts": ts}


@API.add("POST", "/rooms/{room}/mutes", "Mute a user's danmaku for a while (0 unmutes)", body=schemas.MUTE, status=201)
async def post_mute(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    until_ms = int(time.time() * 1000) + call.body["duration_s"] * 1000 if call.body["duration_s"] else 0
    await call.services.engine.mute(room, call.body["user"], until_ms)
    return {"user": call.body["user"], "until_ms": until_ms}


@API.add("POST", "/rooms/{room}/bans", "Ban (or unban) a user: open connections close with 4403, new ones are refused",
         body=schemas.BAN, status=201)
async def post_ban(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    banned = call.body.get("banned", True)
    # With the `ban` event (internal, not relayed): nodes close the user's open
    # connections, and admit or refuse later joins from their copy of the bans.
    await call.services.engine.ban(room, call.body["user"], banned)
    return {"user": call.body["user"], "banned": banned}


@API.add("DELETE", "/rooms/{room}/danmaku/{offset}", "Retract a danmaku (emits `retract`)")
async def delete_danmaku(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    offset = call.params["offset"]
    if parse_offset(offset) is None:
        raise OpError(ErrorCode.BAD_REQUEST, "offset must look like <ms>-<seq>")
    event = await call.services.engine.find_event(room, offset)
    if event is None or event["k"] != "danmaku":
        raise OpError(ErrorCode.NOT_FOUND, f"no danmaku at {offset}")
    # `target`, not `offset`: every event's own `offset` is its stream id (decode_entry).
    retract_offset, ts = await call.services.engine.publish(room, "retract", {"target": offset})
    return {"retracted": offset, "offset": retract_offset, "ts": ts}
