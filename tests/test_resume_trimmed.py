"""Resume from "0-0" after the stream was trimmed by a script other than publish.lua.

A viewer that joined while the room stream was empty resumes from "0-0"; that is only
safe if trimming never dropped an event, which the room's `trimmed` flag records. Here
every trim happens inside buy.lua (its sold-out `sale` events), so the flag must be set
by every writer of the stream, not only by publish.lua. With no archiver running (the
node runs none here), a writer trims at 10x MAXLEN; archive_copy.lua, which trims to MAXLEN
once the archive holds everything, sets the flag too (tests/test_archive.py).
"""

from __future__ import annotations

import httpx

from harness import Client, RedisServer, admin_headers, create_room
from liveserver.engine.keys import RoomKeys

SALES = 110  # 110 `sale` events from creating + 110 sold-out events from buying: > 200 entries


async def test_resume_from_zero_after_trim_by_sales_only(start_node, redis_server: RedisServer, room_name: str) -> None:
    node = start_node(LIVESERVER_STREAM_MAXLEN="10", LIVESERVER_OP_RATE="500", LIVESERVER_ARCHIVE="0")
    create_room(node, room_name, products=[{"id": "p1", "title": "Mug", "price": 100}])
    early = await Client.connect(node, room_name, user="early")
    assert early.offset == "0-0"
    epoch = early.welcome["epoch"]
    await early.close()

    redis = redis_server.client()
    keys = RoomKeys(room_name)
    # Stream nodes of exactly 100 entries, so the writers' `MAXLEN ~ 100` (10x MAXLEN)
    # trims only once 200 entries exist: the first trim then happens in a buy, not while
    # the sales are created.
    saved = redis.config_get("stream-node-max-*")
    redis.config_set("stream-node-max-bytes", 0)
    redis.config_set("stream-node-max-entries", 100)
    try:
        await _trim_by_sales_then_resume(node, redis, keys, room_name, epoch)
    finally:
        for name, value in saved.items():
            redis.config_set(name, value)


async def _trim_by_sales_then_resume(node, redis, keys: RoomKeys, room_name: str, epoch: str) -> None:
    with httpx.Client(timeout=10) as http:
        sales = []
        for _ in range(SALES):
            r = http.post(f"{node.http}/api/v1/rooms/{room_name}/sales", headers=admin_headers(),
                          json={"product_id": "p1", "price": 100, "stock": 1, "per_user_limit": 1, "duration_s": 600})
            assert r.status_code == 201, r.text
            sales.append(r.json()["sale"]["id"])
    assert redis.xlen(keys.events) == SALES  # publish.lua has not trimmed anything yet
    assert not redis.hexists(keys.meta, "trimmed")

    buyer = await Client.connect(node, room_name, user="buyer")
    for i, sale in enumerate(sales):
        reply = await buyer.request("buy", sale=sale, qty=1, key=f"k{i}")
        assert reply["ok"], reply
    await buyer.close()
    assert redis.xlen(keys.events) < 2 * SALES  # buy.lua's sold-out events trimmed the stream

    late = await Client.connect(node, room_name, user="early", since="0-0", epoch=epoch)
    try:
        # Events from the first ones on are gone: the client must not be told "no gap".
        assert late.welcome["recovered"] is False, late.welcome
    finally:
        await late.close()
