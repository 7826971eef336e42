"""Live stats of a room (host API): counters, clicks, and per-sale orders and GMV."""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.responses import Response

from liveserver.commerce.common import now_ms
from liveserver.commerce.sales import Sales, sale_phase
from liveserver.core.http_api import API, Call, require_room


async def room_stats(sales: Sales, room: str) -> dict[str, Any]:
    rooms = sales.store.rooms
    likes, online = await rooms.counters(room)
    meta = await rooms.room_meta(room) or {}
    out_sales = []
    reserved_cents = gmv = orders_reserved = orders_paid = 0
    for sale_id in await sales.recent(room, 1000):
        s = await sales.sale(sale_id)
        out_sales.append({"id": sale_id, "title": s["title"], "price": s["price"], "initial": s["initial"],
                          "stock": s["stock"], "reserved": s["reserved"], "paid": s["paid"], "expired": s["expired"],
                          "paid_cents": s["paid_cents"], "phase": sale_phase(s, now_ms())})
        gmv += s["paid_cents"]
        reserved_cents += s["reserved"] * s["price"]
        orders_reserved += s["reserved"]
        orders_paid += s["paid"]
    return {
        "room": room, "ts": now_ms(), "online": online, "likes": likes,
        "danmaku": int(meta.get("n_danmaku", 0)), "events": {k[2:]: int(v) for k, v in meta.items() if k.startswith("n_")},
        "clicks": await sales.store.clicks(room), "units_reserved": orders_reserved, "units_paid": orders_paid,
        "orders_reserved": orders_reserved, "orders_paid": orders_paid,
        "reserved_cents": reserved_cents, "gmv_cents": gmv, "sales": out_sales,
    }


@API.add("GET", "/rooms/{room}/stats", "Live stats of a room", tag="stats")
async def get_stats(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return await room_stats(call.services.commerce.kind(Sales), room)


@API.add("GET", "/rooms/{room}/stats.csv", "Live stats of a room as CSV (one row per sale)", tag="stats", raw=True)
async def get_stats_csv(call: Call) -> Response:
    room = await require_room(call)
    stats = await room_stats(call.services.commerce.kind(Sales), room)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["room", "ts", "online", "likes", "danmaku", "gmv_cents", "sale", "title", "price", "initial",
                     "stock", "reserved", "paid", "expired"])
    rows = stats["sales"] or [{}]
    for s in rows:
        writer.writerow([room, stats["ts"], stats["online"], stats["likes"], stats["danmaku"], stats["gmv_cents"],
                         s.get("id", ""), s.get("title", ""), s.get("price", ""), s.get("initial", ""),
                         s.get("stock", ""), s.get("reserved", ""), s.get("paid", ""), s.get("expired", "")])
    return Response(out.getvalue(), media_type="text/csv")
