"""A warning that may fire once per connection or op: during a Redis outage or failover
thousands fire at once, and one line per second (with how many were left out) says as
much as a thousand lines."""

from __future__ import annotations

import logging
import time
from typing import Any


class QuietLog:
    __slots__ = ("logger", "every_s", "_at", "_skipped")

    def __init__(self, logger: logging.Logger, every_s: float = 1.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._at = float("-inf")
        self._skipped = 0

    def warning(self, msg: str, *args: Any) -> None:
        """Log `msg % args` unless this QuietLog logged less than `every_s` ago."""
        now = time.monotonic()
        if now - self._at < self.every_s:
            self._skipped += 1
            return
        if self._skipped:
            msg += " (%d more like it in the last %.0f s, not logged)"
            args = (*args, self._skipped, now - self._at)
        self._at, self._skipped = now, 0
        self.logger.warning(msg, *args)
