"""The `demo` room that exists on first start, with a few sample products."""

from __future__ import annotations

from liveserver.engine.engine import RoomEngine

DEMO_ROOM = "demo"

DEMO_PRODUCTS = [
    {"id": "tea", "title": "West Lake Longjing tea, 250 g", "price": 12800,
     "image": "/static/products/tea.svg", "points": ["spring harvest", "hand roasted"]},
    {"id": "mug", "title": "Celadon mug", "price": 5900,
     "image": "/static/products/mug.svg", "points": ["dishwasher safe"]},
    {"id": "scarf", "title": "Silk scarf", "price": 19900,
     "image": "/static/products/scarf.svg", "points": ["mulberry silk", "gift box"]},
]


async def ensure_demo_room(engine: RoomEngine) -> None:
    if await engine.room_exists(DEMO_ROOM):
        return
    await engine.put_room(DEMO_ROOM, {"title": "Demo live room", "status": "live"})
    await engine.set_products(DEMO_ROOM, DEMO_PRODUCTS)
