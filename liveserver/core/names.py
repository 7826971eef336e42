"""Rules for names that every layer checks (room names end up in keys, URLs and logs)."""

from __future__ import annotations

import functools
import re

ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@functools.lru_cache(maxsize=4096)  # a node checks the same few names on every buy and join
def valid_room(name: str) -> bool:
    return bool(ROOM_NAME.match(name))
