"""Shop-wide coupons: one coupon usable in every room of a merchant. The coupon lives in the
merchant's slot (`lc:{m:<merchant>}:...`), the order in the room's slot, so spending one is
a two-step protocol with compensation (docs/commerce.md, "Shop-wide coupons"):

1. hold (shop_hold.lua, merchant slot): one use of the coupon reserved for this checkout,
   with a deadline (LIVESERVER_SHOP_HOLD_MS, default 30 s);
2. buy (buy.lua, room slot): the order is created and the hold id fenced to it;
3. commit (shop_settle.lua) on success, release on a refusal.

A node that dies anywhere in between leaves an open hold; every node's sweeper settles holds
past their deadline from what the room says (shop_fence.lua voids an unused hold id first,
so a late buy cannot use it): committed if an order used it, released otherwise. An order
that expires unpaid gives its use back (shop_settle.lua unuse) through the room's
shop-returns queue, after its hold is settled. Never spent twice, never lost."""

from __future__ import annotations

import os
import re
from typing import Any

from protocol import ErrorCode

from liveserver.commerce.common import now_ms
from liveserver.commerce.kind import CommerceKind
from liveserver.commerce.sales import COUPON_MESSAGES, PRICE
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.engine.engine import LoadSpec

HOLD_MS = int(os.environ.get("LIVESERVER_SHOP_HOLD_MS", "30000"))
SEP = "\x1f"  # between user, coupon and hold id in a hold's zset member
SHOP_PREFIX = "shop:"

SHOP_COUPON = obj(
    ["users", "title", "amount"],
    users={"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "minItems": 1,
           "maxItems": 10000},
    title={"type": "string", "minLength": 1, "maxLength": 100},
    amount={"type": "integer", "minimum": 1, "maximum": 10**10},
    min_spend=PRICE,
    valid_s={"type": "integer", "minimum": 1, "maximum": 365 * 86400},
)
MERCHANT = obj(["merchant"], merchant={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
REFUSALS = {"not_in_wallet": ErrorCode.NOT_FOUND, "used": ErrorCode.ALREADY_CLAIMED, "expired": ErrorCode.ENDED}


def merchant_of(coupon_id: str) -> str:
    return coupon_id[len(SHOP_PREFIX):].rpartition(".")[0]


def is_shop_coupon(coupon_id: str) -> bool:
    return coupon_id.startswith(SHOP_PREFIX)


class ShopCoupons(CommerceKind):
    name = "shop"

    def load_spec(self, room: str) -> LoadSpec | None:
        return None

    async def checkout(self, room: str, sale_id: str, user: str, qty: int, key: str, coupon_id: str) -> dict[str, Any]:
        """A buy with a shop-wide coupon: hold, buy, then commit or release."""
        merchant = merchant_of(coupon_id)
        if not merchant or await self.store.room_merchant(room) != merchant:
            raise OpError(ErrorCode.NOT_FOUND, "that shop coupon is not usable in this room", coupon="not_in_wallet")
        hold_id = f"{room}|{sale_id}|{user}|{key}"  # a retried buy finds its own hold again
        held = await self.store.shop_hold(merchant, user, coupon_id, hold_id, HOLD_MS)
        if not held["ok"]:
            reason = held["coupon"]
            raise OpError(REFUSALS[reason], COUPON_MESSAGES[reason], coupon=reason)
        shop = {"coupon_id": coupon_id, "merchant": merchant, "hold": hold_id, "amount": held["amount"],
                "min_spend": held["min_spend"]}
        reply = await self.store.buy(room, sale_id, user, qty, key, "", shop)
        if reply.get("ok"):
            await self.store.shop_settle(merchant, "commit", user, coupon_id, hold_id, reply["order"], room)
        else:
            await self.store.shop_settle(merchant, "release", user, coupon_id, hold_id)
        return reply

    async def sweep(self) -> int:
        """Settle holds past their deadline; give back uses of expired orders. Returns changes."""
        changed = 0
        now = now_ms()
        for merchant in await self.store.shop_merchants():
            for member in await self.store.shop_due_holds(merchant, now):
                user, coupon_id, hold_id = member.split(SEP, 2)
                room = hold_id.split("|", 1)[0]
                used_by = await self.store.shop_fence(room, hold_id)
                if used_by == "void":
                    changed += max(0, await self.store.shop_settle(merchant, "release", user, coupon_id, hold_id))
                else:
                    changed += max(0, await self.store.shop_settle(merchant, "commit", user, coupon_id, hold_id,
                                                                   used_by, room))
        for room in await self.store.sweep_rooms():
            for order_id in await self.store.shop_returns(room):
                order = await self.store.order(room, order_id)
                if order is None or not order.get("shop"):
                    await self.store.shop_returned(room, order_id)
                    continue
                done = await self.store.shop_settle(order["shop"], "unuse", order["user"], order["coupon"],
                                                    order["hold"], order_id)
                if done >= 0:  # -1: its hold is not settled yet; the next pass retries
                    await self.store.shop_returned(room, order_id)
                    changed += done
        return changed

    async def audit_orders(self, orders: list[dict[str, Any]], returns: set[str]) -> list[str]:
        """Orders that used a shop coupon against the merchant wallets."""
        problems: list[str] = []
        for o in orders:
            if not o.get("shop"):
                continue
            entry = await self.store.shop_entry(o["shop"], o["user"], o["coupon"]) or {}
            used = o["id"] in (entry.get("orders") or {})
            pending = o.get("hold") in (entry.get("holds") or {})
            if o["status"] in ("reserved", "paid") and not (used or pending):
                problems.append(f"order {o['id']} is {o['status']} but shop coupon {o['coupon']} does not list it")
            if o["status"] == "expired" and used and o["id"] not in returns:
                problems.append(f"order {o['id']} expired but shop coupon {o['coupon']} was not given back")
        return problems


def _shop(call: Call) -> ShopCoupons:
    return call.services.commerce.kind(ShopCoupons)


@API.add("PUT", "/rooms/{room}/merchant", "Attach a room to a merchant: its shop-wide coupons work here (admin)",
         body=MERCHANT, auth="admin", tag="commerce")
async def put_merchant(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    await _shop(call).store.set_room_merchant(room, call.body["merchant"])
    return {"room": room, "merchant": call.body["merchant"]}


@API.add("POST", "/merchants/{merchant}/coupons", "Issue a shop-wide coupon to users (admin)", body=SHOP_COUPON,
         status=201, auth="admin", tag="commerce")
async def post_shop_coupon(call: Call) -> dict[str, Any]:
    merchant = call.params["merchant"]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", merchant):
        raise OpError(ErrorCode.BAD_REQUEST, "merchant names are 1..64 of A-Z a-z 0-9 _ -")
    b = call.body
    entry = {"title": b["title"], "amount": b["amount"], "min_spend": b.get("min_spend", 0),
             "expires_ms": now_ms() + b.get("valid_s", 30 * 86400) * 1000}
    coupon_id = await _shop(call).store.shop_issue(merchant, list(dict.fromkeys(b["users"])), entry)
    return {"coupon": {**entry, "coupon_id": coupon_id, "merchant": merchant}, "users": len(set(b["users"]))}
