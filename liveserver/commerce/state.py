"""`CommerceState`: the commerce part of a room's `state` on one node (card, sales,
coupons, lotteries, polls). Events tell it what exists; once per tick it polls the
counters that change without events (stock, coupons left, entrants, tallies) for the
objects still open, in one pipeline for all rooms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine import Event
from ..hub import LocalRoom
from .keys import CommerceKeys
from .store import CommerceEngine, now_ms, sale_phase, window_phase

RECENT = 20  # objects of each kind loaded when a node opens a room


@dataclass
class RoomCommerce:
    sales: dict[str, dict[str, Any]] = field(default_factory=dict)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    lotteries: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, dict[str, Any]] = field(default_factory=dict)


class CommerceState:
    def __init__(self, store: CommerceEngine) -> None:
        self.store = store
        self.rooms: dict[str, RoomCommerce] = {}
        # Rooms loaded but not yet seen in a tick's room list: a room opened while a tick
        # awaits is missing from that tick's list and must not be dropped as closed.
        self._opening: set[str] = set()

    def live_keywords(self, room: str) -> list[tuple[str, str]]:
        """(lottery id, keyword) of the lotteries open for entry in a room."""
        rc = self.rooms.get(room)
        if rc is None:
            return []
        now = now_ms()
        return [(lid, l["keyword"]) for lid, l in rc.lotteries.items()
                if l.get("keyword") and l.get("phase") == "live" and now < l["end_ms"]]

    # -- StateSource ---------------------------------------------------------------------
    async def load(self, room: str) -> dict[str, Any]:
        rc = self.rooms[room] = RoomCommerce()
        self._opening.add(room)
        store = self.store
        for sale_id in await store.recent(room, "sales", RECENT):
            rc.sales[sale_id] = store.sale_view(await store.sale(sale_id))
        for coupon_id in await store.recent(room, "coupons", RECENT):
            coupon = await store.coupon(coupon_id)
            if "ev_drop" in coupon:  # a scheduled drop stays a surprise until it fires
                rc.coupons[coupon_id] = store.coupon_view(coupon)
        for lottery_id in await store.recent(room, "lotteries", RECENT):
            lottery = await store.lottery(lottery_id)
            view = store.lottery_view(lottery)
            view["entrants"] = len(await store.entrants(lottery_id))
            rc.lotteries[lottery_id] = view
        for poll_id in await store.recent(room, "polls", RECENT):
            poll, tallies = await store.poll(poll_id)
            rc.polls[poll_id] = store.poll_view(poll, tallies)
        state = self._state(rc)
        state["card"] = await store.pinned_card(room)
        return state

    def apply(self, room: LocalRoom, event: Event) -> None:
        kind = event["k"]
        if kind == "card":
            room.state["card"] = event.get("product")
            return
        rc = self.rooms.get(room.name)
        if rc is None:
            return
        if kind == "sale":
            self._merge(rc.sales, event.get("sale"))
        elif kind == "coupon":
            self._merge(rc.coupons, event.get("coupon"))
        elif kind == "lottery":
            self._merge(rc.lotteries, event.get("lottery"))
        elif kind == "lottery_result":
            lottery = rc.lotteries.get(event.get("lottery_id", ""))
            if lottery is not None:
                lottery["phase"] = "drawn"
                lottery["entrants"] = event.get("entrants", lottery.get("entrants", 0))
        elif kind == "poll":
            self._merge(rc.polls, event.get("poll"))
        else:
            return
        room.state.update(self._state(rc))

    async def refresh(self, rooms: list[LocalRoom]) -> None:
        now = now_ms()
        pipe = self.store.redis.pipeline(transaction=False)
        reads: list[tuple[dict[str, Any], str]] = []
        for room in rooms:
            rc = self.rooms.get(room.name)
            if rc is None:
                continue
            keys = CommerceKeys(room.name)
            for sale_id, sale in rc.sales.items():
                if now < sale["end_ms"] + 1000:
                    pipe.hget(keys.sale(sale_id), "stock")
                    reads.append((sale, "stock"))
            for coupon_id, coupon in rc.coupons.items():
                if now < coupon["end_ms"] + 1000:
                    pipe.hget(keys.coupon(coupon_id), "left")
                    reads.append((coupon, "left"))
            for lottery_id, lottery in rc.lotteries.items():
                if lottery.get("phase") == "live":
                    pipe.scard(keys.entrants(lottery_id))
                    reads.append((lottery, "entrants"))
            for poll_id, poll in rc.polls.items():
                if now < poll["end_ms"] + 1000:
                    pipe.hgetall(keys.tallies(poll_id))
                    reads.append((poll, "tallies"))
        if reads:
            for (obj, name), value in zip(reads, await pipe.execute()):
                if name == "tallies":
                    obj["tallies"] = [int(value.get(str(i), 0)) for i in range(len(obj["options"]))]
                elif value is not None:
                    obj[name] = int(value)
        for room in rooms:
            rc = self.rooms.get(room.name)
            if rc is not None:
                for sale in rc.sales.values():
                    sale["phase"] = sale_phase(sale, now)
                for obj in (*rc.coupons.values(), *rc.polls.values()):
                    obj["phase"] = window_phase(obj, now)
                room.state.update(self._state(rc))
        names = {r.name for r in rooms}
        self._opening -= names
        for name in list(self.rooms):
            if name not in names and name not in self._opening:
                del self.rooms[name]  # the hub dropped the room

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _merge(objects: dict[str, dict[str, Any]], update: Any) -> None:
        if not isinstance(update, dict) or "id" not in update:
            return
        objects.setdefault(update["id"], {}).update(update)

    @staticmethod
    def _state(rc: RoomCommerce) -> dict[str, Any]:
        return {
            "sales": {i: {k: s.get(k) for k in ("phase", "stock", "initial", "price", "start_ms", "end_ms",
                                                    "title", "product_id", "per_user_limit")}
                      for i, s in rc.sales.items() if "start_ms" in s},
            "coupons": {i: {"left": c.get("left"), "phase": c.get("phase"), "quantity": c.get("quantity"),
                            "title": c.get("title"), "amount": c.get("amount"), "min_spend": c.get("min_spend"),
                            "start_ms": c.get("start_ms"), "end_ms": c.get("end_ms")}
                        for i, c in rc.coupons.items() if "start_ms" in c},
            "lotteries": {i: {"phase": l.get("phase"), "entrants": l.get("entrants", 0), "prize": l.get("prize"),
                              "keyword": l.get("keyword"), "winners": l.get("winners"), "end_ms": l.get("end_ms"),
                              "commit": l.get("commit")}
                          for i, l in rc.lotteries.items() if "end_ms" in l},
            "polls": {i: {"tallies": p.get("tallies", []), "phase": p.get("phase"), "question": p.get("question"),
                          "options": p.get("options"), "end_ms": p.get("end_ms")}
                      for i, p in rc.polls.items() if "end_ms" in p},
        }
