"""The room hub: the rooms that have viewers on this node, and the tick that flushes them.

Per tick (LIVESERVER_TICK_MS) and per room, everything that happened since the last
tick goes out as ONE `batch` frame (events read from the room stream + the state that
changed), encoded once per codec and queued to every local viewer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import CloseCode, frames
from protocol.offsets import ZERO, offset_key

from .config import Settings
from .engine import Event, RoomEngine
from .metrics import Metrics
from .streams import StreamReader
from .tasks import cancel_and_wait
from .viewer import Frame, Viewer, encode_frame

log = logging.getLogger("liveserver.hub")

REPLAY_LIMIT = 5000  # a longer gap is not worth replaying: the client takes fresh state
REPLAY_CHUNK = 500
IDLE_TICKS = 20  # an empty room is kept this many ticks before it is dropped
# Event kinds that act on nodes and are never relayed to viewers (their offsets still
# advance the batch chain, so clients see no gap).
INTERNAL_KINDS = frozenset({"ban"})


def visible(events: list[Event]) -> list[Event]:
    return [e for e in events if e["k"] not in INTERNAL_KINDS]


class StateSource(Protocol):
    """Something that contributes keys to a room's `state` (likes/online, sales, ...)."""

    async def load(self, room: str) -> dict[str, Any]:
        """The full state this source owns, read when a node opens the room."""

    def apply(self, room: "LocalRoom", event: Event) -> None:
        """Update `room.state` from one event of the room stream."""

    async def refresh(self, rooms: list["LocalRoom"]) -> None:
        """Once per tick, before the flush: poll what events do not carry."""


@dataclass(eq=False)
class LocalRoom:
    name: str
    epoch: str
    flushed: str  # offset of the last event flushed to this node's viewers
    viewers: set[Viewer] = field(default_factory=set)
    pending: list[Event] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    sent_state: dict[str, Any] = field(default_factory=dict)
    likes_delta: int = 0
    idle_ticks: int = 0
    dropped: int = 0


def _priority(event: Event) -> bool:
    return event.get("role") in ("host", "admin") or bool(event.get("badge"))


