"""`QuietLog`: during an outage every joining viewer is refused and every leave fails;
one line a second with a count says the same as thousands."""

from __future__ import annotations

import logging
from typing import Any

from liveserver.core import quietlog
from liveserver.core.quietlog import QuietLog


def test_one_line_per_interval_then_the_count_of_what_was_left_out(caplog: Any, monkeypatch: Any) -> None:
    now = [100.0]
    monkeypatch.setattr(quietlog.time, "monotonic", lambda: now[0])
    log = QuietLog(logging.getLogger("test.quietlog"), every_s=1.0)
    with caplog.at_level(logging.WARNING, logger="test.quietlog"):
        for i in range(1000):  # a thousand refusals within half a second
            log.warning("refusing a viewer of %s: %s", "r1", f"error {i}")
            now[0] += 0.0005
        assert [r.getMessage() for r in caplog.records] == ["refusing a viewer of r1: error 0"]
        now[0] += 1.0
        log.warning("refusing a viewer of %s: %s", "r1", "error 1000")
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage() == "refusing a viewer of r1: error 1000 (999 more like it in the last 2 s, not logged)"
