"""JSON Schemas of the room endpoints' bodies (commerce kinds keep their own schemas)."""

from __future__ import annotations

from liveserver.core.http_api import CENTS, ID, TEXT, obj


ROOM_PUT = obj(
    [],
    title={"type": "string", "maxLength": 200},
    status={"enum": ["preview", "live", "paused", "ended"]},
    start_ms={"type": "integer", "minimum": 0, "maximum": 10**14},
    host_name={"type": "string", "maxLength": 100},
    description={"type": "string", "maxLength": 1000},
)

PRODUCT = obj(
    ["id", "title", "price"],
    id=ID,
    title={"type": "string", "minLength": 1, "maxLength": 200},
    price=CENTS,
    image={"type": "string", "maxLength": 2000},
    points={"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 10},
)

PRODUCTS_PUT = obj(["products"], products={"type": "array", "items": PRODUCT, "maxItems": 500})

NOTICE = obj(["text"], text=TEXT)

MUTE = obj(["user", "duration_s"], user={"type": "string", "minLength": 1, "maxLength": 128},
           duration_s={"type": "integer", "minimum": 0, "maximum": 30 * 86400})

BAN = obj(["user"], user={"type": "string", "minLength": 1, "maxLength": 128}, banned={"type": "boolean"})
