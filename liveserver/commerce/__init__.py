"""Commerce: one module per kind (cards, sales + orders, coupons, lotteries, polls), each a
`CommerceKind` (see kind.py); `Commerce` puts them together for one node or worker."""

from __future__ import annotations

from typing import TypeVar

from liveserver.commerce import stats as _stats  # noqa: F401  (registers its routes)
from liveserver.commerce.cards import Cards
from liveserver.commerce.coupons import Coupons
from liveserver.commerce.follows import Follows
from liveserver.commerce.groups import Groups
from liveserver.commerce.invites import Invites
from liveserver.commerce.kind import CommerceKind, JobAction
from liveserver.commerce.lotteries import Lotteries
from liveserver.commerce.pins import Pins
from liveserver.commerce.polls import Polls
from liveserver.commerce.sales import Sales
from liveserver.commerce.scheduler import Scheduler
from liveserver.commerce.shop import ShopCoupons
from liveserver.commerce.state import CommerceState
from liveserver.core.ops import DanmakuListener, LeaveListener, OpHandler, OrderEntryHandler
from liveserver.engine.commerce_store import CommerceStore
from liveserver.engine.engine import RoomEngine

KINDS: tuple[type[CommerceKind], ...] = (Cards, Sales, Coupons, Lotteries, Polls, Groups, Follows, Invites, Pins,
                                          ShopCoupons)

K = TypeVar("K", bound=CommerceKind)


class Commerce:
    def __init__(self, rooms: RoomEngine, order_ttl_s: int) -> None:
        self.store = CommerceStore(rooms, order_ttl_s)
        self.kinds = [cls(self.store) for cls in KINDS]
        self._by_type = {type(k): k for k in self.kinds}
        self.state = CommerceState(self.store, self.kinds)  # the hub's state source
        sales, shop = self.kind(Sales), self.kind(ShopCoupons)
        sales.shop_checkout, sales.shop_audit = shop.checkout, shop.audit_orders

    def kind(self, cls: type[K]) -> K:
        return self._by_type[cls]  # type: ignore[return-value]

    def ops(self) -> dict[str, OpHandler]:
        handlers: dict[str, OpHandler] = {}
        for kind in self.kinds:
            handlers.update(kind.ops())
        return handlers

    def danmaku_listeners(self) -> list[DanmakuListener]:
        return [listener for kind in self.kinds if (listener := kind.danmaku_listener()) is not None]

    def leave_listeners(self) -> list[LeaveListener]:
        return [listener for kind in self.kinds if (listener := kind.leave_listener()) is not None]

    def order_entry_handlers(self) -> dict[str, OrderEntryHandler]:
        handlers: dict[str, OrderEntryHandler] = {}
        for kind in self.kinds:
            handlers.update(kind.order_entry_handlers())
        return handlers

    def jobs(self) -> dict[str, JobAction]:
        actions: dict[str, JobAction] = {}
        for kind in self.kinds:
            actions.update(kind.jobs())
        return actions

    def scheduler(self) -> Scheduler:
        return Scheduler(self.store, self.jobs(), self.sweep)

    async def sweep(self) -> int:
        """Deadlines that run per room rather than as jobs: unpaid orders, group-buy team windows."""
        return (await self.kind(Sales).sweep() + await self.kind(Groups).sweep()
                + await self.kind(ShopCoupons).sweep())
