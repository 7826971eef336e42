"""Garbage collection for a process that holds many long-lived connections.

CPython's full (generation 2) collection walks every object the collector tracks. A node
with 10,000 viewers holds ~900,000 of them, and each full collection stopped it for up to
a second, ~13 times while the viewers joined; in the seckill rush these pauses were the
p99 (docs/performance.md). So: an object that survived a full collection is long-lived,
and right after each full collection everything is frozen (`gc.freeze`: moved where the
collector never looks again). The next full collection walks only what is newer, and
full collections become as cheap as young ones. Frozen objects are still freed by
reference counting; only garbage in reference cycles could hide among them, and a closed
viewer connection leaves none (edge/lean.py, hub/viewer.py `detach`). What hides anyway
is freed by a sweep every LIVESERVER_GC_SWEEP_S (unfreeze, then one full collection: the
one long pause, at a known rate). The sweep waits while the node is busy in a way that
pause would hurt (the app says: viewers racing for a flash sale's stock), for at most
one more period, then sweeps anyway.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any, Callable

log = logging.getLogger("liveserver.gc")


QUIET_POLL_S = 1.0  # how often a due sweep checks whether the node is still busy


class GcPolicy:
    def __init__(self, sweep_s: float, busy: Callable[[], bool] | None = None, poll_s: float = QUIET_POLL_S) -> None:
        self.sweep_s = sweep_s
        self.freezes = 0
        self.sweeps = 0
        self.busy_polls = 0  # checks that found the node busy with a sweep due
        self._busy = busy
        self._poll_s = poll_s
        self._installed = False

    def install(self) -> None:
        """Freeze what start-up made (modules, classes, settings) and every full
        collection's survivors from now on."""
        if self._installed:
            return
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._on_gc)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            gc.unfreeze()
            self._installed = False

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # At "stop" of a full collection the young generations are empty too: what is
        # frozen is exactly what survived it.
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()
            self.freezes += 1

    def sweep(self) -> float:
        """Unfreeze and collect everything once (freed: cyclic garbage that was frozen);
        the callback freezes the survivors again. Returns the pause in seconds."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        pause = time.perf_counter() - started
        self.sweeps += 1
        log.info("gc sweep: %d unreachable objects freed, %d frozen, %.3f s", found, gc.get_freeze_count(), pause)
        return pause

    async def run(self) -> None:
        """Sweep every `sweep_s` (0: never), each at the first quiet moment."""
        if self.sweep_s <= 0:
            return
        while True:
            await asyncio.sleep(self.sweep_s)
            await self._quiet_moment()
            self.sweep()

    async def _quiet_moment(self) -> None:
        """Return once `busy()` says no, or one more sweep period has passed (a node that
        is always busy still gets its sweep, at half the rate)."""
        if self._busy is None:
            return
        deadline = time.monotonic() + self.sweep_s
        while self._busy():
            if time.monotonic() >= deadline:
                log.warning("gc sweep: the node stayed busy for %.0f s; sweeping anyway", self.sweep_s)
                return
            self.busy_polls += 1
            await asyncio.sleep(min(self._poll_s, self.sweep_s))
