"""HdrHistograms of latencies in microseconds, and their merge across processes.

Generator processes send `encode()`d histograms (compressed, base64) to the coordinator,
which adds them up: the merged percentiles are exactly those of one histogram that saw
every value.
"""

from __future__ import annotations

from typing import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT)


def record_ms(hist: HdrHistogram, ms: float) -> None:
    """Record a latency given in (fractional) milliseconds; clamped into range."""
    us = int(ms * 1000)
    hist.record_value(min(max(us, LOWEST_US), HIGHEST_US))


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode(data: str | bytes) -> HdrHistogram:
    return HdrHistogram.decode(data.encode("ascii") if isinstance(data, str) else data)


def merge(parts: Iterable[HdrHistogram | str | bytes]) -> HdrHistogram:
    total = new()
    for part in parts:
        if isinstance(part, (str, bytes)):
            if not part:
                continue
            part = decode(part)
        if part.get_total_count():
            total.add(part)
    return total


def summary_ms(hist: HdrHistogram) -> dict[str, float]:
    """count, p50/p90/p99/p99.9, max and mean in milliseconds (0 when empty)."""
    count = hist.get_total_count()
    out: dict[str, float] = {"count": count}
    for p in PERCENTILES:
        out[f"p{p:g}"] = round(hist.get_value_at_percentile(p) / 1000, 3) if count else 0.0
    out["max"] = round(hist.get_max_value() / 1000, 3) if count else 0.0
    out["mean"] = round(hist.get_mean_value() / 1000, 3) if count else 0.0
    return out
