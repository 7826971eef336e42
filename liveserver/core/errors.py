"""The one error type the layers above the engine raise for a refused request."""

from __future__ import annotations

from typing import Any

from protocol import ErrorCode


class OpError(Exception):
    """A request refused with a documented code (`reply.error` / host API error)."""

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra
