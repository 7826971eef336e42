"""Event offsets are Redis stream entry IDs, `<ms>-<seq>`, compared as integer pairs."""

from __future__ import annotations

import re

_OFFSET = re.compile(r"^(\d{1,20})-(\d{1,20})$")
ZERO = "0-0"


def parse_offset(value: str) -> tuple[int, int] | None:
    """(ms, seq) for a well-formed offset, else None."""
    m = _OFFSET.fullmatch(value) if isinstance(value, str) else None  # `$` would allow "1-2\n"
    if m is None:
        return None
    ms, seq = int(m.group(1)), int(m.group(2))
    if ms >= 2**64 or seq >= 2**64:
        return None
    return ms, seq


def offset_key(value: str) -> tuple[int, int]:
    """Sort key of a well-formed offset (raises ValueError otherwise)."""
    parsed = parse_offset(value)
    if parsed is None:
        raise ValueError(f"bad offset {value!r}")
    return parsed
