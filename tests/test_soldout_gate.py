"""The sold-out gate (commerce/soldout.py): once a node has seen a sale's stock at 0, late
buyers get buy.lua's own `sold_out` reply from the node, without a script call; a holder's
retry, a limit breach and a unit that comes back still go to Redis and get Redis's answer."""

from __future__ import annotations

import asyncio

import pytest

from harness import Client, Node, RedisServer, create_room, metric
from test_commerce_sale import PRODUCTS, audit, make_sale
from waiting import wait_until


@pytest.fixture(scope="module")
def redis_server(redis_backend: RedisServer) -> RedisServer:
    """Runs on one Redis and on a Redis Cluster (conftest.redis_backend)."""
    return redis_backend


def gated(node: Node) -> float:
    """The node's count of buys it refused by its gate."""
    return metric(node, "liveserver_buys_gated_total")


async def close_gate(node: Node, client: Client, sale_id: str, key: str = "probe") -> dict:
    """Buy as a non-holder until this node answers by its gate (it closes in the background
    once it has seen the stock at 0); returns that gated reply."""
    before = gated(node)
    attempt = 0

    async def refused_here() -> dict | None:
        nonlocal attempt
        attempt += 1
        reply = await client.request("buy", sale=sale_id, qty=1, key=f"{key}{attempt}")
        assert not reply["ok"] and reply["error"]["code"] == "sold_out", reply
        return reply if gated(node) > before else None

    return await wait_until(refused_here, timeout=10, interval=0.05, what="the node's sold-out gate to close")


