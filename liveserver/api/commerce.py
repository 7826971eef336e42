"""Host API: cards, flash sales, orders, coupons, lotteries, polls, stats."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from starlette.responses import Response

from protocol import ErrorCode

from ..commerce.keys import room_of
from ..commerce.store import CommerceEngine, now_ms
from ..errors import OpError
from . import schemas
from .base import API, Call
from .rooms import require_room


def _store(call: Call) -> CommerceEngine:
    return call.request.app.state.commerce


async def _host_of(call: Call, object_id: str) -> str:
    """Object-scoped endpoints (sales/{sale}, orders/{order}) check the host's room here."""
    room = room_of(object_id)
    if room is None:
        raise OpError(ErrorCode.NOT_FOUND, f"no such object {object_id!r}")
    identity = call.identity
    if identity is None or not identity.can_host(room):
        raise OpError(ErrorCode.FORBIDDEN, "this needs a host token for this room (or admin)")
    return room


@API.add("POST", "/rooms/{room}/cards", "Push a product card to every viewer and pin it", body=schemas.CARD,
         status=201, tag="commerce")
async def post_card(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    product, offset = await _store(call).push_card(room, call.body["product_id"])
    return {"card": product, "offset": offset}


@API.add("POST", "/rooms/{room}/sales", "Create a flash sale", body=schemas.SALE, status=201, tag="commerce")
async def post_sale(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    start_ms = body["start_ms"] if "start_ms" in body else now_ms() + body.get("start_in_s", 0) * 1000
    sale = await _store(call).create_sale(room, body["product_id"], body["price"], body["stock"],
                                          body.get("per_user_limit", 1), start_ms, body["duration_s"])
    return {"sale": sale}


@API.add("GET", "/rooms/{room}/sales", "List a room's sales", tag="commerce")
async def get_sales(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    store = _store(call)
    return {"sales": [store.sale_view(await store.sale(s)) for s in await store.recent(room, "sales", 1000)]}


@API.add("GET", "/sales/{sale}", "Read a sale", auth="none", tag="commerce")
async def get_sale(call: Call) -> dict[str, Any]:
    store = _store(call)
    return {"sale": store.sale_view(await store.sale(call.params["sale"]))}


@API.add("GET", "/sales/{sale}/audit", "Check the stock invariant of a sale", tag="commerce")
async def get_audit(call: Call) -> dict[str, Any]:
    await _host_of(call, call.params["sale"])
    return await _store(call).audit(call.params["sale"])


@API.add("GET", "/orders/{order}", "Read an order", tag="commerce")
async def get_order(call: Call) -> dict[str, Any]:
    await _host_of(call, call.params["order"])
    return {"order": await _store(call).order(call.params["order"])}


@API.add("POST", "/orders/{order}/paid", "Payment callback: mark a reserved order paid (idempotent)", tag="commerce")
async def post_paid(call: Call) -> dict[str, Any]:
    await _host_of(call, call.params["order"])
    order, changed = await _store(call).pay(call.params["order"])
    return {"order": order, "changed": changed}


@API.add("POST", "/rooms/{room}/coupons", "Drop coupons now or at a time (optionally repeated)", body=schemas.COUPON,
         status=201, tag="commerce")
async def post_coupon(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    store = _store(call)
    first = body.get("at_ms") or now_ms()
    repeat, every_ms = body.get("repeat", 1), body.get("every_s", 0) * 1000
    if repeat > 1 and every_ms <= 0:
        raise OpError(ErrorCode.BAD_REQUEST, "repeat needs every_s")
    coupons = []
    for i in range(repeat):
        coupon = await store.create_coupon(room, body["title"], body["amount"], body.get("min_spend", 0),
                                           body["quantity"], body.get("per_user", 1), first + i * every_ms,
                                           body["duration_s"])
        if coupon["start_ms"] <= now_ms():
            await store.announce_coupon(coupon["id"], "ev_drop")  # now, not at the next scheduler pass
        coupons.append(coupon)
    return {"coupon": coupons[0], "coupons": coupons}


@API.add("GET", "/users/{user}/coupons", "A user's claimed coupons (the user's own token, or host/admin)",
         auth="any", tag="commerce")
async def get_user_coupons(call: Call) -> dict[str, Any]:
    user = call.params["user"]
    identity = call.identity
    if identity is None or (identity.id != user and identity.role not in ("host", "admin")):
        raise OpError(ErrorCode.FORBIDDEN, "you can only list your own coupons")
    return {"user": user, "coupons": await _store(call).user_coupons(user)}


@API.add("POST", "/rooms/{room}/lotteries", "Start a lottery (publishes the commit)", body=schemas.LOTTERY,
         status=201, tag="commerce")
async def post_lottery(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    lottery = await _store(call).create_lottery(room, body["prize"], body["winners"], body.get("keyword"),
                                                body["duration_s"])
    return {"lottery": lottery}


def _lottery_id(call: Call) -> str:
    lottery_id = call.params["id"]
    if room_of(lottery_id) != call.params["room"]:
        raise OpError(ErrorCode.NOT_FOUND, f"no lottery {lottery_id!r} in this room")
    return lottery_id


@API.add("POST", "/rooms/{room}/lotteries/{id}/draw", "Draw a lottery now (idempotent)", tag="commerce")
async def post_draw(call: Call) -> dict[str, Any]:
    return {"result": await _store(call).draw(_lottery_id(call))}


@API.add("GET", "/rooms/{room}/lotteries/{id}", "Read a lottery; after the draw, its result and every entrant",
         auth="none", tag="commerce")
async def get_lottery(call: Call) -> dict[str, Any]:
    store = _store(call)
    lottery = await store.lottery(_lottery_id(call))
    out: dict[str, Any] = {"lottery": store.lottery_view(lottery)}
    if "result" in lottery:
        out["result"] = json.loads(lottery["result"])
        out["entrants_list"] = await store.entrants(lottery["id"])
    else:
        out["entrants"] = len(await store.entrants(lottery["id"]))
    return out


@API.add("POST", "/rooms/{room}/polls", "Start a poll", body=schemas.POLL, status=201, tag="commerce")
async def post_poll(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    return {"poll": await _store(call).create_poll(room, body["question"], body["options"], body["duration_s"])}


@API.add("GET", "/rooms/{room}/stats", "Live stats of a room", tag="stats")
async def get_stats(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return await _store(call).stats(room)


@API.add("GET", "/rooms/{room}/stats.csv", "Live stats of a room as CSV (one row per sale)", tag="stats", raw=True)
async def get_stats_csv(call: Call) -> Response:
    room = await require_room(call)
    stats = await _store(call).stats(room)
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
