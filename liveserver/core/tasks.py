"""Small asyncio helpers shared by the node's background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Awaitable, TypeVar

log = logging.getLogger("liveserver")
T = TypeVar("T")
SLOW_STEP_S = 1.0


async def cancel_and_wait(*tasks: "asyncio.Task[Any] | None") -> None:
    """Cancel background tasks and wait until they have stopped (their errors are moot now)."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def within(seconds: float, what: str, *steps: Awaitable[Any]) -> bool:
    """Run shutdown `steps` together for at most `seconds`; True when all finished.

    asyncio.wait, not wait_for: on a timeout wait_for cancels and then waits for the
    cancelled work to end, which a step that swallows the cancellation never does (a node or
    worker that then ignores Ctrl-C / SIGTERM). A step's error is logged, not raised: the
    other steps (and closing Redis last) still happen."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    if not tasks:
        return True
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: %s", what, task.exception())
    for task in pending:
        task.cancel()
    if pending:
        log.warning("%s: not finished after %.0f s (%s); going on", what, seconds, ", ".join(sorted(_name(t) for t in pending)))
    return not pending


def _name(task: "asyncio.Future[Any]") -> str:
    """What a pending step is, for the log: its coroutine's name."""
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    return getattr(coro, "__qualname__", None) or repr(task)


async def timed(what: str, step: Awaitable[T]) -> T:
    """Await `step`; log a warning naming it when it took over SLOW_STEP_S. Teardowns are
    chains of awaits (closes, executor jobs, Redis writes): when one is slow, the log
    says which."""
    started = time.monotonic()
    try:
        return await step
    finally:
        took = time.monotonic() - started
        if took > SLOW_STEP_S:
            log.warning("%s took %.1f s", what, took)
