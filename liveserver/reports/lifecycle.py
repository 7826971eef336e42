"""What happens when a room's status changes: `room.live` (with every reservation: the
reminders) when it goes live, `room.ended` and `followup` when it ends.

Called by the host API after an atomic status update (`RoomEngine.update_room`), so of
two concurrent calls only the one that changed the status gets here; the event ids are
derived from the transition, so even a retried call produces each event once."""

from __future__ import annotations

import json
import logging
import time

from liveserver.commerce import Commerce
from liveserver.commerce.sales import Sales
from liveserver.engine.engine import RoomEngine
from liveserver.webhooks.events import emit

log = logging.getLogger("liveserver.reports")


REMINDER_JOB = "room_reminder"
REPLAY_STOCK = 100_000  # a listing, not a flash sale: effectively unlimited
REPLAY_PER_USER = 10
REPLAY_DAYS = 7


async def open_replay_listings(engine: RoomEngine, commerce: Commerce, room: str) -> dict[str, str]:
    """When a room ends, every product of the room gets a normal listing at its list price
    for the replay: a long sale with ample stock, so a replay purchase goes through the same
    order path as the live ones (buy.lua: idempotency, per-user limit, payment window,
    expiry, audit). Once per room (`replay_sales` in the meta); returns product -> sale."""
    meta = await engine.room_meta(room) or {}
    if meta.get("replay_sales"):
        return json.loads(meta["replay_sales"])
    sales = commerce.kind(Sales)
    listings = {}
    now = int(time.time() * 1000)
    for product in await engine.products(room):
        sale = await sales.create(room, product["id"], int(product["price"]), REPLAY_STOCK, REPLAY_PER_USER, now,
                                  REPLAY_DAYS * 86400)
        listings[product["id"]] = sale["id"]
    await engine.put_room(room, {"replay_sales": json.dumps(listings, separators=(",", ":"))})
    return listings


async def schedule_reminder(engine: RoomEngine, room: str, start_ms: int, lead_s: int) -> None:
    """A `reminder` webhook `lead_s` before the announced start (once, across all nodes)."""
    await engine.reports.schedule(f"{REMINDER_JOB}|{room}|{room}.{start_ms}", max(0, start_ms - lead_s * 1000))


def reminder_action(engine: RoomEngine):  # type: ignore[no-untyped-def]
    """The scheduler's action for a reminder job: if the room is still in preview and still
    announced for that start, emit `reminder` with every reservation (one event per start)."""

    async def remind(object_id: str) -> None:
        room, _, start = object_id.rpartition(".")
        meta = await engine.room_meta(room) or {}
        if meta.get("status", "preview") != "preview" or meta.get("start_ms") != start:
            return  # went live already, or the start moved (its own job reminds)
        users = await engine.reservations(room)
        await emit(engine.webhooks, "reminder", room,
                   {"room": room, "title": meta.get("title", ""), "start_ms": int(start), "url": f"/rooms/{room}/trailer",
                    "reservations": len(users), "users": users}, f"{room}.reminder.{start}")

    return remind


async def status_changed(engine: RoomEngine, commerce: Commerce, room: str, old: str | None, new: str,
                         meta: dict[str, str], followup_watch_s: int = 300) -> None:
    now = int(time.time() * 1000)
    if new == "live" and old != "live":
        users = await engine.reservations(room)
        await emit(engine.webhooks, "room.live", room,
                   {"room": room, "title": meta.get("title", ""), "url": f"/rooms/{room}", "previous": old or "",
                    "reservations": len(users), "users": users},
                   f"{room}.live.{now}", now)
    elif new == "ended" and old != "ended":
        try:
            await open_replay_listings(engine, commerce, room)
        except Exception:
            log.exception("replay listings of %s failed", room)
        from liveserver.reports.report import build_report  # the report reads the whole room: only here

        try:
            report = await build_report(engine, commerce, room, followup_watch_s)
        except Exception:
            log.exception("report of %s failed; room.ended goes out without it", room)
            report = {}
        headline = report.get("headline", {})
        await emit(engine.webhooks, "room.ended", room,
                   {"room": room, "title": meta.get("title", ""), "report": f"/api/v1/rooms/{room}/report",
                    "headline": headline}, f"{room}.ended.{now}", now)
        followup = report.get("followup", [])
        await emit(engine.webhooks, "followup", room,
                   {"room": room, "rule": f"watched > {followup_watch_s} s, clicked a product, bought nothing", "users": followup},
                   f"{room}.followup.{now}", now)
