"""`Pacer`: how long a background loop that polls Redis waits before its next pass.

A node's loops (archiver, webhook relay and delivery, scheduler) poll Redis for work that
another node may have made. Polling at a fixed 100-200 ms kept an idle node at ~2 % of a
core (docs/performance.md); a pacer polls fast while there is work and backs off, doubling,
to `slow_s` while passes find none. `wake()` ends a wait at once (this process just made
work for the loop), and a due time the pass learnt (`due_in`) ends it by then. `Every`
paces rare work inside such a loop (taking over what a dead worker left).
"""

from __future__ import annotations

import asyncio
import time


def _settle(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class Pacer:
    __slots__ = ("fast_s", "slow_s", "_delay", "_due_in_s", "_waiter", "_woken")

    def __init__(self, fast_s: float, slow_s: float) -> None:
        self.fast_s = fast_s
        self.slow_s = max(fast_s, slow_s)
        self._delay = fast_s
        self._due_in_s: float | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False

    def next_delay(self, found: bool) -> float:
        """The wait after a pass: `fast_s` when it found work, else double the last, up to `slow_s`."""
        self._delay = self.fast_s if found else min(self._delay * 2, self.slow_s)
        return self._delay

    def due_in(self, seconds: float | None) -> None:
        """The pass learnt that work is due in `seconds` (None: it knows of none): the next
        wait ends by then. Used by that one wait only."""
        self._due_in_s = seconds

    def wake(self) -> None:
        """Run the next pass now (or, if a pass is running, right after it)."""
        self._delay = self.fast_s
        if self._waiter is not None:
            _settle(self._waiter)
        else:
            self._woken = True

    async def wait(self, found: bool) -> None:
        delay = self.next_delay(found)
        due, self._due_in_s = self._due_in_s, None
        if due is not None:
            delay = max(0.0, min(delay, due))
        if self._woken:  # woken while the pass ran
            self._woken = False
            return
        loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        timer = loop.call_later(delay, _settle, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None
            self._woken = False


class Every:
    """`due()` is True on the first call and then at most once per `seconds`."""

    __slots__ = ("seconds", "_last")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True
