"""Prometheus metrics of one node (a registry per app, so tests can run several)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


# Ops where viewers race for limited stock: a node pause while they come is felt by every
# buyer at once (the GC sweep waits for them to stop, core/gcpolicy.py).
RUSH_OPS = frozenset({"buy", "claim", "enter", "group_join"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("liveserver_connections", "Open viewer websockets on this node", registry=r)
        self.rooms = Gauge("liveserver_rooms", "Rooms with viewers on this node", registry=r)
        self.frames_sent = Counter("liveserver_frames_sent", "Batch frames queued to viewers", registry=r)
        self.events_in = Counter("liveserver_events_in", "Room events read from Redis streams", registry=r)
        self.ops = Counter("liveserver_ops", "Client ops handled", ["op", "result"], registry=r)
        self.tick_seconds = Histogram(
            "liveserver_tick_seconds",
            "Duration of one hub tick",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.danmaku_dropped = Counter("liveserver_danmaku_dropped", "Danmaku not relayed by the storm cap", registry=r)
        self.catch_ups = Counter("liveserver_catch_ups", "Lagging viewers refilled from the stream", registry=r)
        self.slow_closes = Counter("liveserver_slow_closes", "Viewers closed with 4408 (too slow)", registry=r)
        self.abuse_closes = Counter("liveserver_abuse_closes", "Viewers closed with 4429 (abuse)", registry=r)
        self.buys_gated = Counter("liveserver_buys_gated",
                                  "Buys of a sold-out sale answered by this node without Redis", registry=r)
        self.sales_gated = Gauge("liveserver_sales_gated",
                                 "Sold-out sales whose late buyers this node answers without Redis", registry=r)
        self._op_counts: dict[tuple[str, str], Any] = {}
        self.rush_op_at = -1e9  # time.monotonic() of the last RUSH_OPS op, answered or refused

    def op_done(self, op: str, result: str) -> None:
        """Count one op: `ops.labels(...)` looks the child up under a lock on every call,
        once per op (a seckill is thousands a second); the children are kept here. The
        label values are bounded: op names are validated (or "invalid"), results are codes."""
        child = self._op_counts.get((op, result))
        if child is None:
            child = self._op_counts[(op, result)] = self.ops.labels(op, result)
        child.inc()
        if op in RUSH_OPS:
            self.rush_op_at = time.monotonic()

    def rushing(self, within_s: float = 10.0) -> bool:
        """Whether a RUSH_OPS op came in the last `within_s` seconds."""
        return time.monotonic() - self.rush_op_at < within_s

    def render(self) -> bytes:
        return generate_latest(self.registry)
