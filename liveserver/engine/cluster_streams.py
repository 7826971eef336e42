"""The streams reader on a Redis Cluster: one reader task per primary.

A Cluster refuses a command whose keys hash to different slots, so the single-Redis
reader's one XREAD over every room cannot work: rooms live on different slots and
shards. Here each primary gets its own task that, on one connection of that primary,
pipelines one non-blocking `XREAD` per slot (the rooms of one slot share the command)
and, when nothing was new, waits `POLL_MS` or until a room is added. A primary whose
rooms all share one slot (the common case of one busy room per shard) gets one
blocking `XREAD` instead (`BLOCK_MS`): no polling, no added delay; a room of another
slot added meanwhile is read when that block ends. Which primary
reads a room is decided on every pass from the client's slot map, so a room whose slot
moved (resharding, failover) is picked up by its new primary with its position intact:
no event is skipped and none is delivered twice (positions only move forward). MOVED /
ASK / CLUSTERDOWN replies and lost connections refresh the slot map.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import AskError, ClusterDownError, SlotNotCoveredError, TryAgainError

from liveserver.core.tasks import cancel_and_wait, cancel_soon
from liveserver.engine.engine import Event, RoomEngine, decode_entry
from liveserver.engine.keys import RoomKeys
from liveserver.engine.scripts import node_pipeline, refresh_slots

log = logging.getLogger("liveserver.streams")

POLL_MS = 10  # wait between passes of a shard with nothing new (the idle delivery delay)
BLOCK_MS = 100  # a shard with rooms of one slot blocks in XREAD this long instead
READ_COUNT = 2000
TOPOLOGY_S = 5.0  # the slot map is also re-read this often (a quiet failover or reshard)


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class ClusterStreamReader:
    def __init__(self, engine: RoomEngine, deliver: Callable[[str, list[Event]], None], poll_ms: int = POLL_MS) -> None:
        assert isinstance(engine.redis, RedisCluster)
        self._cluster: RedisCluster = engine.redis
        self._deliver = deliver
        self._poll_s = poll_ms / 1000
        self._positions: dict[str, str] = {}  # room -> last id delivered
        self._shards: dict[str, asyncio.Task[None]] = {}  # primary name -> its reader
        self._wakes: dict[str, asyncio.Event] = {}
        self._stale = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="stream-reader-cluster")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, *self._shards.values())

    async def add(self, room: str, after: str) -> None:
        """Read `room` from the entry after `after` on: the next pass of its shard includes it."""
        self._positions[room] = after
        for wake in self._wakes.values():
            wake.set()

    def remove(self, room: str) -> None:
        self._positions.pop(room, None)

    def shards(self) -> list[str]:
        """The primaries read now (host:port), for tests and metrics."""
        return sorted(self._shards)

    # -- the supervisor: one task per primary ---------------------------------------------
    async def _supervise(self) -> None:
        while True:
            try:
                if self._stale.is_set():
                    self._stale.clear()
                    await refresh_slots(self._cluster)
                primaries = {n.name for n in self._cluster.get_primaries()}
                for name in list(self._shards):
                    if name not in primaries or self._shards[name].done():
                        cancel_soon(self._shards.pop(name))
                        self._wakes.pop(name, None)
                for name in primaries - set(self._shards):
                    self._wakes[name] = asyncio.Event()
                    self._shards[name] = asyncio.create_task(self._shard(name), name=f"stream-reader-{name}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream reader: cluster topology refresh failed (%s)", exc)
                self._stale.set()
                await asyncio.sleep(0.2)
                continue
            try:
                await asyncio.wait_for(self._stale.wait(), TOPOLOGY_S)
            except asyncio.TimeoutError:
                self._stale.set()  # periodic re-read

    def _mark_stale(self) -> None:
        self._stale.set()

    # -- one primary ---------------------------------------------------------------------
    def _my_rooms(self, name: str) -> dict[int, list[str]]:
        """slot -> rooms of this node's slots, from the client's slot map."""
        by_slot: dict[int, list[str]] = {}
        for room in list(self._positions):
            key = RoomKeys(room).events
            try:
                owner = self._cluster.get_node_from_key(key)
            except SlotNotCoveredError:
                self._mark_stale()
                continue
            if owner is not None and owner.name == name:
                by_slot.setdefault(self._cluster.keyslot(key), []).append(room)
        return by_slot

    async def _shard(self, name: str) -> None:
        wake = self._wakes[name]
        while True:
            node: ClusterNode | None = self._cluster.get_node(node_name=name)
            if node is None:
                return  # gone from the cluster: the supervisor reaps this task
            by_slot = self._my_rooms(name)
            got = False
            if by_slot:
                commands = []
                block = ["BLOCK", BLOCK_MS] if len(by_slot) == 1 else []
                for rooms in by_slot.values():
                    ids = [self._positions.get(r, "0-0") for r in rooms]
                    commands.append(PipelineCommand(len(commands), "XREAD", "COUNT", READ_COUNT, *block, "STREAMS",
                                                    *(RoomKeys(r).events for r in rooms), *ids))
                try:
                    await node_pipeline(node, commands)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("stream reader %s: %s; re-reading the slot map", name, exc)
                    self._mark_stale()
                    await asyncio.sleep(0.2)
                    continue
                for cmd in commands:
                    got = self._take(name, cmd.result) or got
                if block and not isinstance(commands[0].result, Exception):
                    continue  # the XREAD itself waited
            if not got:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), self._poll_s)
                except asyncio.TimeoutError:
                    pass

    def _take(self, name: str, reply: object) -> bool:
        if isinstance(reply, (AskError, TryAgainError, ClusterDownError)):
            self._mark_stale()  # MOVED is an AskError: the slot has a new owner
            return False
        if isinstance(reply, Exception):
            log.warning("stream reader %s: %s", name, reply)
            return False
        got = False
        for key, entries in reply or []:  # type: ignore[union-attr]
            room = key[key.index("{") + 1 : key.rindex("}")]
            last = self._positions.get(room)
            if last is None or not entries:
                continue
            fresh = [(eid, f) for eid, f in entries if _id(eid) > _id(last)]
            if not fresh:
                continue
            self._positions[room] = fresh[-1][0]
            self._deliver(room, [decode_entry(eid, fields) for eid, fields in fresh])
            got = True
        return got
