"""Error codes and close codes of the wire contract (DESIGN.md, "Wire contract")."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """Codes carried in `reply.error.code` and `error.code`."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    MUTED = "muted"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    NOT_STARTED = "not_started"
    ENDED = "ended"
    SOLD_OUT = "sold_out"
    LIMIT_REACHED = "limit_reached"
    ALREADY_CLAIMED = "already_claimed"
    TOO_LONG = "too_long"
    BLOCKED_WORD = "blocked_word"
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """Websocket close codes the server uses."""

    SERVER_RESTARTING = 1012  # reconnect with `since`
    OVERLOADED = 1013
    BAD_TOKEN = 4401
    BANNED = 4403
    NO_SUCH_ROOM = 4404
    TOO_SLOW = 4408
    ABUSE = 4429


class ProtocolError(Exception):
    """A client frame that cannot be accepted.

    `frame_id` is the client's `id` when it could be read, so the error goes out as a
    `reply` to that id; without it the error goes out as an `error` frame.
    """

    def __init__(self, code: ErrorCode, message: str, frame_id: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id
