"""Flash sales (seckill) and their orders: create, buy (buy.lua), pay (pay.lua), expire
unpaid orders (expire.lua, exactly once), and the stock audit."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from protocol import ClientOp, ErrorCode

from liveserver.commerce.common import host_of, in_room, ints, job, now_ms, room_product, signed_in
from liveserver.commerce.kind import CommerceKind, JobAction, Objects
from liveserver.commerce.soldout import SoldOutGate
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, ID, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler
from liveserver.engine.commerce_keys import CommerceKeys, room_of
from liveserver.engine.commerce_store import CommerceStore, Read
from liveserver.engine.engine import Event

INT_FIELDS = ("price", "initial", "stock", "reserved", "paid", "expired", "paid_cents",
              "per_user_limit", "start_ms", "end_ms", "created_ms")
PRICE = {"type": "integer", "minimum": 0, "maximum": 10**10}  # cents; keeps amounts exact in Lua
DURATION = {"type": "integer", "minimum": 1, "maximum": 7 * 86400}

SALE = {
    **obj(
        ["product_id", "price", "stock", "duration_s"],
        product_id=ID,
        price=PRICE,
        stock={"type": "integer", "minimum": 1, "maximum": 10**7},
        per_user_limit={"type": "integer", "minimum": 1, "maximum": 10**6},
        start_in_s={"type": "integer", "minimum": 0, "maximum": 30 * 86400},
        start_ms={"type": "integer", "minimum": 0},
        duration_s=DURATION,
    ),
    "not": {"required": ["start_in_s", "start_ms"]},
}

BUY_MESSAGES = {
    "not_found": "no such sale",
    "not_started": "the sale has not started yet",
    "ended": "the sale has ended",
    "sold_out": "sold out",
    "limit_reached": "you have reached the per-user limit for this sale",
}
COUPON_MESSAGES = {  # buy.lua's `coupon` reason when a coupon at checkout is refused
    "not_in_wallet": "that coupon is not in your wallet for this room",
    "used": "that coupon is already used",
    "expired": "that coupon has expired",
    "min_spend": "this order does not reach the coupon's minimum spend",
}
STATE_FIELDS = ("phase", "stock", "initial", "price", "start_ms", "end_ms", "title", "product_id", "per_user_limit")


def sale_phase(sale: dict[str, Any], now: int) -> str:
    if now < sale["start_ms"]:
        return "scheduled"
    if now >= sale["end_ms"]:
        return "ended"
    return "sold_out" if sale["stock"] <= 0 else "live"


def sale_view(sale: dict[str, Any], now: int | None = None) -> dict[str, Any]:
    keep = ("id", "room", "product_id", "title", "image", "price", "initial", "stock", "per_user_limit",
            "start_ms", "end_ms")
    view = {k: sale[k] for k in keep if k in sale}
    view["phase"] = sale_phase(sale, now if now is not None else now_ms())
    return view


ShopCheckout = Callable[[str, str, str, int, str, str], Awaitable[dict[str, Any]]]
ShopAudit = Callable[[list[dict[str, Any]], set[str]], Awaitable[list[str]]]


class Sales(CommerceKind):
    name = "sales"
    event = "sale"
    key_segment = "sale"
    # Set by Commerce: the shop-wide coupon checkout (commerce/shop.py) and its audit.
    shop_checkout: ShopCheckout | None = None
    shop_audit: ShopAudit | None = None

    def __init__(self, store: CommerceStore) -> None:
        super().__init__(store)
        self.gate = SoldOutGate(store)  # answers late buyers of a sold-out sale on this node

    # -- state -----------------------------------------------------------------------------
    def loaded(self, fields: dict[str, str], extras: list[Any]) -> dict[str, Any] | None:
        return sale_view(ints(fields, INT_FIELDS))

    def reads(self, room: str, object_id: str, obj: dict[str, Any], now: int) -> list[Read]:
        if now < obj.get("end_ms", 0) + 1000:
            return [Read("hget", CommerceKeys(room).sale(object_id), "stock")]
        return []

    def absorb(self, obj: dict[str, Any], values: list[Any]) -> None:
        if values[0] is not None:
            obj["stock"] = int(values[0])
            if obj["stock"] > 0:  # a unit came back, whatever the events said
                self.gate.restocked(obj["id"])

    def advance(self, obj: dict[str, Any], now: int) -> None:
        if "start_ms" in obj:
            obj["phase"] = sale_phase(obj, now)
            if obj["phase"] == "ended":
                self.gate.restocked(obj["id"])  # nothing to remember: Redis says `ended`

    def apply(self, objects: Objects, event: Event) -> dict[str, Any]:
        update = event.get(self.event)
        if isinstance(update, dict) and isinstance(update.get("id"), str):
            if update.get("phase") == "sold_out":
                room = room_of(update["id"])
                if room:
                    self.gate.sold_out(room, update["id"])
            else:  # `live` after an expiry returned units, or a scheduled phase change
                self.gate.restocked(update["id"])
        return super().apply(objects, event)

    def state(self, objects: Objects) -> dict[str, Any]:
        return {"sales": {i: {k: s.get(k) for k in STATE_FIELDS} for i, s in objects.items() if "start_ms" in s}}

    # -- commands ----------------------------------------------------------------------------
    async def create(self, room: str, product_id: str, price: int, stock: int, per_user_limit: int,
                     start_ms: int, duration_s: int) -> dict[str, Any]:
        product = await room_product(self.store.rooms, room, product_id)
        sale_id = await self.store.new_id(room, "sale", "s")
        created = now_ms()
        sale = {
            "id": sale_id, "room": room, "product_id": product_id, "title": product["title"],
            "image": product.get("image", ""), "price": price, "initial": stock, "stock": stock,
            "reserved": 0, "paid": 0, "expired": 0, "paid_cents": 0, "per_user_limit": per_user_limit,
            "start_ms": start_ms, "end_ms": start_ms + duration_s * 1000, "created_ms": created,
        }
        keys = CommerceKeys(room)
        jobs = {job("sale_end", room, sale_id): sale["end_ms"]}
        if start_ms > created:
            jobs[job("sale_start", room, sale_id)] = start_ms
        await self.store.save_new(keys.sale(sale_id), keys.index(self.name), sale, jobs, sweep_room=room)
        view = sale_view(sale, created)
        await self.store.rooms.publish(room, "sale", {"sale": view})
        return view

    async def sale(self, sale_id: str) -> dict[str, Any]:
        return await self.load(sale_id, INT_FIELDS)

    async def recent(self, room: str, count: int) -> list[str]:
        return await self.store.recent(CommerceKeys(room).index(self.name), count)

    async def announce(self, sale_id: str, flag: str) -> None:
        """Scheduled phase change (start/end): one `sale` event, however many nodes run it."""
        sale = await self.sale(sale_id)
        keys = CommerceKeys(sale["room"])
        await self.store.rooms.publish(sale["room"], "sale", {"sale": sale_view(sale)}, once=(keys.sale(sale_id), flag))

    def _refuse_if_late(self, shop: bool, sale_id: str, user: str, qty: int) -> None:
        """buy.lua's own `sold_out` reply, when this node's sold-out gate knows it will be
        the answer. Never with a shop-wide coupon: its hold runs before buy.lua and may
        refuse first."""
        if not shop and self.gate.refuses(sale_id, user, qty, now_ms()):
            raise OpError(ErrorCode.SOLD_OUT, BUY_MESSAGES["sold_out"], stock=0)

    async def buy(self, room: str, sale_id: str, user: str, qty: int, key: str, coupon: str = "") -> dict[str, Any]:
        in_room(sale_id, room, "sale")
        shop = coupon.startswith("shop:") and self.shop_checkout is not None
        if coupon and not shop:
            in_room(coupon, room, "coupon")
        self._refuse_if_late(shop, sale_id, user, qty)
        known = self.objects_of(room).get(sale_id, {}).get("stock")
        await self.gate.admit(sale_id, known if isinstance(known, int) else None)
        left = None
        try:
            self._refuse_if_late(shop, sale_id, user, qty)  # the gate may have closed while this one waited
            if shop:
                assert self.shop_checkout is not None
                reply = await self.shop_checkout(room, sale_id, user, qty, key, coupon)
            else:
                reply = await self.store.buy(room, sale_id, user, qty, key, coupon)
            left = reply.get("stock")
        finally:
            self.gate.done(sale_id, left if isinstance(left, int) else None)
        if not reply.pop("ok"):
            code = reply.pop("code")
            if code == "sold_out" and left == 0:
                self.gate.sold_out(room, sale_id)
            reason = reply.get("coupon")
            message = COUPON_MESSAGES[reason] if reason in COUPON_MESSAGES else BUY_MESSAGES[code]
            raise OpError(ErrorCode(code), message, **reply)
        return reply

    # -- orders ------------------------------------------------------------------------------
    async def order(self, order_id: str) -> dict[str, Any]:
        room = room_of(order_id)
        found = await self.store.order(room, order_id) if room else None
        if not found:
            raise OpError(ErrorCode.NOT_FOUND, f"no order {order_id!r}")
        return found

    async def pay(self, order_id: str) -> tuple[dict[str, Any], bool]:
        order = await self.order(order_id)
        if "sale" not in order:
            raise OpError(ErrorCode.BAD_REQUEST, "a group-buy order is confirmed when its team completes; "
                                                 "it has no payment callback here")
        reply = await self.store.pay(order["room"], order_id, order["sale"])
        if not reply["ok"]:
            if reply["code"] == "ended":
                raise OpError(ErrorCode.ENDED, "the order expired before it was paid; its units went back to stock",
                              order=reply.get("order"))
            raise OpError(ErrorCode.NOT_FOUND, f"no order {order_id!r}")
        return reply["order"], bool(reply["changed"])

    async def sweep(self) -> int:
        """Expire unpaid orders past their deadline; returns how many this call expired."""
        expired = 0
        now = now_ms()
        for room in await self.store.sweep_rooms():
            due = await self.store.due_orders(room, now)
            if due:
                results = await asyncio.gather(*(self.store.expire(room, order) for order in due))
                expired += sum(results)
        return expired

    async def audit(self, sale_id: str) -> dict[str, Any]:
        """Check the stock invariant of one sale against every order and the orders stream."""
        sale = await self.sale(sale_id)
        room = sale["room"]
        keys = CommerceKeys(room)
        orders = await self.store.orders(room, keep=lambda o: o.get("sale") == sale_id)
        holders = {u: int(n) for u, n in (await self.store.big_hash(keys.sale_users(sale_id))).items()}
        streamed = await self.store.order_stream_types(room, sale_id)
        by_status = {"reserved": 0, "paid": 0, "expired": 0}
        per_user: dict[str, int] = {}
        problems: list[str] = []
        for o in orders:
            by_status[o["status"]] = by_status.get(o["status"], 0) + o["qty"]
            if o["status"] in ("reserved", "paid"):
                per_user[o["user"]] = per_user.get(o["user"], 0) + o["qty"]
            types = streamed.get(o["id"], set())
            if "reserved" not in types:
                problems.append(f"order {o['id']} is not in the orders stream")
            if o["status"] != "reserved" and o["status"] not in types:
                problems.append(f"order {o['id']} is {o['status']} but the stream has no {o['status']} entry")
        problems.extend(await self.audit_coupons(room, orders))
        initial, stock = sale["initial"], sale["stock"]
        if stock < 0:
            problems.append(f"stock is negative: {stock}")
        if stock + sale["reserved"] + sale["paid"] != initial:
            problems.append(f"stock {stock} + reserved {sale['reserved']} + paid {sale['paid']} != initial {initial}")
        if by_status["reserved"] != sale["reserved"] or by_status["paid"] != sale["paid"]:
            problems.append(f"orders say reserved {by_status['reserved']} paid {by_status['paid']}, "
                            f"sale counters say reserved {sale['reserved']} paid {sale['paid']}")
        for user, held in per_user.items():
            if held > sale["per_user_limit"]:
                problems.append(f"user {user} holds {held} > limit {sale['per_user_limit']}")
            if holders.get(user, 0) != held:
                problems.append(f"user {user}: orders say {held}, holder count says {holders.get(user, 0)}")
        return {
            "ok": not problems, "sale": sale_id, "initial": initial, "stock": stock, "reserved": sale["reserved"],
            "paid": sale["paid"], "expired": sale["expired"], "orders": len(orders), "buyers": len(per_user),
            "problems": problems,
        }

    async def audit_coupons(self, room: str, orders: list[dict[str, Any]]) -> list[str]:
        """Coupons spent at checkout: a live order (reserved/paid) holds its coupon in the
        buyer's wallet, an expired one does not; a wallet entry never has more uses than claims."""
        problems: list[str] = []
        wallets: dict[str, dict[str, Any]] = {}
        if self.shop_audit is not None:
            returns = set(await self.store.shop_returns(room, 100_000))
            problems.extend(await self.shop_audit(orders, returns))
        for o in orders:
            if not o.get("coupon") or o.get("shop"):
                continue
            if o["user"] not in wallets:
                wallets[o["user"]] = await self.store.wallet_in(room, o["user"])
            entry = wallets[o["user"]].get(o["coupon"])
            holds = bool(entry) and o["id"] in (entry.get("orders") or {})
            if o["status"] in ("reserved", "paid") and not holds:
                problems.append(f"order {o['id']} is {o['status']} but coupon {o['coupon']} does not list it")
            if o["status"] == "expired" and holds:
                problems.append(f"order {o['id']} expired but coupon {o['coupon']} was not given back")
            if o["amount"] != max(0, o["price"] * o["qty"] - o.get("discount", 0)) or o.get("discount", 0) < 0:
                problems.append(f"order {o['id']}: amount {o['amount']} != price*qty - discount")
        for user, wallet in wallets.items():
            for coupon_id, entry in wallet.items():
                used, count = int(entry.get("used", 0)), int(entry.get("count", 1))
                if used != len(entry.get("orders") or {}) or used > count:
                    problems.append(f"user {user} coupon {coupon_id}: used {used}, orders "
                                    f"{len(entry.get('orders') or {})}, claimed {count}")
        return problems

    # -- what it serves ------------------------------------------------------------------------
    def ops(self) -> dict[str, OpHandler]:
        async def buy(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "buy")
            return await self.buy(ctx.room, op.args["sale"], user, op.args["qty"], op.args["key"],
                                  op.args.get("coupon", ""))

        return {"buy": buy}

    def jobs(self) -> dict[str, JobAction]:
        return {
            "sale_start": lambda i: self.announce(i, "ev_live"),
            "sale_end": lambda i: self.announce(i, "ev_ended"),
        }


