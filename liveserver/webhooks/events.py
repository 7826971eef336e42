"""Webhook event types and the one way to produce an event (`emit`).

An event is delivered as the JSON envelope `{"id", "type", "room", "ts", "data"}`; `id` is
stable across retries and duplicates (deduplicate on it), `ts` is when it happened (ms)."""

from __future__ import annotations

import json
import time
from typing import Any

from liveserver.engine.webhook_store import WebhookStore

EVENT_TYPES = (
    "order.reserved", "order.paid", "order.expired", "group.completed", "group.failed", "lottery.drawn",
    "room.live", "room.ended", "followup", "reminder",
)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def envelope(event_id: str, event_type: str, room: str, ts_ms: int, data: Any) -> str:
    return _dumps({"id": event_id, "type": event_type, "room": room, "ts": ts_ms, "data": data})


async def emit(store: WebhookStore, event_type: str, room: str, data: Any, event_id: str,
               ts_ms: int | None = None) -> bool:
    """Queue one event for every matching hook; an `event_id` already emitted is ignored
    (so a producer may safely emit again after a crash). True when queued now."""
    assert event_type in EVENT_TYPES, event_type
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    return await store.emit(event_id, event_type, room, envelope(event_id, event_type, room, ts, data), ts)
