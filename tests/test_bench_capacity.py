"""`liveload bench capacity` and `bench idle` run end to end with tiny numbers, so the tools
cannot rot. This checks that the reports are produced, not performance: the figures are in
docs/performance.md with the commands that made them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import ROOT

PEERS = "liveserver,websockets"  # both ship with the repo's own deps


def liveload(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadtest.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_bench_capacity_smoke(tmp_path: Path) -> None:
    run = liveload("bench", "capacity", "--peers", PEERS, "--start", "4", "--growth", "1.5", "--max-viewers", "6",
                   "--stage-seconds", "1", "--settle-seconds", "0.3", "--probes", "2", "--publishers", "2",
                   "--danmaku-rate", "20", "--like-rate", "40", "--p99-limit", "5000", "--delivery-floor", "0",
                   "--no-pin", "--out", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "capacity.json").read_text())
    results = {r["peer"]: r for r in report["results"]}
    assert set(results) == {"liveserver", "websockets"}
    for peer, r in results.items():
        assert "error" not in r, (peer, r)
        assert r["stages"] and r["stages"][0]["viewers"] == 4, r
        assert {"p99_ms", "delivered_pct", "gen_lag_max_ms", "server_cpu_pct", "sink_kib_per_s"} <= set(r["stages"][0])
    assert results["liveserver"]["stages"][0]["sink_kib_per_s"] > 0  # the sinks did read the room
    table = (tmp_path / "capacity.md").read_text()
    assert "| liveserver |" in table and "viewers held" in table


def test_bench_idle_smoke(tmp_path: Path) -> None:
    run = liveload("bench", "idle", "--peers", PEERS, "--viewers", "20", "--no-pin", "--out", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    results = {r["peer"]: r for r in json.loads((tmp_path / "idle.json").read_text())["results"]}
    assert results["liveserver"]["viewers"] == 20 and results["websockets"]["viewers"] == 20, results
    assert "KiB per idle viewer" in (tmp_path / "idle.md").read_text()
