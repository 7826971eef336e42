"""A room as one node holds it (`LocalRoom`), and what contributes to its `state`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from liveserver.engine.engine import Event, KeyRead, LoadSpec, RoomSnapshot

if TYPE_CHECKING:
    from liveserver.hub.viewer import Viewer


@dataclass(eq=False)
class LocalRoom:
    name: str
    epoch: str
    flushed: str  # offset of the last event flushed to this node's viewers
    viewers: set["Viewer"] = field(default_factory=set)
    pending: list[Event] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    sent_state: dict[str, Any] = field(default_factory=dict)
    # Likes taken on this node for the room, in total since the node started (reopening
    # the room continues it), and the total the last tick report came back for.
    likes_taken: int = 0
    likes_applied: int = 0
    idle_ticks: int = 0
    dropped: int = 0
    # Banned users: read when the room opens here, then kept by its `ban` events (chat.py
    # `apply_bans`); a signed-in viewer not in it is admitted without a Redis call.
    bans: set[str] = field(default_factory=set)
    # live data (stats_tick.lua): session records since the last stats tick, likes for
    # the per-minute series, ticks since the last stats heartbeat, unique viewers so far
    stats_out: list[str] = field(default_factory=list)
    stats_likes: int = 0
    stats_idle: int = 0
    stats_busy: bool = False
    uniques: int = 0
    # Adaptive flush (hub/flush.py `may_flush_early`): when the last batch went out (loop
    # time), events received in the last tick interval and so far in this one, and the
    # early flush now scheduled.
    last_flush_at: float = float("-inf")
    events_last_tick: int = 0
    events_this_tick: int = 0
    early: Any = None  # asyncio.TimerHandle | None
    counters_sent_at: float = float("-inf")  # loop time of the last batch (each carries the counters)
    polled_at: float = float("-inf")  # loop time the tick last re-read the room's counters from Redis
    polled_viewers: int = -1  # this node's viewers of the room at that time


class StateSource(Protocol):
    """Something that contributes keys to a room's `state` (sales, coupons, ...).

    Opening a room is one round trip: the hub gathers every source's `load_specs`, the
    engine reads them all at once, and each source builds its state from the snapshot.
    """

    def load_specs(self, room: str) -> list[LoadSpec | KeyRead]:
        """What this source reads when a node opens `room` (objects by index, or single keys)."""

    def loaded(self, room: str, snapshot: RoomSnapshot) -> dict[str, Any]:
        """The state keys this source owns, from the open snapshot."""

    def apply(self, room: LocalRoom, event: Event) -> None:
        """Update `room.state` from one event of the room stream."""

    async def refresh(self, rooms: list[LocalRoom], polled: list[LocalRoom]) -> None:
        """Once per tick, before the flush. `rooms`: every open room (move clocks along);
        `polled`: those due to re-read what events do not carry (each room once per
        LIVESERVER_COUNTERS_MS, the most often such counts go out)."""


def copy_state(state: Any) -> Any:
    """A deep copy of JSON-like state, so the last sent state can be diffed against."""
    if isinstance(state, dict):
        return {k: copy_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [copy_state(v) for v in state]
    return state
