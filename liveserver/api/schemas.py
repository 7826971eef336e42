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

# -- commerce --------------------------------------------------------------------------
PRICE = {"type": "integer", "minimum": 0, "maximum": 10**10}  # cents; keeps amounts exact in Lua
DURATION = {"type": "integer", "minimum": 1, "maximum": 7 * 86400}

CARD = obj(["product_id"], product_id=ID)

SALE = {
    **obj(
        ["product_id", "price", "stock", "duration_s"],
        product_id=ID,
        price=PRICE,
        stock={"type": "integer", "minimum": 1, "maximum": 10**7},
        per_user_limit={"type": "integer", "minimum": 1, "maximum": 10**6},
        start_in_s={"type": "integer", "minimum": 0, "maximum": 30 * 86400},
        start_ms={"type": "integer", "minimum": 0},
        duration_s=DURATION,
    ),
    "not": {"required": ["start_in_s", "start_ms"]},
}

COUPON = obj(
    ["title", "amount", "quantity", "duration_s"],
    title={"type": "string", "minLength": 1, "maxLength": 100},
    amount={"type": "integer", "minimum": 1, "maximum": 10**10},
    min_spend=PRICE,
    quantity={"type": "integer", "minimum": 1, "maximum": 10**7},
    per_user={"type": "integer", "minimum": 1, "maximum": 99},
    duration_s=DURATION,
    at_ms={"type": "integer", "minimum": 0},
    repeat={"type": "integer", "minimum": 1, "maximum": 100},
    every_s={"type": "integer", "minimum": 1, "maximum": 86400},
)

LOTTERY = obj(
    ["prize", "winners", "duration_s"],
    prize={"type": "string", "minLength": 1, "maxLength": 200},
    winners={"type": "integer", "minimum": 1, "maximum": 1000},
    keyword={"type": "string", "minLength": 1, "maxLength": 20},
    duration_s=DURATION,
)

POLL = obj(
    ["question", "options", "duration_s"],
    question={"type": "string", "minLength": 1, "maxLength": 200},
    options={"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}, "minItems": 2, "maxItems": 10},
    duration_s=DURATION,
)
