"""The streams reader: one dedicated Redis connection per node that XREAD-BLOCKs on the
streams of every room with viewers on this node and hands entries to the hub.

A room joined while the reader is blocked must not wait for the BLOCK to time out:
`add` asks Redis to `CLIENT UNBLOCK` the reader's connection until the reader has
re-issued its XREAD with the new room in it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from redis.asyncio import Redis

from liveserver.engine.cluster_streams import ClusterStreamReader
from liveserver.engine.engine import Event, RoomEngine, decode_entry
from liveserver.engine.keys import RoomKeys
from liveserver.core.tasks import cancel_and_wait

log = logging.getLogger("liveserver.streams")

BLOCK_MS = 2000
READ_COUNT = 2000


class StreamReader:
    def __init__(self, engine: RoomEngine, redis_url: str, deliver: Callable[[str, list[Event]], None]) -> None:
        self._url = redis_url
        self._control = engine.redis  # a normal client, used to send CLIENT UNBLOCK
        self._deliver = deliver
        self._positions: dict[str, str] = {}  # room -> last id read
        self._reading: frozenset[str] = frozenset()  # rooms in the XREAD now blocking
        self._client_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: Redis | None = None
        self._changed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stream-reader")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._conn is not None:
            await self._conn.aclose()

    async def add(self, room: str, after: str) -> None:
        """Read `room` from the entry after `after` on; returns once the reader is on it."""
        self._positions[room] = after
        self._changed.set()
        for _ in range(400):  # bounded: ~2 s at worst
            if room in self._reading:
                return
            if self._client_id is not None:
                try:
                    await self._control.execute_command("CLIENT", "UNBLOCK", self._client_id)
                except Exception:  # the reader reconnects on its own
                    pass
            await asyncio.sleep(0.005)
        log.warning("stream reader did not pick up room %s in time", room)

    def remove(self, room: str) -> None:
        self._positions.pop(room, None)

    async def _connect(self) -> Redis:
        if self._conn is not None:
            await self._conn.aclose()
        conn = Redis.from_url(self._url, decode_responses=True, single_connection_client=True)
        self._client_id = int(await conn.client_id())
        self._conn = conn
        return conn

    async def _run(self) -> None:
        conn: Redis | None = None
        while True:
            try:
                if conn is None:
                    conn = await self._connect()
                if not self._positions:
                    self._reading = frozenset()
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                streams = {RoomKeys(room).events: pos for room, pos in self._positions.items()}
                self._reading = frozenset(self._positions)
                reply = await conn.xread(streams, count=READ_COUNT, block=BLOCK_MS)
                for key, entries in reply or []:
                    room = key[key.index("{") + 1 : key.rindex("}")]
                    if room not in self._positions or not entries:
                        continue
                    self._positions[room] = entries[-1][0]
                    self._deliver(room, [decode_entry(eid, fields) for eid, fields in entries])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream reader error (%s); reconnecting", exc)
                conn = None
                self._client_id = None
                await asyncio.sleep(0.2)


def stream_reader(engine: RoomEngine, redis_url: str, deliver: Callable[[str, list[Event]], None]) -> "StreamReader | ClusterStreamReader":
    """The reader for this engine: one blocking XREAD on one Redis, one reader per primary on a Cluster."""
    if engine.layout.cluster:
        return ClusterStreamReader(engine, deliver)
    return StreamReader(engine, redis_url, deliver)
