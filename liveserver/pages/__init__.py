"""The viewer page `/rooms/{room}` and the host console `/console/{room}`."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
