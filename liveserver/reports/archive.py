"""The archiver: copies every room event into the room's archive stream (`lc:{room}:archive`,
same ids, never trimmed), so a replay is complete although the live stream is trimmed by
MAXLEN. It runs in the worker process (and in the default node unless LIVESERVER_ARCHIVE=0).

Nothing is lost when it falls behind: the trim to MAXLEN is its own, done by the copy
(`archive_copy.lua`) that finds the archive holding everything (the writers trim only at
10x MAXLEN, when no archiver runs), and each copy starts after the archive's own last id,
so any number of archivers may run and a crashed one leaves nothing half done. While events come
it runs a pass every 100 ms (at once again while a room has more), up to 500 events in
each of the 20 rooms with the newest events; passes that copy nothing back off to one a
second (an idle node's polling was most of its CPU), which only delays the copy."""

from __future__ import annotations

import asyncio
import logging

from liveserver.core.pacer import Pacer
from liveserver.core.tasks import cancel_and_wait
from liveserver.engine.report_store import ReportStore

log = logging.getLogger("liveserver.archive")

PER_ROOM = 500  # events copied per room and pass


class Archiver:
    def __init__(self, store: ReportStore, period_s: float = 0.1, slow_s: float = 1.0) -> None:
        self.store = store
        self.pacer = Pacer(period_s, slow_s)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="archiver")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def run_once(self) -> tuple[int, bool]:
        """One pass: (events copied, whether more are waiting)."""
        rooms = await self.store.archive_rooms()
        return await self.store.archive_pass(rooms, PER_ROOM)

    async def _loop(self) -> None:
        while True:
            try:
                copied, more = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("archive pass failed: %s", exc)
                copied, more = 0, False
                await asyncio.sleep(1.0)
            if not more:
                await self.pacer.wait(copied > 0)