async def test_late_buyers_are_refused_by_the_node_with_redis_reply(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    sale = make_sale(node, room_name, stock=3, limit=2)
    alice = await Client.connect(node, room_name, user="alice")
    bob = await Client.connect(node, room_name, user="bob")
    carol = await Client.connect(node, room_name, user="carol")
    first_a = await alice.request("buy", sale=sale["id"], qty=1, key="a1")
    first_b = await bob.request("buy", sale=sale["id"], qty=2, key="b1")
    assert first_a["ok"] and first_b["ok"] and first_b["data"]["stock"] == 0
    from_redis = await carol.request("buy", sale=sale["id"], qty=1, key="c0")
    assert gated(node) == 0  # the first refusal came from buy.lua
    from_gate = await close_gate(node, carol, sale["id"])
    assert from_gate["error"] == from_redis["error"] == {"code": "sold_out", "message": "sold out", "stock": 0}

    # Every later non-holder within the limit is answered here.
    before = gated(node)
    replies = await asyncio.gather(*(carol.request("buy", sale=sale["id"], qty=q, key=f"late{i}")
                                     for i, q in enumerate([1, 2] * 20)))
    assert all(r["error"]["code"] == "sold_out" for r in replies)
    assert gated(node) == before + 40

    # What Redis must decide still reaches Redis, and gets Redis's answer.
    retry = await bob.request("buy", sale=sale["id"], qty=2, key="b1")  # a holder's retry
    assert retry["ok"] and retry["data"] == first_b["data"]
    more = await alice.request("buy", sale=sale["id"], qty=1, key="a2")  # a holder, new key
    assert more["error"]["code"] == "sold_out"
    over = await carol.request("buy", sale=sale["id"], qty=3, key="big")  # over the per-user limit
    assert over["error"]["code"] == "limit_reached"
    assert gated(node) == before + 40
    result = audit(node, sale["id"])
    assert result["ok"] and result["orders"] == 2 and result["stock"] == 0, result
    for c in (alice, bob, carol):
        await c.close()


@pytest.mark.timeout(120)
async def test_a_unit_that_comes_back_is_sold_again(start_node, room_name: str) -> None:
    node = start_node(LIVESERVER_ORDER_TTL_S="2", LIVESERVER_OP_RATE="1000")
    create_room(node, room_name, PRODUCTS)
    sale = make_sale(node, room_name, stock=1, limit=1)
    alice = await Client.connect(node, room_name, user="alice")
    dave = await Client.connect(node, room_name, user="dave")
    assert (await alice.request("buy", sale=sale["id"], qty=1, key="a"))["ok"]
    await close_gate(node, dave, sale["id"])
    # alice does not pay: her order expires, the unit returns, and the `live` event opens the gate
    back = await dave.wait_event("sale", lambda e: e["sale"]["id"] == sale["id"] and e["sale"]["phase"] == "live",
                                 timeout=20)
    assert back["sale"]["stock"] == 1
    before = gated(node)
    got = await dave.request("buy", sale=sale["id"], qty=1, key="after")
    assert got["ok"], got
    assert gated(node) == before
    result = audit(node, sale["id"])
    assert result["ok"] and (result["stock"], result["reserved"], result["expired"]) == (0, 1, 1), result
    await alice.close()
    await dave.close()


@pytest.mark.timeout(120)
async def test_another_node_closes_its_gate_from_the_sold_out_event(start_node, room_name: str) -> None:
    a = start_node(LIVESERVER_OP_RATE="1000")
    b = start_node(LIVESERVER_OP_RATE="1000")
    create_room(a, room_name, PRODUCTS)
    sale = make_sale(a, room_name, stock=2, limit=1)
    late = await Client.connect(b, room_name, user="late")
    buyers = [await Client.connect(a, room_name, user=u) for u in ("u1", "u2")]
    for c in buyers:
        assert (await c.request("buy", sale=sale["id"], qty=1, key="k"))["ok"]
    await late.wait_event("sale", lambda e: e["sale"]["id"] == sale["id"] and e["sale"]["phase"] == "sold_out")
    # b has sent no buy to Redis: the event alone closes its gate
    await wait_until(lambda: metric(b, "liveserver_sales_gated") == 1, what="node b to close its gate")
    reply = await late.request("buy", sale=sale["id"], qty=1, key="k")
    assert reply["error"]["code"] == "sold_out" and gated(b) == 1
    assert gated(a) == 0
    result = audit(a, sale["id"])
    assert result["ok"] and result["orders"] == 2, result
    for c in (late, *buyers):
        await c.close()


async def test_a_rush_on_one_node_sends_few_buys_to_redis(start_node, room_name: str) -> None:
    """400 buyers at once for 5 units: the node keeps at most max(stock, 64) buys in flight,
    so most wait for the gate and are refused here (unpaced, a node sends every buy it has
    read before the first refusal is back)."""
    node = start_node(LIVESERVER_OP_RATE="100000")
    create_room(node, room_name, PRODUCTS)
    sale = make_sale(node, room_name, stock=5, limit=1)
    buyers = await asyncio.gather(*(Client.connect(node, room_name, user=f"r{i}") for i in range(400)))
    await buyers[0].wait_state(lambda s: s.get("sales", {}).get(sale["id"], {}).get("stock") == 5)
    replies = await asyncio.gather(*(c.request("buy", timeout=30, sale=sale["id"], qty=1, key="k") for c in buyers))
    codes = [r["error"]["code"] if not r["ok"] else "ok" for r in replies]
    assert codes.count("ok") == 5 and codes.count("sold_out") == 395
    assert gated(node) >= 200, gated(node)  # measured: 272 paced, 0 unpaced
    result = audit(node, sale["id"])
    assert result["ok"] and result["orders"] == 5, result
    for c in buyers:
        await c.close()


async def test_pacing_gives_back_the_turn_of_a_cancelled_buyer() -> None:
    """The pacing bookkeeping alone (no Redis call is made by admit/done)."""
    from liveserver.commerce.soldout import MIN_IN_FLIGHT, SoldOutGate

    gate = SoldOutGate(store=None)  # type: ignore[arg-type]
    for _ in range(MIN_IN_FLIGHT):
        await asyncio.wait_for(gate.admit("r.s1", 0), 1)
    waiter = asyncio.ensure_future(gate.admit("r.s1", 0))
    later = asyncio.ensure_future(gate.admit("r.s1", 0))
    await asyncio.sleep(0)
    assert not waiter.done() and not later.done()
    gate.done("r.s1", 0)  # one answered: the first waiter gets its turn...
    waiter.cancel()  # ...but its buyer left before using it
    await asyncio.gather(waiter, return_exceptions=True)
    await asyncio.wait_for(later, 1)  # the turn went on to the next
    for _ in range(MIN_IN_FLIGHT):
        gate.done("r.s1", 0)
    assert not gate._flows  # nothing left behind


async def test_the_gate_forgets_ended_sales_and_keeps_a_bounded_number() -> None:
    """A node may outlive many rooms: a sale it no longer hears about must not stay forever."""
    from liveserver.commerce import soldout

    gate = soldout.SoldOutGate(store=None)  # type: ignore[arg-type]
    far = 10**15
    gate._sales["r.s0"] = soldout._Closed(1, 1, frozenset())  # ended long ago
    for i in range(1, soldout.MAX_SALES + 10):
        gate._sales[f"r.s{i}"] = soldout._Closed(far, 1, frozenset())
    gate._forget_old(now=2)
    assert "r.s0" not in gate._sales
    assert len(gate._sales) == soldout.MAX_SALES - 1 and "r.s1" not in gate._sales
    assert f"r.s{soldout.MAX_SALES + 9}" in gate._sales  # the newest stay
