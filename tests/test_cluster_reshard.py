"""Resharding under a live room: the slot of a room is migrated to another primary
(CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) while a host publishes and
a viewer on another node watches. Publishing goes on (ASK/TRYAGAIN are retried), and the
viewer gets every event, in order, with an unbroken chain: the node's stream reader
follows the slot to its new primary."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis

from harness import Client, Node, RedisClusterServers, admin_headers, create_room, free_port, node_env
from liveserver.engine.keys import RoomKeys


def migrate_slot(cluster: RedisClusterServers, slot: int, src: redis.Redis, dst: redis.Redis, dst_port: int) -> int:
    """Move `slot` from `src` to `dst` the way redis-cli --cluster reshard does; returns keys moved."""
    src_id, dst_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    moved = 0
    while True:
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
        if not keys:
            break
        src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 0, 5000, "KEYS", *keys)
        moved += len(keys)
    for n in cluster.nodes:
        if n.alive():
            try:
                n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            except redis.ResponseError:
                pass  # replicas refuse SETSLOT; they follow their primary
    return moved


@pytest.mark.timeout(120)
async def test_a_live_rooms_slot_moves_to_another_primary(redis_cluster: RedisClusterServers, room_name: str) -> None:
    cluster = redis_cluster
    a = Node(port=free_port(), env=node_env(cluster.url)).start()
    b = Node(port=free_port(), env=node_env(cluster.url)).start()
    try:
        create_room(a, room_name)
        viewer = await Client.connect(b, room_name, user="v")
        key = RoomKeys(room_name).events
        src = cluster.master_of(key)
        dst = next(n for n in cluster.nodes if n.alive() and n is not src
                   and n.client().info("replication")["role"] == "master")
        slot = src.client().execute_command("CLUSTER", "KEYSLOT", key)
        published: list[str] = []
        stop = asyncio.Event()

        async def publish() -> None:
            async with httpx.AsyncClient(headers=admin_headers(), timeout=10) as http:
                i = 0
                while not stop.is_set():
                    r = await http.post(f"{a.http}/api/v1/rooms/{room_name}/notices", json={"text": f"n{i}"})
                    if r.status_code == 201:
                        published.append(r.json()["offset"])
                        i += 1
                    else:  # a refusal during the move must be clean and retryable
                        assert r.status_code == 503 and r.json()["error"]["retry"] is True, r.text
                    await asyncio.sleep(0.005)

        publisher = asyncio.create_task(publish())
        while len(published) < 30:
            await asyncio.sleep(0.02)
        moved = await asyncio.to_thread(migrate_slot, cluster, slot, src.client(), dst.client(), dst.port)
        assert moved > 0
        assert cluster.master_of(key) is dst
        count = len(published)
        while len(published) < count + 30:  # keep publishing on the new primary
            await asyncio.sleep(0.02)
        stop.set()
        await publisher
        last = published[-1]
        await viewer.wait_for(lambda f: f.get("t") == "batch" and f["offset"] == last, timeout=15)
        assert [e["offset"] for e in viewer.events if e["k"] == "notice"] == published
        assert viewer.gaps == []  # every batch continued the previous one
        await viewer.close()
    finally:
        a.kill()
        b.kill()
