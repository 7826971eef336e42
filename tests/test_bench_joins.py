"""`liveload bench joins` runs end to end with a small storm, so the tool cannot rot: every
viewer joins, the node is killed and restarted, and every viewer resumes with
`recovered: true`, misses none of the notices published before, during and after the
outage, and keeps an unbroken offset chain. Speed is not checked here: the figures go in
docs/performance.md with the commands that made them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import ROOT

VIEWERS = 50


def test_bench_joins_smoke(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "loadtest.cli", "bench", "joins", "--viewers", str(VIEWERS),
                          "--concurrency", "20", "--no-pin", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "joins.json").read_text())
    assert report["passed"] is True
    results = {r["target"]: r for r in report["results"]}
    assert set(results) == {"liveserver", "websockets"}, results
    for target, r in results.items():
        assert "error" not in r, (target, r)
        storm, resume = r["storm"], r["resume"]
        assert storm["joined"] == VIEWERS and storm["failed"] == 0, (target, storm)
        assert storm["joins_per_s"] > 0 and 0 < storm["p50_ms"] <= storm["p99_ms"], (target, storm)
        assert storm["wall_s"] > 0 and storm["gen_lag_max_ms"] >= 0, (target, storm)
        assert resume["resumed"] == resume["expected"] == VIEWERS, (target, resume)
        assert resume["ready_to_last_s"] is not None and 0 <= resume["ready_to_last_s"] < 30, (target, resume)
        assert resume["downtime_s"] > 0 and resume["attempts"] >= VIEWERS, (target, resume)
    live = results["liveserver"]
    assert live["storm"]["welcome_bytes"] > 200 and live["storm"]["thin_welcomes"] == 0, live["storm"]
    assert live["resume"]["recovered"] == VIEWERS and live["resume"]["unrecovered"] == 0, live["resume"]
    assert live["resume"]["readyz_s"] is not None, live["resume"]
    check = live["check"]
    assert check["notices"] == 3 + 2 + 2, check  # before, during and after the outage (the defaults)
    assert check == {**check, "behind": 0, "gaps": 0, "out_of_order": 0, "missing_notices": 0, "extra_notices": 0,
                     "unrecovered_welcomes": 0}, check
    table = (tmp_path / "joins.md").read_text()
    assert "| liveserver |" in table and "joins/s" in table and "Correctness: pass" in table
