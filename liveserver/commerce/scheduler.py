"""Scheduled work that must happen once across all nodes and survive restarts:
sale start/end, coupon drops, lottery draws, poll ends (jobs), and unpaid-order expiry
(the sweeper). Every node runs both loops (and `liveserver worker` can run them alone);
claiming is atomic in Redis and every effect is an idempotent script."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError

from ..tasks import cancel_and_wait
from .keys import JOBS_DUE, JOBS_LEASE
from .store import CommerceEngine

log = logging.getLogger("liveserver.scheduler")

CLAIM_BATCH = 100
LEASE_MS = 30_000


class Scheduler:
    def __init__(self, store: CommerceEngine, period_s: float = 0.2, sweep_period_s: float = 1.0) -> None:
        self.store = store
        self.period_s = period_s
        self.sweep_period_s = sweep_period_s
        self._tasks: list[asyncio.Task[None]] = []
        self.actions: dict[str, Callable[[str], Awaitable[object]]] = {
            "sale_start": lambda i: store.announce_sale(i, "ev_live"),
            "sale_end": lambda i: store.announce_sale(i, "ev_ended"),
            "coupon_drop": lambda i: store.announce_coupon(i, "ev_drop"),
            "coupon_end": lambda i: store.announce_coupon(i, "ev_ended"),
            "lottery_draw": store.draw,
            "poll_end": store.announce_poll_end,
        }

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self.run_due_jobs, self.period_s), name="scheduler-jobs"),
            asyncio.create_task(self._loop(self.sweep_orders, self.sweep_period_s), name="scheduler-sweep"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    async def _loop(self, work: Callable[[], Awaitable[int]], period: float) -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except RedisConnectionError as exc:  # Redis restarting: the next pass retries
                log.warning("scheduled work: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("scheduled work failed")
            await asyncio.sleep(period)

    async def run_due_jobs(self) -> int:
        jobs = await self.store.scripts.run("jobs_claim", [JOBS_DUE, JOBS_LEASE], [CLAIM_BATCH, LEASE_MS])
        for job in jobs:
            kind, _room, object_id = job.split("|", 2)
            action = self.actions.get(kind)
            try:
                if action is not None:
                    await action(object_id)
                else:
                    log.error("unknown job kind %r", kind)
            except Exception:
                # Leave the lease: the job comes back when it runs out, and runs again.
                log.exception("job %s failed; it will be retried", job)
                continue
            await self.store.redis.zrem(JOBS_LEASE, job)
        return len(jobs)

    async def sweep_orders(self) -> int:
        """Expire unpaid orders past their deadline; returns how many this call expired."""
        expired = 0
        now = int(time.time() * 1000)
        for room in await self.store.sweep_rooms():
            due = await self.store.due_orders(room, now)
            if due:
                results = await asyncio.gather(*(self.store.expire(room, order) for order in due))
                expired += sum(results)
        return expired
