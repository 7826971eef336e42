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


# Counters change nearly every tick in a busy room (a join, a leave, a like, a unit sold).
# Alone they go out at most once per `counters_every_s`; any batch sent for another reason
# carries them. COUNTERS are whole state keys; COUNT_FIELDS are the remaining-units fields
# of commerce objects (a sale's stock, a coupon drop's left): a change of those alone is a
# counter change too, except the one to 0 (sold out / all claimed goes out at once).
COUNTERS = frozenset({"likes", "online", "peak_online", "danmaku_dropped"})
COUNT_FIELDS = {"sales": "stock", "coupons": "left"}


def counters_period(counters_ms: int, viewers: int, frames_per_s: int) -> float:
    """Seconds between batches that only carry counts, for a room with `viewers` here:
    `counters_ms`, and longer in a big room so that such batches cost at most
    `frames_per_s` writes a second (10,000 viewers at 2,000: every 5 s). Counts alone cost
    a write per viewer; in a join storm they were a fifth of the node's CPU."""
    return max(counters_ms / 1000, viewers / frames_per_s)


def _counts_only(key: str, old: Any, new: Any) -> bool:
    """Is the change of state key `key` from `old` to `new` only counters moving?"""
    if key in COUNTERS:
        return True
    field = COUNT_FIELDS.get(key)
    if field is None or not isinstance(old, dict) or not isinstance(new, dict) or old.keys() != new.keys():
        return False
    for oid, obj in new.items():
        before = old[oid]
        if not isinstance(obj, dict) or not isinstance(before, dict) or obj.keys() != before.keys():
            return False
        if obj.get(field) == 0 and before.get(field) != 0:
            return False
        if any(v != before[k] for k, v in obj.items() if k != field):
            return False
    return True


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
        if (now - room.counters_sent_at < counters_every_s
                and all(_counts_only(k, room.sent_state.get(k), v) for k, v in changed.items())):
            return out  # only counters, and they were sent a moment ago: the next batch has them
    room.counters_sent_at = now  # every batch carries every changed counter
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
