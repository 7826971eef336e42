"""Server -> client frames. Each builder returns the map that a codec encodes."""

from __future__ import annotations

from typing import Any

from .codes import ErrorCode


def welcome(
    room: str,
    user: dict[str, Any],
    server_ms: int,
    epoch: str,
    offset: str,
    recovered: bool,
    state: dict[str, Any],
) -> dict[str, Any]:
    return {
        "t": "welcome",
        "room": room,
        "user": user,
        "server_ms": server_ms,
        "epoch": epoch,
        "offset": offset,
        "recovered": recovered,
        "state": state,
    }


def batch(offset: str, prev: str, events: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, Any]:
    """`prev` is the offset this batch follows, so a client can tell that it missed nothing."""
    return {"t": "batch", "offset": offset, "prev": prev, "events": events, "state": state}


def reply_ok(re: int | str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"t": "reply", "re": re, "ok": True, "data": data or {}}


def reply_error(re: int | str, code: ErrorCode | str, message: str, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": str(code), "message": message}
    error.update(extra)
    return {"t": "reply", "re": re, "ok": False, "error": error}


def pong(client_ms: float | None, server_ms: int, re: int | str | None = None) -> dict[str, Any]:
    """A ping's answer (a ping never gets a `reply`); `re` echoes the ping's `id` if it had one."""
    out: dict[str, Any] = {"t": "pong", "client_ms": client_ms, "server_ms": server_ms}
    if re is not None:
        out["re"] = re
    return out


def error(code: ErrorCode | str, message: str) -> dict[str, Any]:
    return {"t": "error", "code": str(code), "message": message}
