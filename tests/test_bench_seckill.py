"""`python -m loadtest.seckill_bench` runs end to end, small, so the tool cannot rot: every
path of the throughput mode buys and its sale passes the audit, and a small rush sells
exactly its stock with one answer per buyer. Speed is not checked here: the figures go in
docs/performance.md with the commands that made them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import ROOT


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "seckill.json"
    run = subprocess.run([sys.executable, "-m", "loadtest.seckill_bench", *args, "--generators", "1",
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


def test_seckill_throughput_smoke(tmp_path: Path) -> None:
    r = _bench(tmp_path, "--seconds", "1", "--buyers", "10", "--concurrency", "10", "--rounds", "2")
    assert len(r["rounds"]) == 2
    for rnd in r["rounds"]:
        for path in ("raw_pipelined", "raw_evalsha", "raw_pipelined_2", "through_server"):
            assert rnd[path]["attempts"] > 0 and rnd[path]["per_s"] > 0, (path, rnd[path])
            assert isinstance(rnd[path]["aof_rewrite"], bool), (path, rnd[path])
        through = rnd["through_server"]
        assert through["ok"] == through["attempts"] and through["n_errors"] == 0, through
        assert len(rnd["audits"]) == 4 and rnd["audit_ok"] is True, rnd["audits"]
        assert sum(a["orders"] for a in rnd["audits"]) >= through["ok"], rnd["audits"]
    assert r["median_ratio_to_pipelined"] > 0


def test_seckill_rush_smoke(tmp_path: Path) -> None:
    r = _bench(tmp_path, "--mode", "rush", "--buyers", "200", "--stock", "20", "--window-ms", "200")
    assert r["ok"] is True
    through = r["through_server"]
    assert through["attempts"] == 200 and through["codes"] == {"ok": 20, "sold_out": 180}, through["codes"]
    assert r["audit"]["orders"] == 20 and r["audit"]["ok"] is True, r["audit"]
    assert r["base_audit"]["orders"] == 20, r["base_audit"]
    assert isinstance(through["counted"], int) and through["counted"] >= 0, through  # frames pushed in the rush
