"""`state.media` on web nodes: a hub state source fed by the room's `media` events.

A media process that dies cannot announce the end of its lives; its lease in Redis
expires instead. So every `CHECK_EVERY` ticks the rooms this node shows as live are
checked for an owner, and shown offline when there is none."""

from __future__ import annotations

import json
from typing import Any

from liveserver.engine.engine import KeyRead, LoadSpec, RoomSnapshot
from liveserver.engine.media_store import MediaStore, media_key, offline_state

CHECK_EVERY = 20  # ticks (2 s at the default 100 ms)


class MediaState:
    """Loads `state.media` when a node opens a room; each `media` event replaces it."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store
        self._ticks = 0

    def load_specs(self, room: str) -> list[LoadSpec | KeyRead]:
        # Read in the room-open round trip with everything else.
        return [KeyRead("media", media_key(room)), KeyRead("media_owner", media_key(room, "owner"))]

    def loaded(self, room: str, snapshot: RoomSnapshot) -> dict[str, Any]:
        raw = (snapshot.values.get("media") or {}).get("state")
        media = json.loads(raw) if raw else offline_state()
        if media.get("live") and not snapshot.values.get("media_owner"):
            media = offline_state(None)  # its media process died without saying so
        return {"media": media}

    def apply(self, room: Any, event: dict[str, Any]) -> None:
        if event.get("k") == "media" and isinstance(event.get("media"), dict):
            room.state["media"] = event["media"]

    async def refresh(self, rooms: list[Any], polled: list[Any]) -> None:
        self._ticks += 1
        if self._ticks % CHECK_EVERY:
            return
        live = [r for r in rooms if isinstance(r.state.get("media"), dict) and r.state["media"].get("live")]
        for room, owner in zip(live, await self.store.owners([r.name for r in live])):
            if owner is None:  # the media process is gone without saying so
                room.state["media"] = offline_state(None)
