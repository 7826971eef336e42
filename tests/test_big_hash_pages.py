"""Audits read a room's orders and a sale's buyers in HSCAN pages (`CommerceStore.hash_pages`)
rather than one HGETALL that would hold the node's loop while a million entries are parsed.
Paging must still return every entry exactly once, on one Redis and on a Redis Cluster."""

from __future__ import annotations

import orjson

from harness import RedisClusterServers, RedisServer
from liveserver.core.config import Settings
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.commerce_store import CommerceStore
from liveserver.engine.connect import connect

N = 2_500  # several pages of 1,000


async def test_orders_and_big_hash_read_every_entry_once(redis_backend: RedisServer | RedisClusterServers,
                                                         room_name: str) -> None:
    engine = await connect(redis_backend.url, Settings.from_env())
    try:
        store = CommerceStore(engine, 900)
        keys = CommerceKeys(room_name)
        orders = {f"o{i}": {"id": f"o{i}", "sale": "s1" if i % 2 else "s2", "qty": 1 + i % 3} for i in range(N)}
        redis = engine.redis
        await redis.hset(keys.order_data(), mapping={k: orjson.dumps(v).decode() for k, v in orders.items()})
        await redis.hset(keys.sale_users("s1"), mapping={f"u{i}": i for i in range(N)})

        read = await store.orders(room_name)
        assert len(read) == N
        assert {o["id"]: o for o in read} == orders

        s1 = await store.orders(room_name, keep=lambda o: o["sale"] == "s1")
        assert sorted(o["id"] for o in s1) == sorted(k for k, v in orders.items() if v["sale"] == "s1")

        holders = await store.big_hash(keys.sale_users("s1"))
        assert holders == {f"u{i}": str(i) for i in range(N)}
        pages = [page async for page in store.hash_pages(keys.sale_users("s1"))]
        assert len(pages) > 1 and sum(map(len, pages)) >= N

        assert await store.orders(f"{room_name}-empty") == []
        assert await store.big_hash(keys.sale_users("none")) == {}
    finally:
        await engine.close()
