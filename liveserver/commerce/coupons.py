"""Coupon drops: limited quantity, per-user cap, a claim window (claim.lua); scheduled and
repeated drops; every user's wallet across rooms."""

from __future__ import annotations

from typing import Any

from protocol import ClientOp, ErrorCode

from liveserver.commerce.common import in_room, ints, job, now_ms, signed_in, window_phase
from liveserver.commerce.kind import CommerceKind, JobAction, Objects
from liveserver.commerce.sales import DURATION, PRICE
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.commerce_store import Read

INT_FIELDS = ("amount", "min_spend", "quantity", "left", "per_user", "start_ms", "end_ms", "created_ms", "expires_ms")
VALID_S = 7 * 86400  # a claimed coupon is usable at checkout this long after the drop ends, by default
COUPON = obj(
    ["title", "amount", "quantity", "duration_s"],
    title={"type": "string", "minLength": 1, "maxLength": 100},
    amount={"type": "integer", "minimum": 1, "maximum": 10**10},
    min_spend=PRICE,
    quantity={"type": "integer", "minimum": 1, "maximum": 10**7},
    per_user={"type": "integer", "minimum": 1, "maximum": 99},
    duration_s=DURATION,
    at_ms={"type": "integer", "minimum": 0},
    repeat={"type": "integer", "minimum": 1, "maximum": 100},
    every_s={"type": "integer", "minimum": 1, "maximum": 86400},
    valid_s={"type": "integer", "minimum": 1, "maximum": 365 * 86400},
)
CLAIM_MESSAGES = {
    "not_found": "no such coupon",
    "not_started": "the coupon drop has not started yet",
    "ended": "the coupon drop has ended",
    "sold_out": "all coupons are gone",
    "already_claimed": "already claimed",
}
STATE_FIELDS = ("left", "phase", "quantity", "title", "amount", "min_spend", "start_ms", "end_ms")


def coupon_view(coupon: dict[str, Any], now: int | None = None) -> dict[str, Any]:
    keep = ("id", "room", "title", "amount", "min_spend", "quantity", "left", "per_user", "start_ms", "end_ms",
            "expires_ms")
    view = {k: coupon[k] for k in keep if k in coupon}
    view["phase"] = window_phase(coupon, now if now is not None else now_ms())
    return view


