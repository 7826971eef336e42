"""`SoldOutGate`: a node remembers that a flash sale's stock reached 0, so the rush of late
buyers is answered `sold_out` here instead of each one costing a buy.lua call.

In a rush nearly every buyer is late: 20,000 presses for 1,000 units leave 19,000 that can
only be refused, and each refusal through Redis costs the node about as much CPU as a sale
(script call, pipeline, reply parse) and keeps a coroutine alive across the round trip.

The gate gives exactly the reply buy.lua would have given, or lets the buy through:
- It closes when the node sees the stock at 0: a `sold_out` buy reply with stock 0, or the
  sale's `sold_out` event (written by the buy that emptied the stock).
- It then reads, in one atomic script (soldout_facts.lua), that the stock is still 0, the
  sale's end and per-user limit, and every user who ever bought. Until that read is back,
  and when more than `MAX_HOLDERS` users bought, buys go to Redis as before.
- It refuses only a buyer who never bought (so no first reply is stored for any of their
  keys), asking no more than the per-user limit (else buy.lua says `limit_reached`), with no
  shop-wide coupon (shop_hold.lua runs first and may refuse otherwise; a room coupon is
  checked after the stock in buy.lua, so it does not change the answer), and not within
  `END_MARGIN_MS` of the sale's end (the node's clock is not Redis's).
- It opens when stock may have come back: the sale's `live` event (expire.lua writes it in
  the same step that returns units to an empty stock), or a periodic stock read above 0.

Until the first refusal comes back the gate is open, and in a rush a node reads buys far
faster than their replies come back (the replies wait behind the frames still arriving):
measured, every one of a node's 10,000 buys was sent to Redis before the first `sold_out`
reply was read. So the gate also paces: a node keeps no more of a sale's buys in flight
than the stock Redis last reported (at least `MIN_IN_FLIGHT`), since more could not all
succeed; the others wait here, and are refused at once when the gate closes. Waiting
changes when a buy reaches Redis, never its answer.

What it trades: between a unit coming back in Redis and its event reaching this node
(the stream's delivery delay, milliseconds), this node still answers `sold_out`, as if the
buyer had pressed a moment earlier; nothing is sold twice and no order is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable

from liveserver.commerce.common import now_ms
from liveserver.engine.commerce_store import CommerceStore

log = logging.getLogger("liveserver.soldout")

MAX_HOLDERS = 20_000  # users a node keeps per sold-out sale (a flash sale has hundreds to thousands)
END_MARGIN_MS = 2_000  # near the end, Redis decides between `sold_out` and `ended`
MIN_IN_FLIGHT = 64  # buys of one sale in flight however low the stock (a stale 0 must not stall)
MAX_SALES = 256  # sold-out sales remembered at once (the oldest go first; ended ones go at once)


@dataclass(frozen=True, slots=True)
class _Closed:
    end_ms: int
    limit: int
    holders: frozenset[str] | None  # None: too many to keep, every buy goes to Redis


class _Reading:
    """The gate of one sale while its facts are read; identity tells one close from the next."""

    __slots__ = ()


class _Flow:
    """A sale's buys on their way to Redis from this node, and those waiting to go."""

    __slots__ = ("in_flight", "stock", "waiting")

    def __init__(self, stock: int | None) -> None:
        self.in_flight = 0
        self.stock = stock  # as Redis last reported it; None: unknown, no pacing
        self.waiting: deque[asyncio.Future[None]] = deque()

    def room(self) -> bool:
        return self.stock is None or self.in_flight < max(self.stock, MIN_IN_FLIGHT)


class SoldOutGate:
    def __init__(self, store: CommerceStore) -> None:
        self._store = store
        self._sales: dict[str, _Closed | _Reading] = {}
        self._flows: dict[str, _Flow] = {}
        self._reads: set[asyncio.Task[None]] = set()
        self.on_refuse: Callable[[], None] = lambda: None  # set by the app: a metrics counter

    def refuses(self, sale_id: str, user: str, qty: int, now_ms: int) -> bool:
        """True when buy.lua would answer this buy `sold_out` (see the module docstring)."""
        closed = self._sales.get(sale_id)
        if type(closed) is not _Closed or closed.holders is None:
            return False
        if user in closed.holders or qty > closed.limit or now_ms + END_MARGIN_MS >= closed.end_ms:
            return False
        self.on_refuse()
        return True

    async def admit(self, sale_id: str, stock: int | None) -> None:
        """Wait for a turn to send a buy of this sale to Redis (`stock`: the node's last
        known stock, if it has one); every admitted buy must call `done`."""
        flow = self._flows.get(sale_id)
        if flow is None:
            flow = self._flows[sale_id] = _Flow(stock)
        if flow.room() and not flow.waiting:
            flow.in_flight += 1
            return
        turn = asyncio.get_running_loop().create_future()
        flow.waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a turn, then abandoned it
                self.done(sale_id, None)
            raise

    def done(self, sale_id: str, stock: int | None) -> None:
        """An admitted buy is answered (`stock`: what Redis said is left, if it said)."""
        flow = self._flows.get(sale_id)
        if flow is None:
            return
        flow.in_flight -= 1
        if stock is not None:
            flow.stock = stock
        self._release(sale_id, flow)

    def _release(self, sale_id: str, flow: _Flow) -> None:
        closed = sale_id in self._sales and type(self._sales[sale_id]) is _Closed
        while flow.waiting and (closed or flow.room()):
            turn = flow.waiting.popleft()
            if not turn.done():  # a waiter whose connection closed is skipped
                flow.in_flight += 1
                turn.set_result(None)
        if not flow.in_flight and not flow.waiting:
            del self._flows[sale_id]

    def sold_out(self, room: str, sale_id: str) -> None:
        """The node saw this sale's stock at 0: read what the gate needs, in the background."""
        if sale_id in self._sales:
            return
        self._forget_old(now_ms())
        reading = self._sales[sale_id] = _Reading()
        task = asyncio.get_running_loop().create_task(self._read(room, sale_id, reading))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    def restocked(self, sale_id: str) -> None:
        """Units may be back (or the sale is over): every buy goes to Redis again."""
        self._sales.pop(sale_id, None)

    def _forget_old(self, now: int) -> None:
        """Ended sales, and beyond MAX_SALES the oldest: a node may outlive many rooms, and
        a room this node stopped serving never tells the gate its sales ended."""
        for sale_id in [s for s, c in self._sales.items() if type(c) is _Closed and c.end_ms <= now]:
            del self._sales[sale_id]
        while len(self._sales) >= MAX_SALES:
            del self._sales[next(iter(self._sales))]

    def closed(self) -> int:
        """How many sales this node answers `sold_out` for by itself now."""
        return sum(1 for c in self._sales.values() if type(c) is _Closed and c.holders is not None)

    async def _read(self, room: str, sale_id: str, reading: _Reading) -> None:
        try:
            facts = await self._store.sold_out_facts(room, sale_id, MAX_HOLDERS)
        except Exception as exc:  # Redis away: the buys themselves will say so
            log.debug("sold-out facts of %s: %s", sale_id, exc)
            facts = None
        if self._sales.get(sale_id) is not reading:
            return  # reopened while reading: this read may predate a buy of a returned unit
        if facts is None:
            del self._sales[sale_id]  # stock already back (or Redis away): nothing to remember
        else:  # with too many holders, remembered as closed anyway so it is not read again
            self._sales[sale_id] = _Closed(facts[0], facts[1], facts[2])
            flow = self._flows.get(sale_id)
            if flow is not None:
                self._release(sale_id, flow)  # the waiting buyers learn at once
