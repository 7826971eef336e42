"""`python -m loadtest.publish_cost` runs end to end on a few events, so the tool cannot
rot, and its archive passes leave the stream trimmed to about MAXLEN. Speed is not checked
here: the figures go in docs/performance.md with the command that made them."""

from __future__ import annotations

import re
import subprocess
import sys

from harness import ROOT


def test_publish_cost_smoke() -> None:
    run = subprocess.run([sys.executable, "-m", "loadtest.publish_cost", "--events", "400", "--maxlen", "10",
                          "--archive-every", "100"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    found = re.search(r"400 events at MAXLEN 10: publish.lua ([\d.]+) µs .* archiving ([\d.]+) µs per event "
                      r"archived \((\d+) passes\); stream holds (\d+)", run.stdout)
    assert found, run.stdout
    assert float(found[1]) > 0 and float(found[2]) > 0 and int(found[3]) == 4
    assert 10 <= int(found[4]) <= 110  # the last pass trimmed to MAXLEN ~ 10
