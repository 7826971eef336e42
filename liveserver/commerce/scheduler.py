"""Scheduled work that must happen once across all nodes and survive restarts:
sale start/end, coupon drops, lottery draws, poll ends (jobs), and unpaid-order expiry
(the sweeper). Every node runs both loops (and `liveserver worker` can run them alone);
claiming is atomic in Redis and every effect is an idempotent script. The jobs loop sleeps
until the next job is due, but at most `slow_s` (a job another node just scheduled is seen
within that); the sweeper runs every `sweep_period_s`."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError

from protocol import ErrorCode

from liveserver.commerce.kind import JobAction
from liveserver.core.errors import OpError
from liveserver.core.pacer import Pacer
from liveserver.core.tasks import cancel_and_wait
from liveserver.engine.commerce_store import CommerceStore

log = logging.getLogger("liveserver.scheduler")

CLAIM_BATCH = 100
LEASE_MS = 30_000


class Scheduler:
    def __init__(self, store: CommerceStore, actions: dict[str, JobAction], sweep: Callable[[], Awaitable[int]],
                 period_s: float = 0.2, sweep_period_s: float = 1.0, slow_s: float = 1.0) -> None:
        self.store = store
        self.actions = actions  # job kind -> action, from every commerce kind's `jobs()`
        self.sweep_orders = sweep  # expire unpaid orders (the sales kind)
        self.sweep_period_s = sweep_period_s
        self.jobs_pacer = Pacer(period_s, slow_s)  # each claim tells it when the next job is due
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self.run_due_jobs, self.jobs_pacer), name="scheduler-jobs"),
            asyncio.create_task(self._loop(self.sweep_orders, Pacer(self.sweep_period_s, self.sweep_period_s)),
                                name="scheduler-sweep"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    async def _loop(self, work: Callable[[], Awaitable[int]], pacer: Pacer) -> None:
        while True:
            done = 0
            try:
                done = await work()
            except asyncio.CancelledError:
                raise
            except RedisConnectionError as exc:  # Redis restarting: the next pass retries
                log.warning("scheduled work: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("scheduled work failed")
            await pacer.wait(done > 0)

    async def run_due_jobs(self) -> int:
        jobs, due_in_ms = await self.store.claim_jobs(CLAIM_BATCH, LEASE_MS)
        self.jobs_pacer.due_in(None if due_in_ms is None else due_in_ms / 1000)
        for job in jobs:
            kind, _room, object_id = job.split("|", 2)
            action = self.actions.get(kind)
            try:
                if action is not None:
                    await action(object_id)
                else:
                    log.error("unknown job kind %r", kind)
            except OpError as exc:
                if exc.code != ErrorCode.NOT_FOUND:
                    log.exception("job %s failed; it will be retried", job)
                    continue
                # On a Redis Cluster jobs are written before their object (another slot):
                # a job whose object write never landed is dropped, not retried forever.
                log.warning("job %s: its object does not exist; dropped", job)
            except Exception:
                # Leave the lease: the job comes back when it runs out, and runs again.
                log.exception("job %s failed; it will be retried", job)
                continue
            await self.store.job_done(job)
        return len(jobs)