class RoomHub:
    def __init__(self, engine: RoomEngine, settings: Settings, node_id: str, metrics: Metrics, redis_url: str) -> None:
        self.engine = engine
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self.rooms: dict[str, LocalRoom] = {}
        self.sources: list[StateSource] = []
        self._opening: dict[str, asyncio.Future[LocalRoom]] = {}
        self._reader = StreamReader(redis_url, engine.redis, self._on_events)
        self._tick_task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._reader.start()
        self._tick_task = asyncio.create_task(self._tick_loop(), name="hub-tick")

    async def stop(self) -> None:
        await cancel_and_wait(self._tick_task)
        await self._reader.stop()
        # Say goodbye so the other nodes stop counting our viewers at once.
        for room in list(self.rooms.values()):
            try:
                await asyncio.wait_for(self.engine.tick(room.name, self.node_id, room.likes_delta, 0, self.settings.node_ttl_ms), 1)
            except Exception:
                pass

    # -- joining and leaving -----------------------------------------------------------
    async def join(self, viewer: Viewer, room_name: str, since: str | None, epoch: str | None) -> None:
        """Attach `viewer` and queue its welcome (+ missed events when resuming)."""
        room = await self._open(room_name)
        room.viewers.add(viewer)
        room.idle_ticks = 0
        viewer.room = room
        self.metrics.connections.inc()
        upto = room.flushed  # batches after this offset queue up behind the welcome
        viewer.delivered = upto
        state = _copy_state(room.state)
        replay: list[Event] = []
        recovered = False
        if since is not None and epoch == room.epoch:
            replay, recovered = await self._missed(room, since, upto)
        server_ms = int(time.time() * 1000)
        out: list[Frame] = []
        out.append(viewer.encode(frames.welcome(room.name, viewer.identity.public(), server_ms, room.epoch, upto, recovered, state)))
        prev = since if recovered else upto
        for start in range(0, len(replay), REPLAY_CHUNK):
            chunk = replay[start : start + REPLAY_CHUNK]
            out.append(viewer.encode(frames.batch(chunk[-1]["offset"], prev, visible(chunk), {})))
            prev = chunk[-1]["offset"]
        viewer.push_front(out)

    async def _missed(self, room: LocalRoom, since: str, upto: str) -> tuple[list[Event], bool]:
        try:
            since_key = offset_key(since)
        except ValueError:
            return [], False
        if since_key == offset_key(upto):
            return [], True
        if since_key > offset_key(upto):
            return [], False
        first, _last = await self.engine.stream_bounds(room.name)
        # Trimming removes the oldest entries only, so if `since` is at or after the first
        # entry still kept, every event after it is still there.
        if first is None or offset_key(first) > since_key:
            # "0-0" (joined while the stream was empty) precedes every event: the gap is
            # whole unless trimming ever dropped one.
            if since_key != (0, 0) or first is None or await self.engine.history_trimmed(room.name):
                return [], False
        events = await self.engine.events_after(room.name, since, upto, REPLAY_LIMIT + 1)
        if len(events) > REPLAY_LIMIT:
            return [], False
        return events, True

    def leave(self, viewer: Viewer) -> None:
        room = viewer.room
        if room is not None and viewer in room.viewers:
            room.viewers.discard(viewer)
            self.metrics.connections.dec()
        viewer.room = None

    async def _open(self, name: str) -> LocalRoom:
        room = self.rooms.get(name)
        if room is not None:
            return room
        opening = self._opening.get(name)
        if opening is not None:
            return await asyncio.shield(opening)
        fut: asyncio.Future[LocalRoom] = asyncio.get_running_loop().create_future()
        self._opening[name] = fut
        try:
            room = await self._load(name)  # registers the room in self.rooms
            self.metrics.rooms.set(len(self.rooms))
            fut.set_result(room)
            return room
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it through shield
            raise
        finally:
            self._opening.pop(name, None)

    async def _load(self, name: str) -> LocalRoom:
        meta = await self.engine.room_meta(name) or {}
        _first, last = await self.engine.stream_bounds(name)
        likes, online = await self.engine.tick(name, self.node_id, 0, 0, self.settings.node_ttl_ms)
        room = LocalRoom(name=name, epoch=meta.get("epoch", ""), flushed=last or ZERO)
        room.state = {"likes": likes, "online": online, "danmaku_dropped": 0}
        for source in self.sources:
            room.state.update(await source.load(name))
        room.sent_state = _copy_state(room.state)
        # Registered before the reader is on it: entries it reads before `add` returns
        # must find the room in `_on_events`, or they are lost for this node.
        self.rooms[name] = room
        # The reader starts right after the last entry we know of: nothing falls between.
        await self._reader.add(name, room.flushed)
        return room

    def _close_room(self, room: LocalRoom) -> None:
        self.rooms.pop(room.name, None)
        self._reader.remove(room.name)
        self.metrics.rooms.set(len(self.rooms))
        task = asyncio.ensure_future(self.engine.tick(room.name, self.node_id, room.likes_delta, 0, self.settings.node_ttl_ms))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- input from viewers ------------------------------------------------------------
    def like(self, viewer: Viewer, n: int) -> None:
        if viewer.room is not None:
            viewer.room.likes_delta += n

    # -- the stream reader's callback ---------------------------------------------------
    def _on_events(self, room_name: str, events: list[Event]) -> None:
        room = self.rooms.get(room_name)
        if room is not None:
            room.pending.extend(events)
            self.metrics.events_in.inc(len(events))

    # -- the tick ---------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.settings.tick_ms / 1000
        deadline = loop.time()
        while True:
            deadline += period
            started = loop.time()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tick failed")
            self.metrics.tick_seconds.observe(loop.time() - started)
            delay = deadline - loop.time()
            if delay < 0:  # overran: do not try to catch up with a burst of ticks
                deadline = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    async def tick(self) -> None:
        rooms = list(self.rooms.values())
        if not rooms:
            return
        await self._refresh_counters(rooms)
        for source in self.sources:
            try:
                await source.refresh(rooms)
            except Exception:
                log.exception("state source refresh failed")
        now = time.monotonic()
        for room in rooms:
            self._flush(room)
            self._police_slow(room, now)
            if room.viewers:
                room.idle_ticks = 0
            else:
                room.idle_ticks += 1
                if room.idle_ticks >= IDLE_TICKS and not room.pending:
                    self._close_room(room)

    async def _refresh_counters(self, rooms: list[LocalRoom]) -> None:
        calls = []
        for room in rooms:
            delta, room.likes_delta = room.likes_delta, 0
            calls.append(self.engine.tick(room.name, self.node_id, delta, len(room.viewers), self.settings.node_ttl_ms))
        timeout = max(1.0, self.settings.tick_ms / 1000 * 5)
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout)
        for room, result in zip(rooms, results):
            if isinstance(result, BaseException):
                log.warning("tick counters for %s failed: %s", room.name, result)
                continue
            room.state["likes"], room.state["online"] = result

    def _flush(self, room: LocalRoom) -> None:
        events, room.pending = room.pending, []
        prev = room.flushed
        if events:
            room.flushed = events[-1]["offset"]
            for event in events:
                if event["k"] == "ban":
                    self._kick(room, event.get("user"))
                for source in self.sources:
                    source.apply(room, event)
            events = self._cap_danmaku(room, visible(events))
        changed = {k: v for k, v in room.state.items() if room.sent_state.get(k) != v}
        if not events and not changed and room.flushed == prev:
            return
        room.sent_state = _copy_state(room.state)
        frame = frames.batch(room.flushed, prev, events, changed)
        encoded: dict[str, Frame] = {}
        for viewer in room.viewers:
            data = encoded.get(viewer.codec.subprotocol)
            if data is None:
                data = encoded[viewer.codec.subprotocol] = encode_frame(viewer.codec, frame)
            if viewer.push_events(data, room.flushed):
                self.metrics.frames_sent.inc()

    def _kick(self, room: LocalRoom, user: object) -> None:
        """A ban takes effect at once on every node: that user's connections close with 4403."""
        for viewer in room.viewers:
            if viewer.identity.id == user:
                viewer.close(CloseCode.BANNED)

    def _cap_danmaku(self, room: LocalRoom, events: list[Event]) -> list[Event]:
        cap = self.settings.danmaku_per_tick
        danmaku = [e for e in events if e["k"] == "danmaku"]
        if len(danmaku) <= cap:
            return events
        ranked = sorted(danmaku, key=lambda e: not _priority(e))  # stable: priority first, then by offset
        keep = {e["offset"] for e in ranked[:cap]}
        dropped = len(danmaku) - cap
        room.dropped += dropped
        room.state["danmaku_dropped"] = room.dropped
        self.metrics.danmaku_dropped.inc(dropped)
        return [e for e in events if e["k"] != "danmaku" or e["offset"] in keep]

    # -- slow viewers ------------------------------------------------------------------
    def _police_slow(self, room: LocalRoom, now: float) -> None:
        limit_s = self.settings.slow_close_ms / 1000
        for viewer in room.viewers:
            if viewer.lagging_since is None or viewer.close_code is not None:
                continue
            if now - viewer.lagging_since > limit_s:
                self.metrics.slow_closes.inc()
                viewer.close(CloseCode.TOO_SLOW)
            elif viewer.queued_bytes <= viewer.limit // 2 and not viewer.catching_up:
                viewer.catching_up = True
                task = asyncio.ensure_future(self._catch_up(room, viewer))
                self._bg.add(task)
                task.add_done_callback(self._bg.discard)

    async def _catch_up(self, room: LocalRoom, viewer: Viewer) -> None:
        """Refill a viewer that drained its buffer with what it skipped, from the stream."""
        try:
            for _ in range(5):
                upto = room.flushed
                events = await self.engine.events_after(room.name, viewer.delivered, upto, REPLAY_LIMIT + 1)
                if len(events) > REPLAY_LIMIT:
                    break
                if events:
                    frame = frames.batch(upto, viewer.delivered, visible(events), _copy_state(room.state))
                    viewer.push_control(viewer.encode(frame))
                    viewer.delivered = upto
                if room.flushed == upto:  # nothing flushed meanwhile: caught up
                    viewer.lagging_since = None
                    self.metrics.catch_ups.inc()
                    return
            viewer.close(CloseCode.TOO_SLOW)
        except Exception:
            log.exception("catch-up failed")
            viewer.close(CloseCode.TOO_SLOW)
        finally:
            viewer.catching_up = False


def _copy_state(state: Any) -> Any:
    """A deep copy of JSON-like state, so the last sent state can be diffed against."""
    if isinstance(state, dict):
        return {k: _copy_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_copy_state(v) for v in state]
    return state
