"""Product cards: the host pushes a product to every viewer and it stays pinned;
viewers' clicks on it are counted."""

from __future__ import annotations

import json
from typing import Any

from protocol import ClientOp

from liveserver.commerce.common import room_product
from liveserver.commerce.kind import CommerceKind, Objects
from liveserver.core.http_api import API, ID, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler
from liveserver.engine.commerce_store import CommerceStore
from liveserver.engine.engine import Event, LoadSpec

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

CARD = obj(["product_id"], product_id=ID)


class Cards(CommerceKind):
    name = "card"
    event = "card"

    def __init__(self, store: CommerceStore) -> None:
        super().__init__(store)
        self.rooms = store.rooms

    def load_spec(self, room: str) -> LoadSpec | None:
        return None  # the pinned card lives in the room's meta hash

    def loaded_from_meta(self, meta: dict[str, str]) -> dict[str, Any]:
        raw = meta.get("card")
        return {"card": json.loads(raw) if raw else None}

    def apply(self, objects: Objects, event: Event) -> dict[str, Any]:
        return {"card": event.get("product")}

    async def push(self, room: str, product_id: str) -> tuple[dict[str, Any], str]:
        product = await room_product(self.rooms, room, product_id)
        published = await self.rooms.publish(room, "card", {"product": product}, pins={"card": _dumps(product)})
        assert published is not None
        return product, published[0]

    def ops(self) -> dict[str, OpHandler]:
        async def click(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            await self.store.click(ctx.room, op.args["product"], ctx.user)
            return {}

        return {"click": click}


def _cards(call: Call) -> Cards:
    return call.services.commerce.kind(Cards)


@API.add("POST", "/rooms/{room}/cards", "Push a product card to every viewer and pin it", body=CARD,
         status=201, tag="commerce")
async def post_card(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    product, offset = await _cards(call).push(room, call.body["product_id"])
    return {"card": product, "offset": offset}
