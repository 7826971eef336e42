"""JSON Schemas of host API bodies (used to validate and to write the OpenAPI document)."""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
CENTS = {"type": "integer", "minimum": 0, "maximum": 10**12}
TEXT = {"type": "string", "minLength": 1, "maxLength": 500}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}


ROOM_PUT = obj(
    [],
    title={"type": "string", "maxLength": 200},
    status={"enum": ["preview", "live", "paused", "ended"]},
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
