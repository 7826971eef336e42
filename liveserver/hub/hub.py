"""The room hub: the rooms that have viewers on this node, and the tick that flushes them.

Per tick (LIVESERVER_TICK_MS) and per room, everything that happened since the last
tick goes out as ONE `batch` frame (events read from the room stream + the state that
changed), encoded once per codec and queued to every local viewer.

Adaptive flush: a QUIET room (a few events per tick at most, see `flush.may_flush_early`)
does not make its next event wait for the tick: the stream reader's delivery schedules a
flush of that room LIVESERVER_FLUSH_COALESCE_MS later. The batch chain and the state diff
are the same (`plan_flush`). Counters kept in Redis (likes, online, stock, ...) are re-read
once per LIVESERVER_COUNTERS_MS (at once when this node's viewers of the room change).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from protocol import CloseCode, frames
from protocol.offsets import ZERO, offset_key

from liveserver.core.auth import Identity
from liveserver.core.config import Settings
from liveserver.core.metrics import Metrics
from liveserver.core.tasks import cancel_and_wait
from liveserver.engine.engine import Admission, Event, RoomEngine
from liveserver.engine.errors import is_unavailable
from liveserver.engine.streams import stream_reader
from liveserver.hub.chat import apply_bans, visible
from liveserver.hub.direct import ws_frame
from liveserver.hub.flush import counters_period, may_flush_early, plan_flush
from liveserver.hub.room import LocalRoom, StateSource, copy_state
from liveserver.hub.viewer import Frame, Viewer, encode_frame

log = logging.getLogger("liveserver.hub")

REPLAY_LIMIT = 5000  # a longer gap is not worth replaying: the client takes fresh state
REPLAY_CHUNK = 500
IDLE_TICKS = 20  # an empty room is kept this many ticks before it is dropped
class RoomHub:
    def __init__(self, engine: RoomEngine, settings: Settings, node_id: str, metrics: Metrics, redis_url: str) -> None:
        self.engine = engine
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self.rooms: dict[str, LocalRoom] = {}
        self.sources: list[StateSource] = []
        self._opening: dict[str, asyncio.Future[LocalRoom]] = {}
        self._missed_reads: dict[tuple[str, str, str], asyncio.Future[Any]] = {}  # resumes' gap reads in flight
        self._reader = stream_reader(engine, redis_url, self._on_events)
        self._tick_task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self._likes_taken: dict[str, int] = {}  # room -> likes total of its closed LocalRoom (tick.lua)
        self._clock_offset_ms = 0  # Redis time - this process's time, learnt from stats_tick replies
        self._next_tick = float("inf")  # loop time the tick loop runs next (adaptive flush)
        # How often a room's Redis counters are re-read: as often as counters go out, and
        # well within the node heartbeat's TTL (the same call keeps this node listed).
        self._poll_s = max(settings.tick_ms, min(settings.counters_ms, settings.node_ttl_ms // 3)) / 1000

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._reader.start()
        self._tick_task = asyncio.create_task(self._tick_loop(), name="hub-tick")
        task = asyncio.create_task(self._learn_clock())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _learn_clock(self) -> None:
        """A first Redis-clock offset for stamping joins and leaves (refined per stats tick)."""
        try:
            sent = time.time() * 1000
            redis_now = await self.engine.reports.now_ms()
            self._clock_offset_ms = int(redis_now - (sent + time.time() * 1000) / 2)
        except Exception:
            pass

    async def stop(self) -> None:
        await cancel_and_wait(self._tick_task)
        await self._reader.stop()
        # Say goodbye so the other nodes stop counting our viewers at once.
        for room in list(self.rooms.values()):
            try:
                await asyncio.wait_for(self._stats_send(room), 1)
            except Exception:
                pass
            try:
                await asyncio.wait_for(self.engine.report_counters(room.name, self.node_id, room.likes_taken, 0, self.settings.node_ttl_ms), 1)
            except Exception:
                pass

    # -- joining and leaving -----------------------------------------------------------
    async def admit(self, room: str, identity: Identity) -> str:
        """May this caller join `room`? Admission.OK / NO_ROOM / BANNED.

        A room open on this node exists, and its `bans` are kept current by the `ban`
        events (written with the ban itself, ban.lua): a guest, or a user not in them, is
        admitted without a Redis call (in a join storm that call was ~15 % of a join's
        CPU). A user in them is asked of Redis, which may know of an unban whose event is
        still on its way. For an open room the admission and `join` adding the viewer to
        it run in one loop step, so a ban event that arrives after the admission finds
        the viewer there and closes it (4403), as it does any viewer of the user."""
        local = self.rooms.get(room)
        if local is not None and (identity.is_guest or identity.id not in local.bans):
            return Admission.OK
        return await self.engine.admit(room, None if identity.is_guest else identity.id)

    async def say(self, room: str, kind: str, body: dict[str, Any], mute_user: str = "") -> tuple[str, int]:
        """Append a viewer's event (danmaku) to the room stream; raises Muted."""
        published = await self.engine.publish(room, kind, body, mute_user=mute_user)
        assert published is not None  # no once-flag: always published or Muted
        return published

    async def join(self, viewer: Viewer, room_name: str, since: str | None, epoch: str | None) -> None:
        """Attach `viewer` and queue its welcome (+ missed events when resuming)."""
        opened = room_name not in self.rooms
        room = await self._open(room_name)
        room.viewers.add(viewer)
        if opened and not viewer.identity.is_guest and viewer.identity.id in room.bans:
            # banned after its admission, before this node opened the room (room_open.lua
            # read the bans after the admission; the ban's event is older than the room here)
            viewer.close(CloseCode.BANNED)
        room.idle_ticks = 0
        room.stats_out.append(f"j|{viewer.conn_id}|{viewer.identity.id}|{self._redis_ms()}")  # a session starts
        viewer.room = room
        self.metrics.connections.inc()
        upto = room.flushed  # batches after this offset queue up behind the welcome
        viewer.delivered = upto
        state = room.state  # encoded below, before anything can change it
        replay: list[Event] = []
        recovered = False
        if since is not None and epoch == room.epoch:
            # The gap read below lets the tick run: the state as of `upto` is the one the
            # last batch left, which a flush replaces (never changes) when it moves `upto`.
            state = room.sent_state
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
        first, trimmed, events = await self._read_missed(room.name, since, upto)
        # Trimming removes the oldest entries only, so if `since` is at or after the first
        # entry still kept, every event after it is still there.
        if first is None or offset_key(first) > since_key:
            # "0-0" (joined while the stream was empty) precedes every event: the gap is
            # whole unless trimming ever dropped one.
            if since_key != (0, 0) or first is None or trimmed:
                return [], False
        if len(events) > REPLAY_LIMIT:
            return [], False
        return events, True

    def _read_missed(self, room: str, since: str, upto: str) -> "asyncio.Future[tuple[str | None, bool, list[Event]]]":
        """The gap read for a resume, shared by every resume of the same room, `since` and
        `upto` in flight at once: after a node restart thousands of viewers come back with
        the same `since`, and one read serves them all (the events are only read after)."""
        key = (room, since, upto)
        read = self._missed_reads.get(key)
        if read is None:
            read = asyncio.ensure_future(self.engine.missed(room, since, upto, REPLAY_LIMIT + 1))
            self._missed_reads[key] = read
            # Dropped once done; the error is retrieved here too, in case every resume left.
            read.add_done_callback(lambda f: (self._missed_reads.pop(key, None), f.cancelled() or f.exception()))
        return asyncio.shield(read)

    def leave(self, viewer: Viewer) -> None:
        room = viewer.room
        if room is not None and viewer in room.viewers:
            room.viewers.discard(viewer)
            room.stats_out.append(f"l|{viewer.conn_id}|{self._redis_ms()}")
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
        specs = [spec for source in self.sources for spec in source.load_specs(name)]
        specs.append(self.engine.bans_read(name))
        snap = await self.engine.open_room(name, self.settings.node_ttl_ms, specs)  # one round trip
        room = LocalRoom(name=name, epoch=snap.meta.get("epoch", ""), flushed=snap.last or ZERO)
        room.bans = snap.values.pop("bans", None) or set()
        room.likes_taken = room.likes_applied = self._likes_taken.get(name, 0)
        room.state = {"likes": snap.likes, "online": snap.online, "danmaku_dropped": 0}
        for source in self.sources:
            room.state.update(source.loaded(name, snap))
        room.sent_state = copy_state(room.state)
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
        self._likes_taken[room.name] = room.likes_taken  # a reopened room counts on from here
        task = asyncio.ensure_future(self.engine.report_counters(room.name, self.node_id, room.likes_taken, 0, self.settings.node_ttl_ms))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        if room.stats_out or room.stats_likes:  # the last leaves of the room, now
            self._spawn(self._stats_send(room))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- input from viewers ------------------------------------------------------------
    def like(self, viewer: Viewer, n: int) -> None:
        if viewer.room is not None:
            viewer.room.likes_taken += n

    # -- the stream reader's callback ---------------------------------------------------
    def _on_events(self, room_name: str, events: list[Event]) -> None:
        room = self.rooms.get(room_name)
        if room is not None:
            apply_bans(room.bans, events)  # at once: admissions read it (`admit`)
            room.pending.extend(events)
            room.events_this_tick += len(events)
            self.metrics.events_in.inc(len(events))
            if self.settings.adaptive_flush:
                loop = asyncio.get_running_loop()
                coalesce = self.settings.flush_coalesce_ms / 1000
                if may_flush_early(room, loop.time(), self.settings.tick_ms / 1000, self._next_tick, coalesce):
                    room.early = loop.call_later(coalesce, self._flush_early, room)

    def _flush_early(self, room: LocalRoom) -> None:
        room.early = None
        if self.rooms.get(room.name) is not room:  # closed meanwhile
            return
        try:
            self._flush(room)
        except Exception:
            log.exception("early flush of %s failed", room.name)

    # -- the tick ---------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.settings.tick_ms / 1000
        deadline = loop.time()
        while True:
            deadline += period
            self._next_tick = deadline
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
        # Counters that live in Redis (likes, online, stock, tallies, ...) are re-read once
        # per poll interval, not every tick: alone they go out at most that often anyway
        # (hub/flush.py), and the per-tick reads were most of an idle room's CPU. A room
        # whose viewers came or went on this node reports at once (the online count).
        # Live data: one stats_tick per room and second (the joins, leaves and likes of the
        # last ten ticks; also the heartbeat), started in this same loop turn so it rides in
        # the same auto-pipelined round trips as the counters, but not awaited: it never
        # holds up a tick. The counters are re-read with it, so this node's entry in the
        # room's node list (tick.lua) is never older than its stats heartbeat: a report that
        # sees the node gone also sees its sessions ended (reports/report.py).
        at = asyncio.get_running_loop().time()
        polled = []
        for room in rooms:
            room.stats_idle += 1
            beat = not room.stats_busy and room.stats_idle * self.settings.tick_ms >= 1000
            if beat:
                self._spawn(self._stats_send(room))
            if beat or at - room.polled_at >= self._poll_s or len(room.viewers) != room.polled_viewers:
                room.polled_at, room.polled_viewers = at, len(room.viewers)
                polled.append(room)
        if polled:
            await self._refresh_counters(polled)
        for source in self.sources:
            try:
                await source.refresh(rooms, polled)
            except Exception as exc:
                if is_unavailable(exc):  # an outage: one line per tick, not a traceback
                    log.warning("state source refresh failed: %s", exc)
                else:
                    log.exception("state source refresh failed")
        now = time.monotonic()
        for room in rooms:
            room.events_last_tick, room.events_this_tick = room.events_this_tick, 0
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
        reported = []
        for room in rooms:
            reported.append(room.likes_taken)
            calls.append(self.engine.report_counters(room.name, self.node_id, room.likes_taken, len(room.viewers),
                                                     self.settings.node_ttl_ms))
        timeout = max(1.0, self.settings.tick_ms / 1000 * 5)
        try:
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout)
        except asyncio.TimeoutError as exc:
            results = [exc] * len(rooms)
        for room, taken, result in zip(rooms, reported, results):
            if isinstance(result, BaseException):
                # The next tick reports the total again: a like given during a Redis outage
                # is not lost, and one this call added after all is not added twice.
                log.warning("tick counters for %s failed (its likes go with the next tick): %s", room.name,
                            str(result) or type(result).__name__)
                continue
            if taken > room.likes_applied:
                room.stats_likes += taken - room.likes_applied
                room.likes_applied = taken
            room.state["likes"], room.state["online"] = result

    def _redis_ms(self) -> int:
        return int(time.time() * 1000) + self._clock_offset_ms

    async def _stats_send(self, room: LocalRoom) -> None:
        """Send a room's live data (stats_tick.lua): joins and leaves are stamped when they
        happen, so batching them a second costs no precision. A failed send keeps them
        for the next one."""
        records, room.stats_out = room.stats_out, []
        likes, room.stats_likes = room.stats_likes, 0
        room.stats_idle = 0
        room.stats_busy = True
        try:
            sent = time.time() * 1000
            room.uniques, redis_now = await self.engine.reports.stats_tick(room.name, self.node_id, likes,
                                                                           int(room.state.get("online", 0)), records)
            self._clock_offset_ms = int(redis_now - (sent + time.time() * 1000) / 2)
        except BaseException as exc:
            room.stats_out[:0] = records  # a session is never lost to a blip
            room.stats_likes += likes
            if not isinstance(exc, Exception):
                raise
            log.warning("live data of %s not sent (kept for the next tick): %s", room.name, exc)
        finally:
            room.stats_busy = False

    def _flush(self, room: LocalRoom) -> None:
        now = asyncio.get_running_loop().time()
        every_s = counters_period(self.settings.counters_ms, len(room.viewers), self.settings.counter_frames)
        plan = plan_flush(room, self.sources, self.settings.danmaku_per_tick, now, every_s)
        for user in plan.banned:
            self._kick(room, user)
        if plan.dropped:
            self.metrics.danmaku_dropped.inc(plan.dropped)
        if plan.frame is None:
            return
        room.last_flush_at = now
        # Encoded once per codec, and framed for the socket once per codec too.
        encoded: dict[str, tuple[Frame, bytes]] = {}
        sent = 0
        for viewer in room.viewers:
            pair = encoded.get(viewer.codec.subprotocol)
            if pair is None:
                data = encode_frame(viewer.codec, plan.frame)
                pair = encoded[viewer.codec.subprotocol] = (data, ws_frame(data, viewer.text))
            if viewer.push_events(pair[0], room.flushed, pair[1]):
                sent += 1
        if sent:
            self.metrics.frames_sent.inc(sent)

    def _kick(self, room: LocalRoom, user: str) -> None:
        """A ban takes effect at once on every node: that user's connections close with 4403."""
        for viewer in room.viewers:
            if viewer.identity.id == user:
                viewer.close(CloseCode.BANNED)

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
                    frame = frames.batch(upto, viewer.delivered, visible(events), copy_state(room.state))
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

