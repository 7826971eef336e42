"""Shop-wide coupons (usable in every room of a merchant): the hold / buy / commit-or-release
protocol across slots. The same coupon spent in two rooms at the same instant: exactly one
wins; a node that dies between hold and commit loses no coupon (its hold times out)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import httpx
import pytest

from harness import Client, Node, RedisServer, admin_headers, create_room
from waiting import wait_until

from liveserver.commerce import Commerce
from liveserver.commerce.shop import ShopCoupons
from liveserver.core.config import Settings
from liveserver.engine.connect import connect

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}]
HOLD_MS = "1500"


def api(node: Node, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=admin_headers(), timeout=30)


def shop_room(node: Node, room: str, merchant: str, stock: int = 100) -> dict:
    create_room(node, room, PRODUCTS)
    assert api(node, "PUT", f"/rooms/{room}/merchant", {"merchant": merchant}).status_code == 200
    r = api(node, "POST", f"/rooms/{room}/sales", {"product_id": "tea", "price": 5000, "stock": stock,
                                                   "per_user_limit": 10, "duration_s": 600})
    assert r.status_code == 201, r.text
    return r.json()["sale"]


def issue(node: Node, merchant: str, users: list[str], amount: int = 1000) -> str:
    r = api(node, "POST", f"/merchants/{merchant}/coupons", {"users": users, "title": "Shop ¥10", "amount": amount})
    assert r.status_code == 201, r.text
    return r.json()["coupon"]["coupon_id"]


def entry(node: Node, user: str, coupon_id: str) -> dict:
    coupons = api(node, "GET", f"/users/{user}/coupons").json()["coupons"]
    return next(c for c in coupons if c["coupon_id"] == coupon_id)


@pytest.fixture
async def dead_node(redis_server: RedisServer) -> AsyncIterator[ShopCoupons]:
    """The shop-coupon code of a node, in this process: it runs a step and then 'dies'
    (the test simply never runs the next step)."""
    engine = await connect(redis_server.url, Settings.from_env())
    yield Commerce(engine, 900).kind(ShopCoupons)
    await engine.close()


async def test_same_coupon_two_rooms_same_instant_one_wins(start_node, room_name: str) -> None:
    a = start_node(LIVESERVER_SHOP_HOLD_MS=HOLD_MS)
    b = start_node(LIVESERVER_SHOP_HOLD_MS=HOLD_MS)
    merchant = f"m-{room_name}"[:60]
    sale_a = shop_room(a, f"{room_name}-a", merchant)
    sale_b = shop_room(a, f"{room_name}-b", merchant)
    users = [f"s{i}" for i in range(20)]
    coupons = {u: issue(a, merchant, [u]) for u in users}
    in_a = {u: await Client.connect(a, f"{room_name}-a", user=u) for u in users}
    in_b = {u: await Client.connect(b, f"{room_name}-b", user=u) for u in users}
    pairs = await asyncio.gather(*(asyncio.gather(
        in_a[u].request("buy", sale=sale_a["id"], key="k", coupon=coupons[u]),
        in_b[u].request("buy", sale=sale_b["id"], key="k", coupon=coupons[u])) for u in users))
    for u, (ra, rb) in zip(users, pairs):
        wins = [r for r in (ra, rb) if r["ok"]]
        assert len(wins) == 1, (u, ra, rb)  # exactly one room got the coupon
        assert wins[0]["data"]["amount"] == 4000 and wins[0]["data"]["coupon"] == coupons[u]
        loser = ra if not ra["ok"] else rb
        assert loser["error"]["coupon"] == "used"
        e = entry(a, u, coupons[u])
        assert (e["used"], e["usable"], e["orders"]) == (1, 0, [wins[0]["data"]["order"]])
    for sale in (sale_a, sale_b):
        result = api(a, "GET", f"/sales/{sale['id']}/audit").json()
        assert result["ok"], result["problems"]
    for c in (*in_a.values(), *in_b.values()):
        await c.close()


async def test_refused_buy_releases_and_expiry_returns(start_node, room_name: str) -> None:
    a = start_node(LIVESERVER_SHOP_HOLD_MS=HOLD_MS, LIVESERVER_ORDER_TTL_S="1")
    merchant = f"m-{room_name}"[:60]
    sale = shop_room(a, room_name, merchant, stock=1)
    coupon = issue(a, merchant, ["ann", "bo"], amount=7000)
    ann = await Client.connect(a, room_name, user="ann")
    bo = await Client.connect(a, room_name, user="bo")
    assert (await bo.request("buy", sale=sale["id"], key="b", coupon=coupon))["ok"]  # the only unit, owed 0
    refused = await ann.request("buy", sale=sale["id"], key="a", coupon=coupon)
    assert refused["error"]["code"] == "sold_out"
    assert entry(a, "ann", coupon)["usable"] == 1  # the hold was released at once
    # bo's order expires unpaid: the unit and the shop coupon come back (once)
    await wait_until(lambda: entry(a, "bo", coupon)["usable"] == 1, timeout=15, interval=0.2,
                     what="bo's shop coupon back after his order expired")
    assert entry(a, "bo", coupon)["used"] == 0
    result = api(a, "GET", f"/sales/{sale['id']}/audit").json()
    assert result["ok"] and result["expired"] == 1, result
    elsewhere = await ann.request("buy", sale=sale["id"], key="c", coupon="shop:other.c1")
    assert elsewhere["error"]["coupon"] == "not_in_wallet"
    await ann.close()
    await bo.close()


async def test_node_dies_between_hold_and_commit(start_node, dead_node: ShopCoupons, room_name: str) -> None:
    a = start_node(LIVESERVER_SHOP_HOLD_MS=HOLD_MS)  # a live node: its sweeper settles holds
    merchant = f"m-{room_name}"[:60]
    sale = shop_room(a, room_name, merchant)
    store = dead_node.store
    c1, c2, c3 = (issue(a, merchant, [u]) for u in ("u1", "u2", "u3"))
    # u1: the node held the coupon and died before the buy: the hold times out, the coupon is back
    held = await store.shop_hold(merchant, "u1", c1, f"{room_name}|{sale['id']}|u1|k", 1000)
    assert held["ok"] and entry(a, "u1", c1)["usable"] == 0
    await wait_until(lambda: entry(a, "u1", c1)["usable"] == 1, timeout=10, interval=0.2,
                     what="the abandoned hold to be released")
    # u2: held and bought, died before the commit: the sweeper commits it (the order keeps it)
    hold2 = f"{room_name}|{sale['id']}|u2|k"
    held = await store.shop_hold(merchant, "u2", c2, hold2, 1000)
    bought = await store.buy(room_name, sale["id"], "u2", 1, "k", "", {
        "coupon_id": c2, "merchant": merchant, "hold": hold2, "amount": held["amount"], "min_spend": 0})
    assert bought["ok"] and bought["amount"] == 4000
    await wait_until(lambda: entry(a, "u2", c2)["used"] == 1, timeout=10, interval=0.2,
                     what="the used hold to be committed")
    e2 = entry(a, "u2", c2)
    assert e2["usable"] == 0 and e2["orders"] == [bought["order"]]
    # u3: held, then the buy came too late (after the sweeper settled the hold): refused, not spent
    hold3 = f"{room_name}|{sale['id']}|u3|k"
    held = await store.shop_hold(merchant, "u3", c3, hold3, 1000)
    await wait_until(lambda: entry(a, "u3", c3)["usable"] == 1, timeout=10, interval=0.2,
                     what="the third hold to be released")
    late = await store.buy(room_name, sale["id"], "u3", 1, "k", "", {
        "coupon_id": c3, "merchant": merchant, "hold": hold3, "amount": held["amount"], "min_spend": 0})
    assert not late["ok"] and late["coupon"] == "hold_expired"
    assert entry(a, "u3", c3)["used"] == 0
    result = api(a, "GET", f"/sales/{sale['id']}/audit").json()
    assert result["ok"], result["problems"]
