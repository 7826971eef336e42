"""A watchdog for a blocked event loop. While the loop turns, it re-arms faulthandler's
timer every quarter period; when the loop has not turned for `after_s`, faulthandler's
own C thread writes every thread's stack to stderr (the node's log). It needs neither
the loop nor the GIL, so it also catches a thread that holds the GIL and never lets go
(a C library blocking inside a call that keeps it): the one trace such a hang leaves."""

from __future__ import annotations

import asyncio
import faulthandler
import sys


class StallWatch:
    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.after_s > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                faulthandler.dump_traceback_later(self.after_s, repeat=False, file=sys.stderr, exit=False)
                await asyncio.sleep(self.after_s / 4)
        finally:
            faulthandler.cancel_dump_traceback_later()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
