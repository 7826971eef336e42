"""The Redis side of commerce: every command and script call a commerce kind needs.

Commerce kinds (`liveserver/commerce/`) hold the rules (phases, views, error messages);
this module holds the I/O: it builds KEYS in script order, calls the scripts of
`liveserver/lua/`, and reads objects back, returning plain Python values. Nothing
above the engine speaks a Redis command.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Sequence

import orjson

from liveserver.engine.commerce_keys import (
    SHOP_MERCHANTS, CommerceKeys, JobKeys, MerchantKeys, room_of, user_merchants, user_rooms,
)
from liveserver.engine.engine import RoomEngine, decode_entry
from liveserver.engine.transaction import transaction

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@functools.lru_cache(maxsize=1024)
def _buy_keys(room: str, sale_id: str) -> tuple[str, ...]:
    """The sale's KEYS of buy.lua, built once per sale, not once per buy."""
    return tuple(CommerceKeys(room).buy_keys(sale_id))


@functools.lru_cache(maxsize=1024)
def _shop_holds(room: str) -> str:
    return CommerceKeys(room).shop_holds()


@dataclass(frozen=True, slots=True)
class Read:
    """One read of a per-tick refresh: `hget` (a field), `scard` or `hgetall`."""

    op: str
    key: str
    field: str = ""


