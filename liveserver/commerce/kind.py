"""`CommerceKind`: the one interface every kind of commerce object (sales, coupons,
lotteries, polls, cards, ...) implements, so adding a kind is one module here, its Lua
file(s), protocol entries and page code.

A kind says: its keys (index + key segment), how it loads in the room-open round trip,
how an event changes its state, what it polls per tick, the viewer ops it serves, its
scheduled jobs, and (at import, through `liveserver.core.http_api.API`) its routes and schemas.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from protocol import ErrorCode

from liveserver.commerce.common import ints
from liveserver.core.errors import OpError
from liveserver.core.ops import DanmakuListener, LeaveListener, OpHandler, OrderEntryHandler
from liveserver.engine.commerce_keys import CommerceKeys, room_of
from liveserver.engine.commerce_store import CommerceStore, Read
from liveserver.engine.engine import Event, LoadSpec

Objects = dict[str, dict[str, Any]]  # object id -> its state view, per room
JobAction = Callable[[str], Awaitable[object]]  # runs a scheduled job for one object id


class CommerceKind:
    name = ""  # state key and index name, e.g. "sales"
    event = ""  # stream event kind that carries one object under this key, e.g. "sale"
    key_segment = ""  # object key: lc:{room}:<segment>:<id>
    extras: tuple[tuple[str, str], ...] = ()  # (read, suffix) loaded with each object
    load_count = 20  # newest objects loaded when a node opens a room

    def __init__(self, store: CommerceStore) -> None:
        self.store = store
        self._objects_of: Callable[[str, str], Objects] = lambda room, kind: {}

    def bind(self, objects_of: Callable[[str, str], Objects]) -> None:
        """Called by CommerceState: how this kind reads its objects of a room on this node."""
        self._objects_of = objects_of

    def objects_of(self, room: str) -> Objects:
        return self._objects_of(room, self.name)

    async def load(self, object_id: str, int_fields: tuple[str, ...], what: str = "") -> dict[str, Any]:
        """One object's hash by id (its room is the part before the first '.'), numbers as
        ints; not_found when there is none."""
        room = room_of(object_id)
        raw = await self.store.hash(CommerceKeys(room).sub(f"{self.key_segment}:{object_id}")) if room else None
        if not raw:
            raise OpError(ErrorCode.NOT_FOUND, f"no {what or self.event} {object_id!r}")
        return ints(raw, int_fields)

    # -- opening a room (one round trip for every kind) ------------------------------
    def load_spec(self, room: str) -> LoadSpec | None:
        keys = CommerceKeys(room)
        return LoadSpec(self.name, keys.index(self.name), keys.sub(self.key_segment + ":"), self.load_count, self.extras)

    def loaded(self, fields: dict[str, str], extras: list[Any]) -> dict[str, Any] | None:
        """The state view of one loaded object; None leaves it out (e.g. a drop not yet fired)."""
        return None

    def loaded_from_meta(self, meta: dict[str, str]) -> dict[str, Any]:
        """State this kind keeps in the room's meta hash (e.g. the pinned card)."""
        return {}

    # -- events ------------------------------------------------------------------------
    def handles(self) -> tuple[str, ...]:
        """The stream event kinds this kind's state follows."""
        return (self.event,) if self.event else ()

    def apply(self, objects: Objects, event: Event) -> dict[str, Any]:
        """Change state from one event of this kind; returns room-state keys it sets directly."""
        update = event.get(self.event)
        if isinstance(update, dict) and "id" in update:
            objects.setdefault(update["id"], {}).update(update)
        return {}

    # -- once per tick -------------------------------------------------------------------
    def reads(self, room: str, object_id: str, obj: dict[str, Any], now: int) -> list[Read]:
        """Counters that change without events (stock, entrants, ...), for open objects."""
        return []

    def absorb(self, obj: dict[str, Any], values: list[Any]) -> None:
        """Take the values of `reads` (same order)."""

    def advance(self, obj: dict[str, Any], now: int) -> None:
        """Move a phase along the clock (scheduled -> live -> ended)."""

    def state(self, objects: Objects) -> dict[str, Any]:
        """The room-state keys this kind owns, from its objects."""
        return {}

    def room_reads(self, room: str) -> list[Read]:
        """Per-room counters polled once per tick that belong to no object (e.g. followers)."""
        return []

    def room_absorb(self, room: str, values: list[Any], state: dict[str, Any]) -> dict[str, Any]:
        """Room-state keys from the values of `room_reads` (same order); `state` is the room's state."""
        return {}

    async def after_refresh(self) -> None:
        """Writes a kind decided on during the tick's refresh (e.g. a new peak online)."""

    # -- what it serves ------------------------------------------------------------------
    def ops(self) -> dict[str, OpHandler]:
        return {}

    def jobs(self) -> dict[str, JobAction]:
        return {}

    def danmaku_listener(self) -> DanmakuListener | None:
        return None

    def leave_listener(self) -> LeaveListener | None:
        return None

    def order_entry_handlers(self) -> dict[str, OrderEntryHandler]:
        """Orders-stream entry type -> what the webhook relay does with it (see core/ops.py)."""
        return {}
