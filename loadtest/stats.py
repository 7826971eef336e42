"""What one generator process measures, and how snapshots of it travel to the coordinator.

Counters are plain ints; latencies go into HdrHistograms (microseconds). Every second the
worker sends an interval snapshot (for the live view and the plots) and at the end the
totals (for the report). Both are plain dicts, so they pickle across processes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from . import hist

# Reply kinds whose latency is measured from the intended send time.
REPLY_KINDS = ("buy", "claim", "enter", "danmaku")

# Refusals that are the normal answer of a busy sale, not failures of the server.
BUSINESS_CODES = {
    "buy": {"sold_out", "limit_reached", "not_started", "ended"},
    "claim": {"sold_out", "already_claimed", "not_started", "ended"},
    "enter": {"not_started", "ended"},
    "danmaku": set(),
}


@dataclass
class WorkerStats:
    counters: Counter[str] = field(default_factory=Counter)
    events: HdrHistogram = field(default_factory=hist.new)
    replies: dict[str, HdrHistogram] = field(default_factory=lambda: {k: hist.new() for k in REPLY_KINDS})
    connect: HdrHistogram = field(default_factory=hist.new)
    # interval parts, reset by `interval()`
    _iv_events: HdrHistogram = field(default_factory=hist.new)
    _iv_counters: Counter[str] = field(default_factory=Counter)
    connected: int = 0
    online: int = 0
    loop_lag_ms: float = 0.0
    # buy outcomes: sale id -> order id -> qty (to cross-check the server's audit)
    orders: dict[str, dict[str, int]] = field(default_factory=dict)
    claims_ok: Counter[str] = field(default_factory=Counter)
    reply_codes: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def add(self, name: str, n: int = 1) -> None:
        self.counters[name] += n
        self._iv_counters[name] += n

    def error(self, name: str, sample: str = "") -> None:
        self.add(name)
        self.add("errors")
        if sample and len(self.error_samples) < 20:
            self.error_samples.append(f"{name}: {sample}"[:300])

    def event_latency(self, ms: float) -> None:
        hist.record_ms(self.events, ms)
        hist.record_ms(self._iv_events, ms)

    def interval(self, second: int = 0) -> dict[str, Any]:
        out = {
            "second": second,
            "counters": dict(self._iv_counters),
            "events": hist.encode(self._iv_events) if self._iv_events.get_total_count() else "",
            "connected": self.connected,
            "online": self.online,
            "loop_lag_ms": round(self.loop_lag_ms, 2),
        }
        self._iv_counters = Counter()
        self._iv_events = hist.new()
        self.loop_lag_ms = 0.0
        return out

    def final(self) -> dict[str, Any]:
        return {
            "counters": dict(self.counters),
            "events": hist.encode(self.events),
            "replies": {k: hist.encode(h) for k, h in self.replies.items()},
            "connect": hist.encode(self.connect),
            "orders": self.orders,
            "claims_ok": dict(self.claims_ok),
            "reply_codes": dict(self.reply_codes),
            "close_codes": dict(self.close_codes),
            "error_samples": self.error_samples,
        }
