"""`Pacer`: how long a background loop that polls Redis waits before its next pass.

A node's loops (archiver, webhook relay and delivery, scheduler) poll Redis for work that
another node may have made. Polling at a fixed 100-200 ms kept an idle node at ~2 % of a
core (docs/performance.md); a pacer polls fast while there is work and backs off, doubling,
to `slow_s` while passes find none. `wake()` ends a wait at once (this process just made
work for the loop), and `wait(due_in_s=...)` never sleeps past a known due time.
"""

from __future__ import annotations

import asyncio


def _settle(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class Pacer:
    __slots__ = ("fast_s", "slow_s", "_delay", "_waiter", "_woken")

    def __init__(self, fast_s: float, slow_s: float) -> None:
        self.fast_s = fast_s
        self.slow_s = max(fast_s, slow_s)
        self._delay = fast_s
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False

    def next_delay(self, found: bool) -> float:
        """The wait after a pass: `fast_s` when it found work, else double the last, up to `slow_s`."""
        self._delay = self.fast_s if found else min(self._delay * 2, self.slow_s)
        return self._delay

    def wake(self) -> None:
        """Run the next pass now (or, if a pass is running, right after it)."""
        self._delay = self.fast_s
        if self._waiter is not None:
            _settle(self._waiter)
        else:
            self._woken = True

    async def wait(self, found: bool, due_in_s: float | None = None) -> None:
        delay = self.next_delay(found)
        if due_in_s is not None:
            delay = max(0.0, min(delay, due_in_s))
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
