"""`liveload run` end to end against a real node (real Redis): the shipped smoke script
passes its checks, and a threshold nobody can meet makes the exit code non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import ROOT, SECRET, Node

SMOKE = ROOT / "loadtest" / "scenarios" / "smoke.yaml"


def liveload(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadtest.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**__import__("os").environ, "LIVESERVER_SECRET": SECRET, "COLUMNS": "160"})


def test_smoke_scenario_passes_its_checks(node: Node, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = liveload("run", str(SMOKE), "--target", node.http, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    assert summary["passed"] and all(c["ok"] for c in summary["checks"])
    assert m["viewers_peak"] == 50 and m["online_peak"] >= 50
    assert m["gaps"] == 0 and m["errors"] == 0 and m["out_of_order"] == 0
    assert m["deliveries"] > 0 and m["p99_latency_ms"] > 0
    # the reconnect storm resumed every dropped viewer without losing the chain
    assert m["resumes"] == 10 and m["resume_unrecovered"] == 0
    # the flash sale: 20 units, 40 buyers -> exactly 20 orders, audited by the server
    assert m["orders"] == 20 and m["oversold"] == 0
    (sale, audit), = summary["sales"].items()
    assert audit["ok"] and audit["initial"] == 20 and audit["units_sold_to_clients"] == 20
    assert summary["reply_codes"]["buy:sold_out"] == 40  # 20 losers, each retried once: same answer
    assert m["coupons_claimed"] == 10
    assert (out / "report.html").read_text().count("PASS") >= 4


TINY = """\
name: tiny
room: tiny
unique_room: true
duration_s: 2.5
drain_s: 0.5
workers: 1
phases:
  - viewers: {ramp_to: 5, over: 0.2}
  - danmaku: {rate: 4, from: 0.5, to: 2}
checks:
  - gaps == 0
"""


def test_broken_threshold_fails_the_run(node: Node, tmp_path: Path) -> None:
    script = tmp_path / "tiny.yaml"
    script.write_text(TINY)
    result = liveload("run", str(script), "--target", node.http, "--quiet", "--check", "p99_latency_ms <= 0.001")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL p99_latency_ms <= 0.001" in result.stdout
    assert "PASS gaps == 0" in result.stdout


def test_bad_script_is_a_usage_error(tmp_path: Path) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text(TINY.replace("rate: 4", "rate: -4"))
    result = liveload("run", str(script), "--target", "http://127.0.0.1:9", "--quiet")
    assert result.returncode == 2
    assert "bad.yaml:9:" in result.stderr and "must be >= 0" in result.stderr
