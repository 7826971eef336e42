"""Client -> server frames: `{op, id?, ...}`, validated into `ClientOp`.

`parse_op` raises `ProtocolError` with the documented code. It knows nothing about
rooms or users; limits that depend on configuration (text length, blocked words) are
checked by the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .codes import ErrorCode, ProtocolError

MAX_ID_LEN = 64
MAX_STR_FIELD = 256  # ids, keys, names; danmaku text has its own limit


@dataclass(frozen=True, slots=True)
class ClientOp:
    op: str
    id: int | str | None
    args: dict[str, Any] = field(default_factory=dict)


# op -> {field: (type, required, bounds)}; bounds are (min, max) for ints, max length for str.
_INT = "int"
_STR = "str"
_NUM = "num"
_BOOL = "bool"
_ENUM = "enum"  # bounds: the allowed strings

OP_FIELDS: dict[str, dict[str, tuple[str, bool, Any]]] = {
    "danmaku": {"text": (_STR, True, 4096)},
    "like": {"n": (_INT, False, (1, 50))},
    "buy": {"sale": (_STR, True, MAX_STR_FIELD), "qty": (_INT, False, (1, 99)), "key": (_STR, True, MAX_STR_FIELD),
            "coupon": (_STR, False, MAX_STR_FIELD)},
    "group_join": {"group": (_STR, True, MAX_STR_FIELD), "team": (_STR, False, MAX_STR_FIELD),
                   "key": (_STR, True, MAX_STR_FIELD)},
    "follow": {"on": (_BOOL, False, None)},
    "invite": {"ref": (_STR, True, MAX_STR_FIELD)},
    "prize_claim": {"lottery": (_STR, True, MAX_STR_FIELD), "name": (_STR, True, MAX_STR_FIELD),
                    "phone": (_STR, True, 40), "address": (_STR, True, MAX_STR_FIELD)},
    "claim": {"coupon": (_STR, True, MAX_STR_FIELD)},
    "enter": {"lottery": (_STR, True, MAX_STR_FIELD)},
    "vote": {"poll": (_STR, True, MAX_STR_FIELD), "option": (_INT, True, (0, 63))},
    "click": {"product": (_STR, True, MAX_STR_FIELD)},
    "ping": {"client_ms": (_NUM, False, None)},
    "linkmic": {"action": (_ENUM, True, ("request", "cancel", "join"))},
}

DEFAULTS: dict[str, dict[str, Any]] = {"like": {"n": 1}, "buy": {"qty": 1}, "follow": {"on": True}}

OPS = frozenset(OP_FIELDS)


def _is_number(value: Any) -> bool:
    """A finite number a JS client can read back: inf/NaN are not JSON (1e999 in a ping
    would be echoed as `Infinity`), and huge ints fit neither msgpack nor a JS double."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**53) < value < 2**53
    return isinstance(value, float) and math.isfinite(value)


def frame_id(frame: dict[str, Any]) -> int | str | None:
    """The client's `id` if it is usable, else None (the error then has no `re`)."""
    value = frame.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -(2**53) < value < 2**53:
        return value
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN:
        return value
    return None


def parse_op(frame: dict[str, Any]) -> ClientOp:
    fid = frame_id(frame)
    if "id" in frame and frame["id"] is not None and fid is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"id must be an integer or a string of 1..{MAX_ID_LEN} chars")
    op = frame.get("op")
    if not isinstance(op, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "missing op", fid)
    spec = OP_FIELDS.get(op)
    if spec is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown op {op[:32]!r}", fid)
    args: dict[str, Any] = dict(DEFAULTS.get(op, {}))
    for name, (kind, required, bounds) in spec.items():
        if name not in frame or frame[name] is None:
            if required:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: missing field {name!r}", fid)
            continue
        value = frame[name]
        if kind == _STR:
            if not isinstance(value, str) or not value:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: {name} must be a non-empty string", fid)
            if len(value) > bounds:
                raise ProtocolError(ErrorCode.TOO_LONG, f"{op}: {name} is longer than {bounds}", fid)
        elif kind == _INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: {name} must be an integer", fid)
            low, high = bounds
            if not low <= value <= high:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: {name} must be in {low}..{high}", fid)
        elif kind == _BOOL:
            if not isinstance(value, bool):
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: {name} must be true or false", fid)
        elif kind == _ENUM:
            if not isinstance(value, str) or value not in bounds:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: {name} must be one of {', '.join(bounds)}", fid)
        elif kind == _NUM:
            if not _is_number(value):
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{op}: {name} must be a finite number", fid)
        args[name] = value
    return ClientOp(op=op, id=fid, args=args)