def _sales(call: Call) -> Sales:
    return call.services.commerce.kind(Sales)


@API.add("POST", "/rooms/{room}/sales", "Create a flash sale", body=SALE, status=201, tag="commerce")
async def post_sale(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    start_ms = body["start_ms"] if "start_ms" in body else now_ms() + body.get("start_in_s", 0) * 1000
    sale = await _sales(call).create(room, body["product_id"], body["price"], body["stock"],
                                     body.get("per_user_limit", 1), start_ms, body["duration_s"])
    return {"sale": sale}


@API.add("GET", "/rooms/{room}/sales", "List a room's sales", tag="commerce")
async def get_sales(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    sales = _sales(call)
    return {"sales": [sale_view(await sales.sale(s)) for s in await sales.recent(room, 1000)]}


@API.add("GET", "/sales/{sale}", "Read a sale", auth="none", tag="commerce")
async def get_sale(call: Call) -> dict[str, Any]:
    return {"sale": sale_view(await _sales(call).sale(call.params["sale"]))}


@API.add("GET", "/sales/{sale}/audit", "Check the stock invariant of a sale", tag="commerce")
async def get_audit(call: Call) -> dict[str, Any]:
    host_of(call, call.params["sale"])
    return await _sales(call).audit(call.params["sale"])


@API.add("GET", "/orders/{order}", "Read an order", tag="commerce")
async def get_order(call: Call) -> dict[str, Any]:
    host_of(call, call.params["order"])
    return {"order": await _sales(call).order(call.params["order"])}


@API.add("POST", "/orders/{order}/paid", "Payment callback: mark a reserved order paid (idempotent)", tag="commerce")
async def post_paid(call: Call) -> dict[str, Any]:
    host_of(call, call.params["order"])
    order, changed = await _sales(call).pay(call.params["order"])
    return {"order": order, "changed": changed}
