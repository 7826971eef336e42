"""`CommerceState`: the commerce part of a room's `state` on one node, driven by the kinds.

It is the hub's state source for commerce: at room open it hands the hub one load spec
per kind (all read in one round trip); events tell each kind what changed; the counters that change without events are polled
in one pipeline for the rooms the hub says are due (once per LIVESERVER_COUNTERS_MS: they
go out no more often than that), and phases move along the clock every tick.
"""

from __future__ import annotations

from typing import Any, Sequence

from liveserver.commerce.common import now_ms
from liveserver.commerce.kind import CommerceKind, Objects
from liveserver.engine.commerce_store import CommerceStore, Read
from liveserver.engine.engine import Event, LoadSpec, RoomSnapshot
from liveserver.hub.room import LocalRoom


class CommerceState:
    def __init__(self, store: CommerceStore, kinds: Sequence[CommerceKind]) -> None:
        self.store = store
        self.kinds = list(kinds)
        self._by_event = {e: k for k in self.kinds for e in k.handles()}
        self.rooms: dict[str, dict[str, Objects]] = {}  # room -> kind name -> objects
        # Rooms loaded but not yet seen in a tick's room list: a room opened while a tick
        # awaits is missing from that tick's list and must not be dropped as closed.
        self._opening: set[str] = set()
        for kind in self.kinds:
            kind.bind(self.objects)

    def objects(self, room: str, kind: str) -> Objects:
        return self.rooms.get(room, {}).get(kind, {})

    # -- StateSource -----------------------------------------------------------------------
    def load_specs(self, room: str) -> list[LoadSpec]:
        return [spec for kind in self.kinds if (spec := kind.load_spec(room)) is not None]

    def loaded(self, room: str, snapshot: RoomSnapshot) -> dict[str, Any]:
        per_kind: dict[str, Objects] = {}
        state: dict[str, Any] = {}
        for kind in self.kinds:
            objects: Objects = {}
            for object_id, fields, extras in snapshot.objects.get(kind.name, []):
                view = kind.loaded(fields, extras) if fields else None
                if view is not None:
                    objects[object_id] = view
            per_kind[kind.name] = objects
            state.update(kind.loaded_from_meta(snapshot.meta))
            state.update(kind.state(objects))
        self.rooms[room] = per_kind
        self._opening.add(room)
        return state

    def apply(self, room: LocalRoom, event: Event) -> None:
        kind = self._by_event.get(event["k"])
        per_kind = self.rooms.get(room.name)
        if kind is None or per_kind is None:
            return
        objects = per_kind.setdefault(kind.name, {})
        room.state.update(kind.apply(objects, event))
        room.state.update(kind.state(objects))

    async def refresh(self, rooms: list[LocalRoom], polled: list[LocalRoom]) -> None:
        now = now_ms()
        reads: list[Read] = []
        takers: list[tuple[CommerceKind, dict[str, Any], int]] = []
        for room in polled:
            for kind in self.kinds:
                for object_id, obj in self.objects(room.name, kind.name).items():
                    wanted = kind.reads(room.name, object_id, obj, now)
                    if wanted:
                        reads.extend(wanted)
                        takers.append((kind, obj, len(wanted)))
        room_takers: list[tuple[LocalRoom, CommerceKind, int]] = []
        for room in polled:
            for kind in self.kinds:
                wanted = kind.room_reads(room.name)
                if wanted:
                    reads.extend(wanted)
                    room_takers.append((room, kind, len(wanted)))
        values = await self.store.read_many(reads) if reads else []
        at = 0
        for kind, obj, n in takers:
            kind.absorb(obj, values[at : at + n])
            at += n
        for local, kind, n in room_takers:
            local.state.update(kind.room_absorb(local.name, values[at : at + n], local.state))
            at += n
        for room in rooms:
            per_kind = self.rooms.get(room.name)
            if per_kind is None:
                continue
            for kind in self.kinds:
                objects = per_kind.get(kind.name, {})
                for obj in objects.values():
                    kind.advance(obj, now)
                room.state.update(kind.state(objects))
        for kind in self.kinds:
            await kind.after_refresh()
        names = {r.name for r in rooms}
        self._opening -= names
        for name in list(self.rooms):
            if name not in names and name not in self._opening:
                del self.rooms[name]  # the hub dropped the room
