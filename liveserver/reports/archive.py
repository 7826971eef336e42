"""The archiver: copies every room event into the room's archive stream (`lc:{room}:archive`,
same ids, never trimmed) through the consumer group `archive` on the live stream, so a
replay is complete although the live stream is trimmed by MAXLEN. It runs in the worker
process (and in the default node unless LIVESERVER_ARCHIVE=0); copying is idempotent, so
any number of archivers may run. It keeps up as long as it copies faster than the stream
is trimmed: while events come, one pass every 100 ms (at once again after a full pass), up
to 500 events in each of the 20 rooms with the newest events per pass: with the default
LIVESERVER_STREAM_MAXLEN of 10,000 a room would need ~50,000 events/s to outrun it while
fewer than 20 rooms are busy. Passes that copy nothing back off to one a second (an idle
node's polling was most of its CPU): a burst after a quiet spell starts being copied within
a second, so it would need 10,000 events in that second to be trimmed first."""

from __future__ import annotations

import asyncio
import logging
import secrets

from liveserver.core.pacer import Every, Pacer
from liveserver.core.tasks import cancel_and_wait
from liveserver.engine.report_store import ReportStore

log = logging.getLogger("liveserver.archive")

RECLAIM_EVERY_S = 5.0


class Archiver:
    def __init__(self, store: ReportStore, period_s: float = 0.1, lease_ms: int = 30_000, slow_s: float = 1.0) -> None:
        self.store = store
        self.pacer = Pacer(period_s, slow_s)
        self.lease_ms = lease_ms
        self.name = "a-" + secrets.token_hex(4)
        self._task: asyncio.Task[None] | None = None
        self._reclaim = Every(RECLAIM_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="archiver")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def run_once(self) -> int:
        # Taking over what a dead archiver left is needed rarely: every RECLAIM_EVERY_S.
        reclaim = self._reclaim.due()
        rooms = await self.store.archive_rooms()
        return await self.store.archive_pass(rooms, self.name, 500, self.lease_ms, reclaim=reclaim)

    async def _loop(self) -> None:
        while True:
            try:
                copied = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("archive pass failed: %s", exc)
                copied = 0
                await asyncio.sleep(1.0)
            if copied < 500:
                await self.pacer.wait(copied > 0)
