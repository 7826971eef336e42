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


def may_flush_early(room: LocalRoom, now: float, tick_s: float, next_tick: float, coalesce_s: float) -> bool:
    """Adaptive flush: may events that just reached `room` go out `coalesce_s` from `now`
    instead of waiting for the tick?

    Yes when the room is quiet: no batch went out since the last tick (neither the tick's
    nor an early one), the last batch is at least half a tick old, and the next tick is not
    due within the coalescing window anyway. A busy room's tick always sends a batch, so it
    never flushes early: a storm still costs one frame per tick per viewer. At most two
    frames go out per tick interval (an early one, then the tick's), never two within half a
    tick."""
    return (room.early is None and not room.flushed_since_tick
            and now - room.last_flush_at >= tick_s / 2 and next_tick - now > coalesce_s)
