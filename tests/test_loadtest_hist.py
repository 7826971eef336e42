"""HdrHistograms recorded in separate processes and merged give the same percentiles as
one histogram that saw every value."""

from __future__ import annotations

import multiprocessing as mp
import random

from loadtest import hist


def record_part(values: list[float]) -> str:
    h = hist.new()
    for v in values:
        hist.record_ms(h, v)
    return hist.encode(h)


def test_merge_across_processes_equals_one_histogram() -> None:
    rng = random.Random(7)
    # A long-tailed latency mix, like a real run: mostly ticks, some stalls.
    values = [rng.lognormvariate(3.5, 0.8) for _ in range(40_000)] + [rng.uniform(500, 5000) for _ in range(200)]
    rng.shuffle(values)
    parts = [values[i::3] for i in range(3)]
    with mp.get_context("spawn").Pool(2) as pool:
        encoded = pool.map(record_part, parts)
    merged = hist.merge(encoded)
    single = hist.new()
    for v in values:
        hist.record_ms(single, v)
    assert merged.get_total_count() == single.get_total_count() == len(values)
    for p in (1, 10, 50, 90, 99, 99.9, 99.99, 100):
        assert merged.get_value_at_percentile(p) == single.get_value_at_percentile(p), p
    assert merged.get_max_value() == single.get_max_value()
    assert merged.get_min_value() == single.get_min_value()
    assert hist.summary_ms(merged) == hist.summary_ms(single)
    # and the summary is in milliseconds, within HDR's 3 significant digits
    assert abs(hist.summary_ms(merged)["max"] - max(values)) <= max(values) * 0.001 + 0.001


def test_merge_skips_empty_parts() -> None:
    h = hist.new()
    hist.record_ms(h, 12.5)
    merged = hist.merge(["", hist.encode(hist.new()), hist.encode(h)])
    assert merged.get_total_count() == 1
    assert abs(hist.summary_ms(merged)["p50"] - 12.5) <= 0.02
    assert hist.summary_ms(hist.new())["p99"] == 0.0