class Coupons(CommerceKind):
    name = "coupons"
    event = "coupon"
    key_segment = "coupon"

    def loaded(self, fields: dict[str, str], extras: list[Any]) -> dict[str, Any] | None:
        if "ev_drop" not in fields:  # a scheduled drop stays a surprise until it fires
            return None
        return coupon_view(ints(fields, INT_FIELDS))

    def reads(self, room: str, object_id: str, obj: dict[str, Any], now: int) -> list[Read]:
        if now < obj.get("end_ms", 0) + 1000:
            return [Read("hget", CommerceKeys(room).coupon(object_id), "left")]
        return []

    def absorb(self, obj: dict[str, Any], values: list[Any]) -> None:
        if values[0] is not None:
            obj["left"] = int(values[0])

    def advance(self, obj: dict[str, Any], now: int) -> None:
        if "start_ms" in obj:
            obj["phase"] = window_phase(obj, now)

    def state(self, objects: Objects) -> dict[str, Any]:
        return {"coupons": {i: {k: c.get(k) for k in STATE_FIELDS} for i, c in objects.items() if "start_ms" in c}}

    async def create(self, room: str, title: str, amount: int, min_spend: int, quantity: int,
                     per_user: int, start_ms: int, duration_s: int, valid_s: int = VALID_S) -> dict[str, Any]:
        coupon_id = await self.store.new_id(room, "coupon", "c")
        created = now_ms()
        coupon = {
            "id": coupon_id, "room": room, "title": title, "amount": amount, "min_spend": min_spend,
            "quantity": quantity, "left": quantity, "per_user": per_user, "start_ms": start_ms,
            "end_ms": start_ms + duration_s * 1000, "created_ms": created,
            "expires_ms": start_ms + (duration_s + valid_s) * 1000,
        }
        keys = CommerceKeys(room)
        await self.store.save_new(keys.coupon(coupon_id), keys.index(self.name), coupon,
                                  {job("coupon_drop", room, coupon_id): start_ms,
                                   job("coupon_end", room, coupon_id): coupon["end_ms"]})
        return coupon_view(coupon, created)

    async def coupon(self, coupon_id: str) -> dict[str, Any]:
        return await self.load(coupon_id, INT_FIELDS)

    async def announce(self, coupon_id: str, flag: str) -> None:
        coupon = await self.coupon(coupon_id)
        keys = CommerceKeys(coupon["room"])
        await self.store.rooms.publish(coupon["room"], "coupon", {"coupon": coupon_view(coupon)},
                                       once=(keys.coupon(coupon_id), flag))

    async def claim(self, room: str, coupon_id: str, user: str) -> dict[str, Any]:
        in_room(coupon_id, room, "coupon")
        reply = await self.store.claim(room, coupon_id, user)
        if not reply.pop("ok"):
            code = reply.pop("code")
            raise OpError(ErrorCode(code), CLAIM_MESSAGES[code], **reply)
        return reply

    async def wallet(self, user: str) -> list[dict[str, Any]]:
        now = now_ms()
        coupons = sorted(await self.store.wallet(user), key=lambda c: c["claimed_ms"])
        for c in await self.store.shop_wallet(user):  # shop-wide coupons (usable in the merchant's rooms)
            c["usable_holds"] = len(c.pop("holds", None) or {})
            c.setdefault("claimed_ms", 0)
            coupons.append(c)
        for c in coupons:  # what checkout can still take
            c["used"] = int(c.get("used", 0))
            c["orders"] = sorted(c.get("orders") or {})
            held = int(c.pop("usable_holds", 0))  # shop-wide uses held by a checkout in flight
            c["usable"] = max(0, int(c.get("count", 1)) - c["used"] - held) if now < c.get("expires_ms", now + 1) else 0
        return coupons

    def ops(self) -> dict[str, OpHandler]:
        async def claim(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "claim coupons")
            return await self.claim(ctx.room, op.args["coupon"], user)

        return {"claim": claim}

    def jobs(self) -> dict[str, JobAction]:
        return {
            "coupon_drop": lambda i: self.announce(i, "ev_drop"),
            "coupon_end": lambda i: self.announce(i, "ev_ended"),
        }


def _coupons(call: Call) -> Coupons:
    return call.services.commerce.kind(Coupons)


@API.add("POST", "/rooms/{room}/coupons", "Drop coupons now or at a time (optionally repeated)", body=COUPON,
         status=201, tag="commerce")
async def post_coupon(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    kind = _coupons(call)
    first = body.get("at_ms") or now_ms()
    repeat, every_ms = body.get("repeat", 1), body.get("every_s", 0) * 1000
    if repeat > 1 and every_ms <= 0:
        raise OpError(ErrorCode.BAD_REQUEST, "repeat needs every_s")
    coupons = []
    for i in range(repeat):
        coupon = await kind.create(room, body["title"], body["amount"], body.get("min_spend", 0),
                                   body["quantity"], body.get("per_user", 1), first + i * every_ms, body["duration_s"],
                                   body.get("valid_s", VALID_S))
        if coupon["start_ms"] <= now_ms():
            await kind.announce(coupon["id"], "ev_drop")  # now, not at the next scheduler pass
        coupons.append(coupon)
    return {"coupon": coupons[0], "coupons": coupons}


@API.add("GET", "/users/{user}/coupons", "A user's claimed coupons (the user's own token, or host/admin)",
         auth="any", tag="commerce")
async def get_user_coupons(call: Call) -> dict[str, Any]:
    user = call.params["user"]
    identity = call.identity
    if identity is None or (identity.id != user and identity.role not in ("host", "admin")):
        raise OpError(ErrorCode.FORBIDDEN, "you can only list your own coupons")
    return {"user": user, "coupons": await _coupons(call).wallet(user)}
