"""Failover with no lost order: a Redis Cluster primary is SIGKILLed in the middle of a
2,000-buyer flash sale while the node runs with LIVESERVER_REDIS_WAIT_REPLICAS=1.

The client side records every acknowledged order. After the replica is promoted (and the
dead primary is back as a replica, so WAIT can be satisfied again), every acknowledged
order exists, nothing is oversold, and a buyer who got an error and retried with the same
key got one answer: all of a key's `ok` replies name the same order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis

from harness import Client, Node, RedisClusterServers, admin_headers, create_room, free_port, node_env
from liveserver.engine.commerce_keys import CommerceKeys
from waiting import wait_until

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}]
BUYERS = 2000
STOCK = 500
KILL_AFTER = 150  # acknowledged orders before the primary dies
FIRST_WAVE = 300  # buyers before the kill: fewer than STOCK, so the sale goes on through the failover


def api(node: Node, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=admin_headers(), timeout=10)


@pytest.fixture
def private_cluster():
    """A cluster of its own: this test kills one of its primaries."""
    cluster = RedisClusterServers().start()
    yield cluster
    cluster.stop()


@pytest.mark.timeout(300)
async def test_primary_killed_mid_sale_loses_no_acknowledged_order(private_cluster: RedisClusterServers,
                                                                    room_name: str) -> None:
    cluster = private_cluster
    node = Node(port=free_port(), env=node_env(cluster.url, LIVESERVER_REDIS_WAIT_REPLICAS="1",
                                               LIVESERVER_OP_RATE="1000")).start()
    try:
        create_room(node, room_name, PRODUCTS)
        r = api(node, "POST", f"/rooms/{room_name}/sales",
                {"product_id": "tea", "price": 9900, "stock": STOCK, "per_user_limit": 1, "duration_s": 600})
        assert r.status_code == 201, r.text
        sale_id = r.json()["sale"]["id"]
        victim = cluster.master_of(CommerceKeys(room_name).sale(sale_id))
        watcher = await Client.connect(node, room_name, user="watcher")

        replies: dict[str, list[dict]] = {}  # user -> every reply to their buy (same key each time)
        acked = 0
        killed = asyncio.Event()
        refused = 0  # connects refused (1013) while the room's primary was down
        after_kill: list[str] = []  # orders acknowledged after the kill

        deadline = time.monotonic() + 150  # for the whole sale, failover included

        async def buyer(user: str) -> None:
            nonlocal acked, refused
            got = replies.setdefault(user, [])
            while time.monotonic() < deadline:
                try:
                    c = await Client.connect(node, room_name, user=user)
                except Exception:  # the node refuses viewers while Redis is unreachable
                    refused += 1
                    await asyncio.sleep(0.3)
                    continue
                try:
                    while time.monotonic() < deadline:
                        reply = await c.request("buy", timeout=30, sale=sale_id, qty=1, key=f"key-{user}")
                        got.append(reply)
                        if reply["ok"]:
                            acked += 1
                            if killed.is_set():
                                after_kill.append(user)
                            if acked >= KILL_AFTER and not killed.is_set():
                                killed.set()
                                victim.kill()  # SIGKILL the primary that owns the sale
                            return
                        if reply["error"]["code"] != "internal":
                            return  # sold_out: a final answer
                        assert reply["error"].get("retry") is True, reply  # clean and retryable
                        await asyncio.sleep(0.3)
                finally:
                    await c.close()

        sem = asyncio.Semaphore(300)

        async def bounded(i: int) -> None:
            if i >= FIRST_WAVE:  # the rest arrive as the primary dies: mid-sale for sure
                await asyncio.wait_for(killed.wait(), 120)
            async with sem:
                await buyer(f"buyer{i}")

        async def bring_back() -> None:
            """Once a replica took over, restart the dead primary: it rejoins as a replica,
            so WAIT 1 can be met again (with no replica, nothing is acknowledged)."""
            await killed.wait()

            async def promoted() -> bool:
                def check() -> bool:
                    try:
                        return cluster.master_of(CommerceKeys(room_name).sale(sale_id)) is not victim
                    except (LookupError, redis.RedisError):
                        return False  # no live primary for the slot yet
                return await asyncio.to_thread(check)

            await wait_until(promoted, timeout=30, interval=0.2, what="a replica to be promoted")
            victim.start()

        restarter = asyncio.create_task(bring_back())
        await asyncio.gather(*(bounded(i) for i in range(BUYERS)))
        await asyncio.wait_for(restarter, 60)
        assert killed.is_set(), "the sale ended before the primary was killed"

        # Every user has a final answer, and every key got one answer.
        orders: dict[str, str] = {}
        for user, got in replies.items():
            assert got and (got[-1]["ok"] or got[-1]["error"]["code"] == "sold_out"), (user, got[-3:])
            ok = {x["data"]["order"] for x in got if x["ok"]}
            assert len(ok) <= 1, (user, got)
            if ok:
                orders[user] = ok.pop()
        assert len(set(orders.values())) == len(orders)
        assert len(orders) == STOCK  # sold out exactly: nothing oversold, nothing lost
        # Every acknowledged order exists after the promotion.
        async with httpx.AsyncClient(headers=admin_headers(), timeout=httpx.Timeout(30, pool=None),
                                     limits=httpx.Limits(max_connections=50)) as http:
            found = await asyncio.gather(*(http.get(f"{node.http}/api/v1/orders/{o}") for o in orders.values()))
        assert all(f.status_code == 200 for f in found), [f.text for f in found if f.status_code != 200][:3]
        assert {f.json()["order"]["user"] for f in found} == set(orders)
        audit = api(node, "GET", f"/sales/{sale_id}/audit").json()
        assert audit["ok"], audit["problems"]
        assert audit["stock"] == 0 and audit["reserved"] == STOCK and audit["buyers"] == STOCK
        # The node's stream reader followed the room to its new primary: a notice posted
        # now reaches a viewer who stayed connected through the failover, with no gap.
        r = api(node, "POST", f"/rooms/{room_name}/notices", {"text": "after the failover"})
        assert r.status_code == 201, r.text
        await watcher.wait_event("notice", lambda e: e["offset"] == r.json()["offset"], timeout=15)
        assert watcher.gaps == []
        await watcher.close()
        errors = sum(1 for got in replies.values() for x in got if not x["ok"] and x["error"]["code"] == "internal")
        assert len(after_kill) >= STOCK - FIRST_WAVE, "the sale did not go on through the failover"
        print(f"failover: {errors} retryable buy errors, {refused} refused connects, {len(orders)} orders "
              f"({len(after_kill)} after the kill), killed {victim.port} at ack {KILL_AFTER}")
    finally:
        node.kill()


@pytest.mark.timeout(180)
async def test_a_stalled_primary_unready_then_recovered(private_cluster: RedisClusterServers, room_name: str) -> None:
    """A Cluster primary frozen (SIGSTOP) for 5 s, long enough for its replica to take
    over: the node reports 503 on /readyz, comes back by itself, buys with WAIT 1 give one
    answer per key and the stock audit holds, and a viewer kept through it misses nothing."""
    import signal

    cluster = private_cluster
    node = Node(port=free_port(), env=node_env(cluster.url, LIVESERVER_REDIS_WAIT_REPLICAS="1",
                                               LIVESERVER_OP_RATE="1000")).start()
    try:
        create_room(node, room_name, PRODUCTS)
        r = api(node, "POST", f"/rooms/{room_name}/sales",
                {"product_id": "tea", "price": 9900, "stock": 100, "per_user_limit": 100, "duration_s": 600})
        sale_id = r.json()["sale"]["id"]
        watcher = await Client.connect(node, room_name, user="watcher")
        buyer = await Client.connect(node, room_name, user="buyer")
        victim = cluster.master_of(CommerceKeys(room_name).sale(sale_id))

        async def ready() -> int:
            try:
                async with httpx.AsyncClient(timeout=3) as http:
                    return (await http.get(node.http + "/readyz")).status_code
            except httpx.HTTPError:
                return 0

        answers: dict[str, list[dict]] = {}

        async def buy(key: str, until: float) -> None:
            got = answers.setdefault(key, [])
            while time.monotonic() < until:
                try:
                    reply = await buyer.request("buy", timeout=20, sale=sale_id, qty=1, key=key)
                except asyncio.TimeoutError:
                    continue
                got.append(reply)
                if reply["ok"]:
                    return
                assert reply["error"]["code"] == "internal" and reply["error"]["retry"] is True, reply
                await asyncio.sleep(0.2)

        await buy("before", time.monotonic() + 10)
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGSTOP)
        try:
            await wait_until(lambda: _eq(ready(), 503), timeout=5, interval=0.1, what="/readyz 503 while frozen")
            during = [asyncio.create_task(buy(f"during{i}", time.monotonic() + 60)) for i in range(5)]
            await asyncio.sleep(5)  # the freeze lasts 5 s
        finally:
            victim.proc.send_signal(signal.SIGCONT)  # it wakes up demoted: its replica took over
        await wait_until(lambda: _eq(ready(), 200), timeout=30, interval=0.2, what="/readyz back to 200")
        await asyncio.gather(*during)
        await buy("after", time.monotonic() + 30)
        orders = {}
        for key, got in answers.items():
            ok = {x["data"]["order"] for x in got if x["ok"]}
            assert len(ok) == 1, (key, got)  # one answer per key, and every key got one
            orders[key] = ok.pop()
        audit = api(node, "GET", f"/sales/{sale_id}/audit").json()
        assert audit["ok"], audit["problems"]
        # Every acknowledged order survived; no other order exists (one unit per key).
        assert audit["reserved"] == len(orders) == 7 and audit["stock"] == 100 - 7
        note = api(node, "POST", f"/rooms/{room_name}/notices", {"text": "after the freeze"}).json()["offset"]
        await watcher.wait_event("notice", lambda e: e["offset"] == note, timeout=15)
        assert watcher.gaps == []
        assert node.proc is not None and node.proc.poll() is None
        await watcher.close()
        await buyer.close()
    finally:
        node.kill()


async def _eq(status: "asyncio.Future[int] | Any", want: int) -> bool:
    return await status == want
