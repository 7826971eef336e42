"""Small asyncio helpers shared by the node's background loops."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, TypeVar

log = logging.getLogger("liveserver")
T = TypeVar("T")
SLOW_STEP_S = 1.0


RECANCEL_S = 0.1  # how often cancel_and_wait repeats its cancel


async def cancel_and_wait(*tasks: "asyncio.Task[Any] | None") -> None:
    """Cancel background tasks and wait until they have stopped (their errors are moot now).

    The cancel is repeated until each task is done: a cancel can be lost, and a loop then
    simply goes on to its next await; the next cancel ends it. redis-py 8's asyncio client
    loses about one in twenty during a command (tests/test_task_cancel.py), and Python
    3.11's wait_for one that comes as its awaitable completes (a track reader at 30 fps,
    tests/media/test_pipeline_close.py)."""
    running = [t for t in tasks if t is not None]
    pending = [t for t in running if not t.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=RECANCEL_S)
        pending = [t for t in pending if not t.done()]
    for task in running:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


_stopping: set["asyncio.Task[None]"] = set()


def cancel_soon(task: "asyncio.Task[Any]") -> None:
    """cancel_and_wait in the background (a task that must end, but need not be awaited)."""
    stopper = asyncio.ensure_future(cancel_and_wait(task))
    _stopping.add(stopper)
    stopper.add_done_callback(_stopping.discard)


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
    if pending:
        log.warning("%s: not finished after %.0f s (%s); going on. Where the tasks wait:\n%s", what, seconds,
                    ", ".join(sorted(_name(t) for t in pending)), _all_waiting())
    for task in pending:
        task.cancel()
    return not pending


def _name(task: "asyncio.Future[Any]") -> str:
    """What a pending step is, for the log: its coroutine's name."""
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    return getattr(coro, "__qualname__", None) or repr(task)


def _where(task: "asyncio.Task[Any]") -> str:
    """Where a task waits: its await chain of coroutines, outermost first (a Task's own
    stack shows its outermost frame only)."""
    lines = [f"  task {task.get_name()}:\n"]
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}\n")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "".join(lines)


def _all_waiting(limit: int = 40) -> str:
    """Where every task of the loop waits (a stop that hangs usually waits on another task)."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    return "".join(_where(t) for t in tasks[:limit])


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
