"""Both pages render at phone and desktop size without errors or sideways scrolling
(the same scene `python tests/browser/screenshots.py` captures into docs/screenshots/)."""

from __future__ import annotations

from pathlib import Path

from harness import Node
from screenshots import capture


def test_screenshots_of_both_pages_at_both_sizes(browser, live_node: Node, room: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shots = capture(browser, live_node, room, tmp_path)
    names = {p.name for p in shots}
    assert {"viewer-phone.png", "viewer-desktop.png", "console-phone.png", "console-desktop.png"} <= names
    for path in shots:
        assert path.stat().st_size > 10_000, path  # a real picture, not a blank page
