"""The after-live pages render without JavaScript errors: the screenshot scene of
`afterlive_screenshots.py` (report, print view, replay, trailer) played for a few seconds
into a temp dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_report_replay_trailer_pages(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(HERE / "afterlive_screenshots.py"), "--seconds", "5", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=240, cwd=HERE.parent.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("report-desktop.png", "report-print.png", "replay-desktop.png", "trailer-desktop.png", "trailer-phone.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
