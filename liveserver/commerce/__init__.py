"""Commerce: product cards, flash sales, orders, coupons, lotteries, polls."""

from __future__ import annotations

from ..services import Services
from .ops import handlers
from .scheduler import Scheduler
from .state import CommerceState
from .store import CommerceEngine


def install(services: Services, scheduler: bool = True) -> tuple[CommerceEngine, Scheduler | None]:
    """Register commerce op handlers and the state source on a node; start its scheduler."""
    store = CommerceEngine(services.engine, services.settings.order_ttl_s)
    state = CommerceState(store)
    services.hub.sources.append(state)
    services.op_handlers.update(handlers(store, state))
    sched = Scheduler(store) if scheduler else None
    return store, sched
