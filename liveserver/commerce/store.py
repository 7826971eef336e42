"""The commerce engine: sales, orders, coupons, lotteries and polls in Redis.

Every scarce thing moves inside one Lua script (liveserver/lua/*.lua); this module
builds the KEYS, turns replies into Python values, and raises OpError with the
documented code when a script says no.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from protocol import ErrorCode

from ..engine import RoomEngine
from ..errors import OpError
from . import lottery_verify
from .keys import JOBS_DUE, SWEEP_ROOMS, CommerceKeys, room_of, user_rooms

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

SALE_INT_FIELDS = ("price", "initial", "stock", "reserved", "paid", "expired", "paid_cents",
                   "per_user_limit", "start_ms", "end_ms", "created_ms")
COUPON_INT_FIELDS = ("amount", "min_spend", "quantity", "left", "per_user", "start_ms", "end_ms", "created_ms")
LOTTERY_INT_FIELDS = ("winners", "start_ms", "end_ms", "created_ms")
POLL_INT_FIELDS = ("options", "start_ms", "end_ms", "created_ms")


def now_ms() -> int:
    return int(time.time() * 1000)


def _ints(raw: dict[str, str], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = dict(raw)
    for f in fields:
        if f in out:
            out[f] = int(out[f])
    return out


def sale_phase(sale: dict[str, Any], now: int) -> str:
    if now < sale["start_ms"]:
        return "scheduled"
    if now >= sale["end_ms"]:
        return "ended"
    return "sold_out" if sale["stock"] <= 0 else "live"


def window_phase(obj: dict[str, Any], now: int) -> str:
    if now < obj["start_ms"]:
        return "scheduled"
    return "ended" if now >= obj["end_ms"] else "live"


def job(kind: str, room: str, object_id: str) -> str:
    return f"{kind}|{room}|{object_id}"


class CommerceEngine:
    def __init__(self, rooms: RoomEngine, order_ttl_s: int) -> None:
        self.rooms = rooms
        self.redis = rooms.redis
        self.scripts = rooms.scripts
        self.order_ttl_ms = order_ttl_s * 1000

    # -- ids and schedules -------------------------------------------------------------
    async def _new_id(self, room: str, kind: str, prefix: str) -> str:
        n = await self.redis.hincrby(CommerceKeys(room).seq(), kind, 1)
        return f"{room}.{prefix}{n}"

    async def _save_new(self, key: str, index: str, obj: dict[str, Any], jobs: dict[str, int],
                        sweep_room: str | None = None) -> None:
        """Write a new object, list it in its room's index and schedule its jobs, atomically."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={k: str(v) for k, v in obj.items()})
        pipe.zadd(index, {obj["id"]: obj["created_ms"]})
        if jobs:
            pipe.zadd(JOBS_DUE, jobs)
        if sweep_room is not None:
            pipe.sadd(SWEEP_ROOMS, sweep_room)
        await pipe.execute()

    async def recent(self, room: str, kind: str, count: int = 50) -> list[str]:
        return list(await self.redis.zrange(CommerceKeys(room).index(kind), -count, -1))

    # -- cards ---------------------------------------------------------------------------
    async def push_card(self, room: str, product_id: str) -> tuple[dict[str, Any], str]:
        product = await self.rooms.product(room, product_id)
        if product is None:
            raise OpError(ErrorCode.NOT_FOUND, f"no product {product_id!r} in room {room!r}")
        published = await self.rooms.publish(room, "card", {"product": product}, pins={"card": _dumps(product)})
        assert published is not None
        return product, published[0]

    async def pinned_card(self, room: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(CommerceKeys(room).meta, "card")
        return json.loads(raw) if raw else None

    async def click(self, room: str, product_id: str) -> None:
        await self.redis.hincrby(CommerceKeys(room).clicks(), product_id, 1)

    # -- sales ---------------------------------------------------------------------------
    async def create_sale(self, room: str, product_id: str, price: int, stock: int, per_user_limit: int,
                          start_ms: int, duration_s: int) -> dict[str, Any]:
        product = await self.rooms.product(room, product_id)
        if product is None:
            raise OpError(ErrorCode.NOT_FOUND, f"no product {product_id!r} in room {room!r}")
        sale_id = await self._new_id(room, "sale", "s")
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
        await self._save_new(keys.sale(sale_id), keys.index("sales"), sale, jobs, sweep_room=room)
        view = self.sale_view(sale, created)
        await self.rooms.publish(room, "sale", {"sale": view})
        return view

    def sale_view(self, sale: dict[str, Any], now: int | None = None) -> dict[str, Any]:
        keep = ("id", "room", "product_id", "title", "image", "price", "initial", "stock", "per_user_limit",
                "start_ms", "end_ms")
        view = {k: sale[k] for k in keep if k in sale}
        view["phase"] = sale_phase(sale, now if now is not None else now_ms())
        return view

    async def _load(self, what: str, object_id: str, key: Callable[[CommerceKeys, str], str],
                    int_fields: tuple[str, ...]) -> dict[str, Any]:
        """An object's hash by id (its room is in the id), numbers as ints; not_found if none."""
        room = room_of(object_id)
        raw = await self.redis.hgetall(key(CommerceKeys(room), object_id)) if room else None
        if not raw:
            raise OpError(ErrorCode.NOT_FOUND, f"no {what} {object_id!r}")
        return _ints(raw, int_fields)

    async def sale(self, sale_id: str) -> dict[str, Any]:
        return await self._load("sale", sale_id, CommerceKeys.sale, SALE_INT_FIELDS)

    async def announce_sale(self, sale_id: str, flag: str) -> None:
        """Scheduled phase change (start/end): one `sale` event, however many nodes run it."""
        sale = await self.sale(sale_id)
        keys = CommerceKeys(sale["room"])
        await self.rooms.publish(sale["room"], "sale", {"sale": self.sale_view(sale)}, once=(keys.sale(sale_id), flag))

    async def buy(self, room: str, sale_id: str, user: str, qty: int, key: str) -> dict[str, Any]:
        if room_of(sale_id) != room:
            raise OpError(ErrorCode.NOT_FOUND, f"no sale {sale_id!r} in this room")
        raw = await self.scripts.run(
            "buy",
            CommerceKeys(room).buy_keys(sale_id),
            [user, qty, key, self.order_ttl_ms, room, sale_id, self.rooms.stream_maxlen],
            durable=True,
        )
        reply = json.loads(raw)
        if not reply.pop("ok"):
            code = reply.pop("code")
            raise OpError(ErrorCode(code), _BUY_MESSAGES[code], **reply)
        return reply

    # -- orders --------------------------------------------------------------------------
    async def order(self, order_id: str) -> dict[str, Any]:
        room = room_of(order_id)
        raw = await self.redis.hget(CommerceKeys(room).order_data(), order_id) if room else None
        if not raw:
            raise OpError(ErrorCode.NOT_FOUND, f"no order {order_id!r}")
        return json.loads(raw)

    async def pay(self, order_id: str) -> tuple[dict[str, Any], bool]:
        order = await self.order(order_id)
        room = order["room"]
        keys = CommerceKeys(room)
        raw = await self.scripts.run("pay", [keys.order_data(), keys.deadlines(), keys.sale(order["sale"]), keys.orders],
                                     [order_id], durable=True)
        reply = json.loads(raw)
        if not reply["ok"]:
            if reply["code"] == "ended":
                raise OpError(ErrorCode.ENDED, "the order expired before it was paid; its units went back to stock",
                              order=reply.get("order"))
            raise OpError(ErrorCode.NOT_FOUND, f"no order {order_id!r}")
        return reply["order"], bool(reply["changed"])

    async def due_orders(self, room: str, now: int, limit: int = 500) -> list[str]:
        return list(await self.redis.zrangebyscore(CommerceKeys(room).deadlines(), "-inf", now, start=0, num=limit))

    async def expire(self, room: str, order_id: str) -> bool:
        keys = CommerceKeys(room)
        raw = await self.redis.hget(keys.order_data(), order_id)
        if raw is None:
            await self.redis.zrem(keys.deadlines(), order_id)
            return False
        sale_id = json.loads(raw)["sale"]
        done = await self.scripts.run(
            "expire",
            [keys.order_data(), keys.deadlines(), keys.sale(sale_id), keys.sale_users(sale_id), keys.orders,
             keys.events, keys.meta],
            [order_id, self.rooms.stream_maxlen],
        )
        return int(done) == 1

    async def sweep_rooms(self) -> list[str]:
        return sorted(await self.redis.smembers(SWEEP_ROOMS))

    async def audit(self, sale_id: str) -> dict[str, Any]:
        """Check the stock invariant of one sale against every order and the orders stream."""
        sale = await self.sale(sale_id)
        room = sale["room"]
        keys = CommerceKeys(room)
        orders = [json.loads(v) for v in (await self.redis.hgetall(keys.order_data())).values()]
        orders = [o for o in orders if o["sale"] == sale_id]
        holders = {u: int(n) for u, n in (await self.redis.hgetall(keys.sale_users(sale_id))).items()}
        streamed: dict[str, set[str]] = {}
        last = "-"
        while True:
            entries = await self.redis.xrange(keys.orders, min=last, max="+", count=5000)
            if last != "-":
                entries = entries[1:]
            if not entries:
                break
            for _eid, fields in entries:
                if fields.get("sale") == sale_id:
                    streamed.setdefault(fields.get("order", ""), set()).add(fields.get("type", ""))
            last = entries[-1][0]
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

    # -- coupons ---------------------------------------------------------------------------
    async def create_coupon(self, room: str, title: str, amount: int, min_spend: int, quantity: int,
                            per_user: int, start_ms: int, duration_s: int) -> dict[str, Any]:
        coupon_id = await self._new_id(room, "coupon", "c")
        created = now_ms()
        coupon = {
            "id": coupon_id, "room": room, "title": title, "amount": amount, "min_spend": min_spend,
            "quantity": quantity, "left": quantity, "per_user": per_user, "start_ms": start_ms,
            "end_ms": start_ms + duration_s * 1000, "created_ms": created,
        }
        keys = CommerceKeys(room)
        await self._save_new(keys.coupon(coupon_id), keys.index("coupons"), coupon,
                             {job("coupon_drop", room, coupon_id): start_ms,
                              job("coupon_end", room, coupon_id): coupon["end_ms"]})
        return self.coupon_view(coupon, created)

    def coupon_view(self, coupon: dict[str, Any], now: int | None = None) -> dict[str, Any]:
        keep = ("id", "room", "title", "amount", "min_spend", "quantity", "left", "per_user", "start_ms", "end_ms")
        view = {k: coupon[k] for k in keep if k in coupon}
        view["phase"] = window_phase(coupon, now if now is not None else now_ms())
        return view

    async def coupon(self, coupon_id: str) -> dict[str, Any]:
        return await self._load("coupon", coupon_id, CommerceKeys.coupon, COUPON_INT_FIELDS)

    async def announce_coupon(self, coupon_id: str, flag: str) -> None:
        coupon = await self.coupon(coupon_id)
        keys = CommerceKeys(coupon["room"])
        await self.rooms.publish(coupon["room"], "coupon", {"coupon": self.coupon_view(coupon)},
                                 once=(keys.coupon(coupon_id), flag))

    async def claim(self, room: str, coupon_id: str, user: str) -> dict[str, Any]:
        if room_of(coupon_id) != room:
            raise OpError(ErrorCode.NOT_FOUND, f"no coupon {coupon_id!r} in this room")
        keys = CommerceKeys(room)
        # Index first: a claim that lands is always listed in the user's wallet.
        await self.redis.sadd(user_rooms(user), room)
        raw = await self.scripts.run("claim", [keys.coupon(coupon_id), keys.coupon_users(coupon_id), keys.claims(user)],
                                     [user, coupon_id])
        reply = json.loads(raw)
        if not reply.pop("ok"):
            code = reply.pop("code")
            raise OpError(ErrorCode(code), _CLAIM_MESSAGES[code], **reply)
        return reply

    async def user_coupons(self, user: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for room in sorted(await self.redis.smembers(user_rooms(user))):
            raw = await self.redis.hgetall(CommerceKeys(room).claims(user))
            out.extend(json.loads(v) for v in raw.values())
        return sorted(out, key=lambda c: c["claimed_ms"])

    # -- lotteries ---------------------------------------------------------------------------
    async def create_lottery(self, room: str, prize: str, winners: int, keyword: str | None,
                             duration_s: int) -> dict[str, Any]:
        lottery_id = await self._new_id(room, "lottery", "l")
        created = now_ms()
        seed = lottery_verify.new_seed()
        lottery = {
            "id": lottery_id, "room": room, "prize": prize, "winners": winners, "keyword": keyword or "",
            "commit": lottery_verify.commit_of(seed), "seed": seed, "phase": "live",
            "start_ms": created, "end_ms": created + duration_s * 1000, "created_ms": created,
        }
        keys = CommerceKeys(room)
        await self._save_new(keys.lottery(lottery_id), keys.index("lotteries"), lottery,
                             {job("lottery_draw", room, lottery_id): lottery["end_ms"]})
        view = self.lottery_view(lottery)
        await self.rooms.publish(room, "lottery", {"lottery": view})
        return view

    @staticmethod
    def lottery_view(lottery: dict[str, Any]) -> dict[str, Any]:
        keep = ("id", "room", "prize", "winners", "keyword", "commit", "phase", "start_ms", "end_ms")
        return {k: lottery[k] for k in keep if k in lottery}  # never the seed before the draw

    async def lottery(self, lottery_id: str) -> dict[str, Any]:
        return await self._load("lottery", lottery_id, CommerceKeys.lottery, LOTTERY_INT_FIELDS)

    async def enter(self, room: str, lottery_id: str, user: str) -> dict[str, Any]:
        if room_of(lottery_id) != room:
            raise OpError(ErrorCode.NOT_FOUND, f"no lottery {lottery_id!r} in this room")
        keys = CommerceKeys(room)
        reply = await self.scripts.run("enter", [keys.lottery(lottery_id), keys.entrants(lottery_id)], [user])
        if int(reply[0]) == 0:
            code = str(reply[1])
            raise OpError(ErrorCode(code), {"not_found": "no such lottery", "ended": "the lottery is closed",
                                            "not_started": "the lottery has not started"}[code])
        return {"lottery": lottery_id, "entrants": int(reply[1]), "new": bool(int(reply[2]))}

    async def entrants(self, lottery_id: str) -> list[str]:
        room = room_of(lottery_id) or ""
        return sorted(await self.redis.smembers(CommerceKeys(room).entrants(lottery_id)))

    async def draw(self, lottery_id: str) -> dict[str, Any]:
        """Close entry, pick winners from the frozen entrants, publish once. Idempotent."""
        room = room_of(lottery_id)
        if room is None:
            raise OpError(ErrorCode.NOT_FOUND, f"no lottery {lottery_id!r}")
        keys = CommerceKeys(room)
        closed = await self.scripts.run("lottery_close", [keys.lottery(lottery_id), keys.entrants(lottery_id)], [])
        if not closed:
            raise OpError(ErrorCode.NOT_FOUND, f"no lottery {lottery_id!r}")
        _phase, seed, winners_n, *entrants = closed
        result = {
            "lottery_id": lottery_id, "winners": lottery_verify.draw(seed, entrants, int(winners_n)),
            "seed": seed, "commit": lottery_verify.commit_of(seed), "entrants": len(entrants),
        }
        stored = await self.scripts.run("lottery_result", [keys.lottery(lottery_id), keys.events, keys.meta],
                                        [_dumps(result), self.rooms.stream_maxlen])
        return json.loads(stored)

    # -- polls ---------------------------------------------------------------------------
    async def create_poll(self, room: str, question: str, options: list[str], duration_s: int) -> dict[str, Any]:
        poll_id = await self._new_id(room, "poll", "p")
        created = now_ms()
        poll = {
            "id": poll_id, "room": room, "question": question, "options": len(options),
            "labels": _dumps(options), "start_ms": created, "end_ms": created + duration_s * 1000,
            "created_ms": created,
        }
        keys = CommerceKeys(room)
        await self._save_new(keys.poll(poll_id), keys.index("polls"), poll,
                             {job("poll_end", room, poll_id): poll["end_ms"]})
        view = self.poll_view(poll, [0] * len(options), created)
        await self.rooms.publish(room, "poll", {"poll": view})
        return view

    @staticmethod
    def poll_view(poll: dict[str, Any], tallies: list[int], now: int | None = None) -> dict[str, Any]:
        labels = poll["labels"] if isinstance(poll["labels"], list) else json.loads(poll["labels"])
        return {
            "id": poll["id"], "room": poll["room"], "question": poll["question"], "options": labels,
            "tallies": tallies, "start_ms": poll["start_ms"], "end_ms": poll["end_ms"],
            "phase": window_phase(poll, now if now is not None else now_ms()),
        }

    async def poll(self, poll_id: str) -> tuple[dict[str, Any], list[int]]:
        poll = await self._load("poll", poll_id, CommerceKeys.poll, POLL_INT_FIELDS)
        counts = await self.redis.hgetall(CommerceKeys(poll["room"]).tallies(poll_id))
        return poll, [int(counts.get(str(i), 0)) for i in range(poll["options"])]

    async def announce_poll_end(self, poll_id: str) -> None:
        poll, tallies = await self.poll(poll_id)
        keys = CommerceKeys(poll["room"])
        await self.rooms.publish(poll["room"], "poll", {"poll": self.poll_view(poll, tallies)},
                                 once=(keys.poll(poll_id), "ev_ended"))

    async def vote(self, room: str, poll_id: str, user: str, option: int) -> dict[str, Any]:
        if room_of(poll_id) != room:
            raise OpError(ErrorCode.NOT_FOUND, f"no poll {poll_id!r} in this room")
        keys = CommerceKeys(room)
        reply = await self.scripts.run("vote", [keys.poll(poll_id), keys.voters(poll_id), keys.tallies(poll_id)],
                                       [user, option])
        if int(reply[0]) == 0:
            code = str(reply[1])
            if code == "bad_option":
                raise OpError(ErrorCode.BAD_REQUEST, "vote: no such option")
            raise OpError(ErrorCode(code), _VOTE_MESSAGES[code])
        return {"poll": poll_id, "tallies": [int(x) for x in reply[1:]]}

    # -- stats -------------------------------------------------------------------------------
    async def stats(self, room: str) -> dict[str, Any]:
        keys = CommerceKeys(room)
        likes, online = await self.rooms.counters(room)
        meta = await self.rooms.room_meta(room) or {}
        clicks = {k: int(v) for k, v in (await self.redis.hgetall(keys.clicks())).items()}
        sales = []
        reserved_cents = gmv = orders_reserved = orders_paid = 0
        for sale_id in await self.recent(room, "sales", 1000):
            s = await self.sale(sale_id)
            sales.append({"id": sale_id, "title": s["title"], "price": s["price"], "initial": s["initial"],
                          "stock": s["stock"], "reserved": s["reserved"], "paid": s["paid"], "expired": s["expired"],
                          "paid_cents": s["paid_cents"], "phase": sale_phase(s, now_ms())})
            gmv += s["paid_cents"]
            reserved_cents += s["reserved"] * s["price"]
            orders_reserved += s["reserved"]
            orders_paid += s["paid"]
        return {
            "room": room, "ts": now_ms(), "online": online, "likes": likes,
            "danmaku": int(meta.get("n_danmaku", 0)), "events": {k[2:]: int(v) for k, v in meta.items() if k.startswith("n_")},
            "clicks": clicks, "units_reserved": orders_reserved, "units_paid": orders_paid,
            "orders_reserved": orders_reserved, "orders_paid": orders_paid,
            "reserved_cents": reserved_cents, "gmv_cents": gmv, "sales": sales,
        }


_BUY_MESSAGES = {
    "not_found": "no such sale",
    "not_started": "the sale has not started yet",
    "ended": "the sale has ended",
    "sold_out": "sold out",
    "limit_reached": "you have reached the per-user limit for this sale",
}
_CLAIM_MESSAGES = {
    "not_found": "no such coupon",
    "not_started": "the coupon drop has not started yet",
    "ended": "the coupon drop has ended",
    "sold_out": "all coupons are gone",
    "already_claimed": "already claimed",
}
_VOTE_MESSAGES = {
    "not_found": "no such poll",
    "not_started": "the poll has not started",
    "ended": "the poll has ended",
    "already_claimed": "you already voted in this poll",
}
