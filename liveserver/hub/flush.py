"""The flush decisions for one room, without I/O: what batch (if any) goes out, and
whether a quiet room may send it now instead of at the next tick."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from protocol import frames

from liveserver.hub.chat import banned_users, cap_danmaku, visible
from liveserver.hub.room import LocalRoom, StateSource, copy_state


@dataclass
class Flush:
    frame: dict[str, Any] | None  # the batch to send, None when there is nothing new
    banned: list[str] = field(default_factory=list)  # users whose connections close now
    dropped: int = 0  # danmaku cut by the storm cap this tick


# Counters change nearly every tick in a busy room (a join, a leave, a like). Alone they go
# out at most once per `counters_every_s`; any batch sent for another reason carries them.
COUNTERS = frozenset({"likes", "online", "peak_online", "danmaku_dropped"})


def plan_flush(room: LocalRoom, sources: Sequence[StateSource], danmaku_cap: int,
               now: float = 0.0, counters_every_s: float = 0.0) -> Flush:
    """Take the room's pending events, let every state source apply them, cap danmaku,
    and diff the state: one `batch` frame, or None when nothing changed (or only the
    counters did, and they went out less than `counters_every_s` ago)."""
    events, room.pending = room.pending, []
    prev = room.flushed
    out = Flush(frame=None)
    if events:
        room.flushed = events[-1]["offset"]
        for event in events:
            for source in sources:
                source.apply(room, event)
        out.banned = banned_users(events)
        events, out.dropped = cap_danmaku(visible(events), danmaku_cap)
        if out.dropped:
            room.dropped += out.dropped
            room.state["danmaku_dropped"] = room.dropped
    changed = {k: v for k, v in room.state.items() if room.sent_state.get(k) != v}
    if not events and room.flushed == prev:
        if not changed:
            return out
        if changed.keys() <= COUNTERS and now - room.counters_sent_at < counters_every_s:
            return out  # only counters, and they were sent a moment ago: the next batch has them
    if changed.keys() & COUNTERS:
        room.counters_sent_at = now
    room.sent_state = copy_state(room.state)
    out.frame = frames.batch(room.flushed, prev, events, changed)
    return out


# A room that got at most this many events in the last tick interval (and so far in this
# one) is quiet: up to 20 msgs/s at the default 100 ms tick, each event goes out at once.
QUIET_EVENTS = 2


def may_flush_early(room: LocalRoom, now: float, tick_s: float, next_tick: float, coalesce_s: float) -> bool:
    """Adaptive flush: may events that just reached `room` go out `coalesce_s` from `now`
    instead of waiting for the tick?

    Yes when the room is quiet by rate: at most QUIET_EVENTS events in the last tick
    interval and in the current one so far, the last batch at least half a tick old, no
    early flush already scheduled, and the next tick not due within the coalescing window
    anyway. So a quiet room sends each event at once (at most two frames per tick
    interval), and a busy room (a storm) never flushes early: one frame per tick per
    viewer. (The rule is by rate, not "no batch since the last tick": at 13 msgs/s that
    older rule let one event land in a tick's batch, and then every later one waited for
    a tick too.)"""
    return (room.early is None and room.events_last_tick <= QUIET_EVENTS and room.events_this_tick <= QUIET_EVENTS
            and now - room.last_flush_at >= tick_s / 2 and next_tick - now > coalesce_s)