class CommerceStore:
    def __init__(self, rooms: RoomEngine, order_ttl_s: int) -> None:
        self.rooms = rooms
        self._redis = rooms.redis
        self.scripts = rooms.scripts
        self.order_ttl_ms = order_ttl_s * 1000

    # -- objects ---------------------------------------------------------------------
    async def new_id(self, room: str, kind: str, prefix: str) -> str:
        n = await self._redis.hincrby(CommerceKeys(room).seq(), kind, 1)
        return f"{room}.{prefix}{n}"

    async def save_new(self, key: str, index: str, obj: dict[str, Any], jobs: dict[str, int],
                       sweep_room: str | None = None) -> None:
        """Write a new object, list it in its room's index and schedule its jobs, atomically
        on one Redis. On a Cluster the schedule lives in another slot, so the jobs are
        written first and the object's MULTI second: a job may (after a crash between the
        two) name a missing object, which the scheduler drops; an object never lacks its jobs."""
        layout = self.rooms.layout
        sched = JobKeys.of_room(layout, room_of(obj["id"]) or "")
        if layout.cluster and (jobs or sweep_room is not None):
            first = self._redis.pipeline(transaction=False)
            if jobs:
                first.zadd(sched.due, jobs)
            if sweep_room is not None:
                first.sadd(JobKeys.of_room(layout, sweep_room).sweep_rooms, sweep_room)
            await first.execute()
        pipe = transaction(self._redis)
        pipe.hset(key, mapping={k: str(v) for k, v in obj.items()})
        pipe.zadd(index, {obj["id"]: obj["created_ms"]})
        if not layout.cluster:
            if jobs:
                pipe.zadd(sched.due, jobs)
            if sweep_room is not None:
                pipe.sadd(sched.sweep_rooms, sweep_room)
        await pipe.execute()

    async def recent(self, index: str, count: int = 50) -> list[str]:
        return list(await self._redis.zrange(index, -count, -1))

    async def hash(self, key: str) -> dict[str, str]:
        """An object's hash, read at one moment (a sale's counters are checked together)."""
        return await self._redis.hgetall(key)

    async def hash_pages(self, key: str, count: int = 1000) -> AsyncIterator[dict[str, str]]:
        """A hash that may be big (a room's orders, a sale's buyers, a quiz's voters), read in
        HSCAN pages: one HGETALL of a million orders holds the node's loop for seconds while
        it is parsed and decoded, and every viewer of the node waits. Pages are not one
        snapshot (`hash` is). A field HSCAN returns again (during a rehash) comes again;
        callers that collect into a dict keep it once."""
        cursor = 0
        while True:
            cursor, page = await self._redis.hscan(key, cursor, count=count)
            if page:
                yield page
            if not cursor:
                return

    async def big_hash(self, key: str) -> dict[str, str]:
        """All of a hash that may be big, read in pages (see `hash_pages`)."""
        out: dict[str, str] = {}
        async for page in self.hash_pages(key):
            out.update(page)
        return out

    async def members(self, key: str) -> list[str]:
        return sorted(await self._redis.smembers(key))

    async def read_many(self, reads: Sequence[Read]) -> list[Any]:
        """Many small reads in one round trip (the per-tick refresh of every room)."""
        if not reads:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for r in reads:
            if r.op == "hget":
                pipe.hget(r.key, r.field)
            elif r.op == "scard":
                pipe.scard(r.key)
            elif r.op == "hgetall":
                pipe.hgetall(r.key)
            else:
                raise ValueError(f"unknown read {r.op!r}")
        return await pipe.execute()

    # -- cards and clicks ------------------------------------------------------------------
    async def click(self, room: str, product_id: str, user: str = "") -> None:
        keys = CommerceKeys(room)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(keys.clicks(), product_id, 1)
        if user:  # who clicked (the post-live follow-up: clicked but did not buy)
            pipe.hincrby(keys.sub("clickers"), user, 1)
        await pipe.execute()

    async def clicks(self, room: str) -> dict[str, int]:
        return {k: int(v) for k, v in (await self._redis.hgetall(CommerceKeys(room).clicks())).items()}

    # -- sales and orders --------------------------------------------------------------------
    async def buy(self, room: str, sale_id: str, user: str, qty: int, key: str, coupon: str = "",
                  shop: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = await self.scripts.run(
            "buy", [*_buy_keys(room, sale_id), CommerceKeys(room).claims(user), _shop_holds(room)],
            [user, qty, key, self.order_ttl_ms, room, sale_id, self.rooms.stream_maxlen, coupon,
             _dumps(shop) if shop else ""], durable=True,
        )
        return orjson.loads(raw)  # the hot path of a flash sale: orjson over json

    async def sold_out_facts(self, room: str, sale_id: str, max_holders: int
                             ) -> tuple[int, int, frozenset[str] | None] | None:
        """(end_ms, per_user_limit, holders) of a sale whose stock is 0 (soldout_facts.lua);
        holders is None when over `max_holders`; None when the stock is not 0."""
        keys = CommerceKeys(room)
        reply = await self.scripts.run("soldout_facts", [keys.sale(sale_id), keys.sale_users(sale_id)], [max_holders])
        if not reply:
            return None
        holders = reply[2]
        return int(reply[0]), int(reply[1]), None if holders is None else frozenset(holders)

    async def order(self, room: str, order_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(CommerceKeys(room).order_data(), order_id)
        return json.loads(raw) if raw else None

    async def orders(self, room: str, keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Every order of the room that `keep` keeps (audits: one sale's or group deal's),
        read, decoded and filtered a page at a time."""
        orders: dict[str, dict[str, Any]] = {}
        async for page in self.hash_pages(CommerceKeys(room).order_data()):
            for order_id, raw in page.items():
                order = orjson.loads(raw)
                if keep is None or keep(order):
                    orders[order_id] = order
        return list(orders.values())

    async def pay(self, room: str, order_id: str, sale_id: str) -> dict[str, Any]:
        keys = CommerceKeys(room)
        raw = await self.scripts.run("pay", [keys.order_data(), keys.deadlines(), keys.sale(sale_id), keys.orders],
                                     [order_id], durable=True)
        return json.loads(raw)

    async def due_orders(self, room: str, now: int, limit: int = 500) -> list[str]:
        return list(await self._redis.zrangebyscore(CommerceKeys(room).deadlines(), "-inf", now, start=0, num=limit))

    async def expire(self, room: str, order_id: str) -> bool:
        """Return an unpaid order's units to stock; True when this call expired it."""
        keys = CommerceKeys(room)
        raw = await self._redis.hget(keys.order_data(), order_id)
        if raw is None:
            await self._redis.zrem(keys.deadlines(), order_id)
            return False
        order = json.loads(raw)
        sale_id = order["sale"]
        done = await self.scripts.run(
            "expire",
            [keys.order_data(), keys.deadlines(), keys.sale(sale_id), keys.sale_users(sale_id), keys.orders,
             keys.events, keys.meta, keys.claims(order["user"]), keys.shop_returns()],
            [order_id, self.rooms.stream_maxlen],
        )
        return int(done) == 1

    async def sweep_rooms(self) -> list[str]:
        rooms: set[str] = set()
        for sched in JobKeys.all(self.rooms.layout):
            rooms.update(await self._redis.smembers(sched.sweep_rooms))
        return sorted(rooms)

    async def order_entries(self, room: str) -> AsyncIterator[dict[str, str]]:
        """Every entry of the room's orders stream, oldest first, read in pages (audits)."""
        last = "-"
        key = CommerceKeys(room).orders
        while True:
            entries = await self._redis.xrange(key, min=last, max="+", count=5000)
            if last != "-":
                entries = entries[1:]
            if not entries:
                return
            for _eid, fields in entries:
                yield fields
            last = entries[-1][0]

    async def order_stream_types(self, room: str, sale_id: str) -> dict[str, set[str]]:
        """order id -> the entry types (reserved, paid, expired) the orders stream holds for it."""
        streamed: dict[str, set[str]] = {}
        async for fields in self.order_entries(room):
            if fields.get("sale") == sale_id:
                streamed.setdefault(fields.get("order", ""), set()).add(fields.get("type", ""))
        return streamed

    # -- coupons -------------------------------------------------------------------------
    async def claim(self, room: str, coupon_id: str, user: str) -> dict[str, Any]:
        keys = CommerceKeys(room)
        # Index first: a claim that lands is always listed in the user's wallet.
        await self._redis.sadd(user_rooms(user), room)
        raw = await self.scripts.run("claim", [keys.coupon(coupon_id), keys.coupon_users(coupon_id), keys.claims(user)],
                                     [user, coupon_id])
        return json.loads(raw)

    async def wallet_in(self, room: str, user: str) -> dict[str, dict[str, Any]]:
        """A user's wallet in one room: coupon id -> claim entry."""
        raw = await self._redis.hgetall(CommerceKeys(room).claims(user))
        return {k: json.loads(v) for k, v in raw.items()}

    async def wallet(self, user: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for room in sorted(await self._redis.smembers(user_rooms(user))):
            raw = await self._redis.hgetall(CommerceKeys(room).claims(user))
            out.extend(json.loads(v) for v in raw.values())
        return out

    # -- group buys -----------------------------------------------------------------------
    async def group_join(self, room: str, group_id: str, user: str, name: str, key: str, team: str) -> dict[str, Any]:
        raw = await self.scripts.run("group_join", CommerceKeys(room).group_join_keys(group_id),
                                     [user, name, key, team, room, group_id, self.rooms.stream_maxlen], durable=True)
        return json.loads(raw)

    async def due_teams(self, room: str, now: int, limit: int = 500) -> list[str]:
        return list(await self._redis.zrangebyscore(CommerceKeys(room).group_deadlines(), "-inf", now,
                                                    start=0, num=limit))

    async def close_team(self, room: str, group_id: str, team_id: str) -> bool:
        """Fail a team whose window ended unfilled; True when this call failed it."""
        keys = CommerceKeys(room)
        done = await self.scripts.run(
            "group_close",
            [keys.group(group_id), keys.group_teams(group_id), keys.group_users(group_id), keys.group_deadlines(),
             keys.order_data(), keys.orders, keys.events, keys.meta],
            [team_id, self.rooms.stream_maxlen],
        )
        return int(done) == 1

    async def team(self, room: str, group_id: str, team_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(CommerceKeys(room).group_teams(group_id), team_id)
        return json.loads(raw) if raw else None

    async def teams(self, room: str, group_id: str) -> list[dict[str, Any]]:
        raw = await self._redis.hgetall(CommerceKeys(room).group_teams(group_id))
        return [json.loads(v) for v in raw.values()]

    async def order_stream_group_types(self, room: str, group_id: str) -> dict[str, list[str]]:
        """order id -> the entry types (group_pending, group_confirmed, group_failed) streamed for it, in order."""
        streamed: dict[str, list[str]] = {}
        async for fields in self.order_entries(room):
            if fields.get("group") == group_id:
                streamed.setdefault(fields.get("order", ""), []).append(fields.get("type", ""))
        return streamed

    # -- shop-wide coupons (merchant slot; see shop_hold.lua for the protocol) ---------------
    async def room_merchant(self, room: str) -> str | None:
        return await self._redis.get(CommerceKeys(room).merchant())

    async def set_room_merchant(self, room: str, merchant: str) -> None:
        await self._redis.set(CommerceKeys(room).merchant(), merchant)

    async def shop_issue(self, merchant: str, users: list[str], entry: dict[str, Any]) -> str:
        """A new shop-wide coupon into each user's merchant wallet; returns its id."""
        n = await self._redis.hincrby(MerchantKeys(merchant).seq(), "coupon", 1)
        coupon_id = f"shop:{merchant}.c{n}"
        await self._redis.sadd(SHOP_MERCHANTS, merchant)
        body = {**entry, "coupon_id": coupon_id, "merchant": merchant, "count": 1, "used": 0, "orders": {}, "holds": {}}
        for user in users:
            await self._redis.sadd(user_merchants(user), merchant)  # index first
            await self._redis.hset(MerchantKeys(merchant).wallet(user), coupon_id, _dumps(body))
        return coupon_id

    async def shop_hold(self, merchant: str, user: str, coupon_id: str, hold_id: str, hold_ms: int) -> dict[str, Any]:
        keys = MerchantKeys(merchant)
        raw = await self.scripts.run("shop_hold", [keys.wallet(user), keys.holds()],
                                     [user, coupon_id, hold_id, hold_ms], durable=True)
        return json.loads(raw)

    async def shop_settle(self, merchant: str, mode: str, user: str, coupon_id: str, hold_id: str = "",
                          order_id: str = "", room: str = "") -> int:
        """1 changed, 0 nothing to do, -1 (unuse) the order's hold is not settled yet."""
        keys = MerchantKeys(merchant)
        return int(await self.scripts.run("shop_settle", [keys.wallet(user), keys.holds()],
                                          [mode, user, coupon_id, hold_id, order_id, room], durable=True))

    async def shop_entry(self, merchant: str, user: str, coupon_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(MerchantKeys(merchant).wallet(user), coupon_id)
        return json.loads(raw) if raw else None

    async def shop_fence(self, room: str, hold_id: str) -> str:
        return str(await self.scripts.run("shop_fence", [CommerceKeys(room).shop_holds()], [hold_id]))

    async def shop_merchants(self) -> list[str]:
        return sorted(await self._redis.smembers(SHOP_MERCHANTS))

    async def shop_due_holds(self, merchant: str, now: int, limit: int = 500) -> list[str]:
        return list(await self._redis.zrangebyscore(MerchantKeys(merchant).holds(), "-inf", now, start=0, num=limit))

    async def shop_returns(self, room: str, limit: int = 500) -> list[str]:
        return list(await self._redis.zrange(CommerceKeys(room).shop_returns(), 0, limit - 1))

    async def shop_returned(self, room: str, order_id: str) -> None:
        await self._redis.zrem(CommerceKeys(room).shop_returns(), order_id)

    async def shop_wallet(self, user: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for merchant in sorted(await self._redis.smembers(user_merchants(user))):
            raw = await self._redis.hgetall(MerchantKeys(merchant).wallet(user))
            out.extend(json.loads(v) for v in raw.values())
        return out

    # -- follows --------------------------------------------------------------------------
    async def follow(self, room: str, user: str, name: str, on: bool) -> tuple[int, int]:
        keys = CommerceKeys(room)
        following, followers = await self.scripts.run("follow", [keys.followers(), keys.events, keys.meta],
                                                      [user, name, 1 if on else 0, self.rooms.stream_maxlen])
        return int(following), int(followers)

    async def is_follower(self, room: str, user: str) -> bool:
        return bool(await self._redis.sismember(CommerceKeys(room).followers(), user))

    # -- lotteries -----------------------------------------------------------------------
    async def enter(self, room: str, lottery_id: str, user: str, watched_ms: int = 0, by_keyword: bool = False) -> list[Any]:
        keys = CommerceKeys(room)
        return list(await self.scripts.run("enter", [keys.lottery(lottery_id), keys.entrants(lottery_id), keys.followers()],
                                           [user, watched_ms, "1" if by_keyword else "0"]))

    async def prize_claim(self, room: str, lottery_id: str, user: str, claim: dict[str, Any]) -> list[Any]:
        keys = CommerceKeys(room)
        return list(await self.scripts.run("prize_claim", [keys.lottery(lottery_id), keys.prize_claims(lottery_id)],
                                           [user, _dumps(claim)], durable=True))

    async def add_watch(self, room: str, user: str, ms: int) -> None:
        """A connection ended: its time counts as watched, and the user has been in the room."""
        keys = CommerceKeys(room)
        await self.scripts.run("watch", [keys.watch(), keys.seen()], [user, ms])

    # -- invites ----------------------------------------------------------------------------
    async def set_invite(self, room: str, fields: dict[str, Any]) -> None:
        key = CommerceKeys(room).invite()
        pipe = transaction(self._redis)
        pipe.delete(key)
        pipe.hset(key, mapping={k: str(v) for k, v in fields.items()})
        await pipe.execute()

    async def invite(self, room: str, invitee: str, inviter: str) -> dict[str, Any]:
        keys = CommerceKeys(room)
        await self._redis.sadd(user_rooms(inviter), room)  # index first, as for claims
        raw = await self.scripts.run("invite", [keys.invite(), keys.seen(), keys.invitees(), keys.inviters(),
                                                keys.claims(inviter)], [invitee, inviter, f"{room}.invite", room])
        return json.loads(raw)

    async def watched(self, room: str, user: str) -> int:
        return int(await self._redis.hget(CommerceKeys(room).watch(), user) or 0)

    async def grant_coupon(self, room: str, guard_key: str, users: list[str], coupon_id: str,
                           entry: dict[str, Any], guard: str = "granted") -> int:
        """A coupon into each user's wallet in one script, once per `guard` field of `guard_key`
        (coupon_grant.lua); -1 when that grant already ran."""
        for user in users:  # index first: a granted coupon is always listed in the wallet
            await self._redis.sadd(user_rooms(user), room)
        keys = CommerceKeys(room)
        return int(await self.scripts.run("coupon_grant", [guard_key, *(keys.claims(u) for u in users)],
                                          [coupon_id, _dumps(entry), guard], durable=True))

    async def close_lottery(self, room: str, lottery_id: str) -> list[Any]:
        """[phase, seed, winners, *entrants] frozen at close; [] when there is no such lottery."""
        keys = CommerceKeys(room)
        return list(await self.scripts.run("lottery_close", [keys.lottery(lottery_id), keys.entrants(lottery_id)], []))

    async def store_lottery_result(self, room: str, lottery_id: str, result: dict[str, Any]) -> dict[str, Any]:
        keys = CommerceKeys(room)
        stored = await self.scripts.run("lottery_result", [keys.lottery(lottery_id), keys.events, keys.meta],
                                        [_dumps(result), self.rooms.stream_maxlen])
        return json.loads(stored)

    # -- polls ---------------------------------------------------------------------------
    async def vote(self, room: str, poll_id: str, user: str, option: int) -> list[Any]:
        keys = CommerceKeys(room)
        return list(await self.scripts.run("vote", [keys.poll(poll_id), keys.voters(poll_id), keys.tallies(poll_id)],
                                           [user, option]))

    async def reveal(self, room: str, poll_id: str, correct: int) -> list[Any]:
        return list(await self.scripts.run("quiz_reveal", [CommerceKeys(room).poll(poll_id)], [correct]))

    # -- pins and audience -------------------------------------------------------------------
    async def event_at(self, room: str, offset: str) -> dict[str, Any] | None:
        """One event of the room stream by its offset, or None (never existed or trimmed)."""
        entries = await self._redis.xrange(CommerceKeys(room).events, min=offset, max=offset, count=1)
        return decode_entry(*entries[0]) if entries else None

    async def raise_peak(self, room: str, online: int) -> int:
        return int(await self.scripts.run("peak", [CommerceKeys(room).meta], [online]))

    # -- scheduled jobs ------------------------------------------------------------------
    async def claim_jobs(self, batch: int, lease_ms: int) -> tuple[list[str], int | None]:
        """Claim due jobs of every bucket (one on one Redis; one call per bucket, pipelined, on a
        Cluster): (the jobs, ms until the next waiting job is due, or None when none waits)."""
        calls = [self.scripts.run("jobs_claim", [s.due, s.lease], [batch, lease_ms]) for s in JobKeys.all(self.rooms.layout)]
        claimed: list[str] = []
        due_in: int | None = None
        for reply in await asyncio.gather(*calls):
            now, nxt, *jobs = reply
            claimed.extend(jobs)
            if nxt:
                wait = int(float(nxt)) - int(now)
                due_in = wait if due_in is None else min(due_in, wait)
        return claimed, due_in

    async def job_done(self, job: str) -> None:
        """`job` is `<kind>|<room>|<object id>`: its room names its bucket."""
        room = job.split("|", 2)[1] if job.count("|") >= 2 else ""
        await self._redis.zrem(JobKeys.of_room(self.rooms.layout, room).lease, job)
