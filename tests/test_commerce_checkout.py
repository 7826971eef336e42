"""Coupons at checkout: `buy` with a coupon from the buyer's wallet (buy.lua), the coupon
going back exactly once with an expired order's units (expire.lua), kept when paid."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness import Client, Node, admin_headers, create_room, token
from waiting import wait_until

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}]


def api(node: Node, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=headers or admin_headers(), timeout=30)


def make_sale(node: Node, room: str, stock: int, price: int = 9900, limit: int = 1) -> dict:
    r = api(node, "POST", f"/rooms/{room}/sales",
            {"product_id": "tea", "price": price, "stock": stock, "per_user_limit": limit, "duration_s": 600})
    assert r.status_code == 201, r.text
    return r.json()["sale"]


def make_coupon(node: Node, room: str, amount: int, quantity: int, min_spend: int = 0, per_user: int = 1,
                **extra: int) -> dict:
    r = api(node, "POST", f"/rooms/{room}/coupons", {"title": "off", "amount": amount, "min_spend": min_spend,
                                                     "quantity": quantity, "per_user": per_user, "duration_s": 600,
                                                     **extra})
    assert r.status_code == 201, r.text
    return r.json()["coupon"]


def wallet(node: Node, user: str) -> dict[str, dict]:
    r = api(node, "GET", f"/users/{user}/coupons")
    assert r.status_code == 200, r.text
    return {c["coupon_id"]: c for c in r.json()["coupons"]}


def audit(node: Node, sale_id: str) -> dict:
    r = api(node, "GET", f"/sales/{sale_id}/audit")
    assert r.status_code == 200, r.text
    return r.json()


async def test_buy_with_coupon_discount_refusals_and_keep_on_pay(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    sale = make_sale(node, room_name, stock=10, price=9900, limit=5)
    big = make_coupon(node, room_name, amount=20000, quantity=10)          # more than the price: amount floors at 0
    five = make_coupon(node, room_name, amount=500, quantity=10, min_spend=15000)
    alice = await Client.connect(node, room_name, user="alice")
    bob = await Client.connect(node, room_name, user="bob")
    assert (await alice.request("claim", coupon=five["id"]))["ok"]
    assert (await alice.request("claim", coupon=big["id"]))["ok"]
    # not in bob's wallet
    r = await bob.request("buy", sale=sale["id"], qty=1, key="b1", coupon=five["id"])
    assert not r["ok"] and r["error"]["code"] == "not_found" and r["error"]["coupon"] == "not_in_wallet"
    # min_spend 150.00 is not met by one unit at 99.00 ...
    r = await alice.request("buy", sale=sale["id"], qty=1, key="a1", coupon=five["id"])
    assert not r["ok"] and r["error"]["code"] == "limit_reached" and r["error"]["coupon"] == "min_spend"
    # ... a refusal changes nothing: no unit, coupon still usable
    assert wallet(node, "alice")[five["id"]]["usable"] == 1
    # ... but two units are
    r = await alice.request("buy", sale=sale["id"], qty=2, key="a2", coupon=five["id"])
    assert r["ok"], r
    assert r["data"]["amount"] == 2 * 9900 - 500 and r["data"]["discount"] == 500 and r["data"]["coupon"] == five["id"]
    order = api(node, "GET", f"/orders/{r['data']['order']}").json()["order"]
    assert order["coupon"] == five["id"] and order["discount"] == 500 and order["amount"] == 19300
    # a retry with the same key: the same answer, the coupon is not spent twice
    again = await alice.request("buy", sale=sale["id"], qty=2, key="a2", coupon=five["id"])
    assert again["data"] == r["data"]
    used = await alice.request("buy", sale=sale["id"], qty=2, key="a3", coupon=five["id"])
    assert not used["ok"] and used["error"]["code"] == "already_claimed" and used["error"]["coupon"] == "used"
    # the coupon worth more than the order: owed 0, never negative
    free = await alice.request("buy", sale=sale["id"], qty=1, key="a4", coupon=big["id"])
    assert free["ok"] and free["data"]["amount"] == 0 and free["data"]["discount"] == 9900
    # a coupon id of another room is refused before Redis
    other = await alice.request("buy", sale=sale["id"], qty=1, key="a5", coupon="elsewhere.c1")
    assert other["error"]["code"] == "not_found"
    paid = api(node, "POST", f"/orders/{r['data']['order']}/paid")
    assert paid.status_code == 200 and paid.json()["order"]["amount"] == 19300
    w = wallet(node, "alice")
    assert w[five["id"]]["used"] == 1 and w[five["id"]]["usable"] == 0 and w[five["id"]]["orders"] == [r["data"]["order"]]
    result = audit(node, sale["id"])
    assert result["ok"], result["problems"]
    await alice.close()
    await bob.close()


async def test_expired_coupon_refused(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    sale = make_sale(node, room_name, stock=5)
    coupon = make_coupon(node, room_name, amount=100, quantity=5)
    c = await Client.connect(node, room_name, user="erin")
    assert (await c.request("claim", coupon=coupon["id"]))["ok"]
    # age the wallet entry: what an expired coupon looks like
    # (valid_s >= 1 s, so instead of waiting, create a coupon whose validity is 1 s and wait for it)
    short = make_coupon(node, room_name, amount=100, quantity=5, valid_s=1)
    r = api(node, "POST", f"/rooms/{room_name}/coupons", {"title": "t", "amount": 1, "quantity": 1, "duration_s": 1,
                                                          "valid_s": 1})
    assert r.status_code == 201
    quick = r.json()["coupon"]
    assert (await c.request("claim", coupon=quick["id"]))["ok"]
    await wait_until(lambda: wallet(node, "erin")[quick["id"]]["usable"] == 0, timeout=5, interval=0.2,
                     what="the 2 s coupon to expire")
    r = await c.request("buy", sale=sale["id"], qty=1, key="k", coupon=quick["id"])
    assert not r["ok"] and r["error"]["code"] == "ended" and r["error"]["coupon"] == "expired"
    assert short["expires_ms"] == short["end_ms"] + 1000
    await c.close()


async def _claim_and_buy(node: Node, room: str, sale_id: str, coupon_id: str, users: list[str],
                         http: httpx.AsyncClient) -> list[tuple[str, dict, int]]:
    """Each user: connect, claim, buy with the coupon; users with an even number pay at once
    (the payment callback), the others never pay. Returns (user, buy reply, pay status)."""
    sem = asyncio.Semaphore(300)

    async def one(user: str) -> tuple[str, dict, int]:
        async with sem:
            c = await Client.connect(node, room, user=user)
            try:
                claimed = await c.request("claim", timeout=60, coupon=coupon_id)
                assert claimed["ok"], claimed
                reply = await c.request("buy", timeout=60, sale=sale_id, qty=1, key="only", coupon=coupon_id)
            finally:
                await c.close()
        status = 0
        if reply["ok"] and int(user[2:]) % 2 == 0:
            status = (await http.post(f"{node.http}/api/v1/orders/{reply['data']['order']}/paid")).status_code
        return user, reply, status

    return await asyncio.gather(*(one(u) for u in users))


@pytest.mark.timeout(300)
async def test_2000_coupon_buys_half_expire_two_nodes(start_node, room_name: str) -> None:
    # The payment window must outlast the test client's own lag: 2,000 websockets on a shared
    # core answer a payment up to ~25 s after its buy here.
    a = start_node(LIVESERVER_ORDER_TTL_S="60", LIVESERVER_OP_RATE="1000")
    b = start_node(LIVESERVER_ORDER_TTL_S="60", LIVESERVER_OP_RATE="1000")
    create_room(a, room_name, PRODUCTS)
    n = 2000
    sale = make_sale(a, room_name, stock=n, price=9900)
    coupon = make_coupon(a, room_name, amount=1000, quantity=n)
    users = [f"cb{i}" for i in range(n)]
    async with httpx.AsyncClient(headers=admin_headers(), timeout=httpx.Timeout(60, pool=None),  # 2,000 payers queue for 50 connections
                                 limits=httpx.Limits(max_connections=50)) as http:
        # half the users on each node; half of each half pays
        results = await asyncio.gather(_claim_and_buy(a, room_name, sale["id"], coupon["id"], users[0:n // 2], http),
                                       _claim_and_buy(b, room_name, sale["id"], coupon["id"], users[n // 2:], http))
    rows = results[0] + results[1]
    replies = [r for _u, r, _s in rows]
    assert all(r["ok"] and r["data"]["amount"] == 8900 and r["data"]["discount"] == 1000 for r in replies), \
        [r for r in replies if not r["ok"]][:3]
    by_user = {u: r["data"]["order"] for u, r, _s in rows}
    assert len(set(by_user.values())) == n
    paid_orders = {by_user[u] for u, _r, s in rows if s}
    assert {s for _u, _r, s in rows if s} == {200} and len(paid_orders) == n // 2

    def all_settled() -> bool:
        result = audit(a, sale["id"])
        return result["reserved"] == 0 and result

    result = await wait_until(all_settled, timeout=120, interval=0.5, what="every unpaid order to expire")
    assert result["ok"], result["problems"][:5]
    assert (result["paid"], result["expired"], result["stock"]) == (n // 2, n // 2, n // 2)
    # every coupon: used exactly once by a paid order, or back in its wallet
    for user in users[::97]:  # sampled through the API; the audit above checked every one
        entry = wallet(a, user)[coupon["id"]]
        if by_user[user] in paid_orders:
            assert (entry["used"], entry["usable"], entry["orders"]) == (1, 0, [by_user[user]])
        else:
            assert (entry["used"], entry["usable"], entry["orders"]) == (0, 1, [])


async def test_audit_catches_a_coupon_spent_twice(node: Node, room_name: str, redis_server) -> None:
    import json as _json

    from liveserver.engine.commerce_keys import CommerceKeys

    create_room(node, room_name, PRODUCTS)
    sale = make_sale(node, room_name, stock=5)
    coupon = make_coupon(node, room_name, amount=100, quantity=5)
    c = await Client.connect(node, room_name, user="fay")
    assert (await c.request("claim", coupon=coupon["id"]))["ok"]
    assert (await c.request("buy", sale=sale["id"], qty=1, key="k", coupon=coupon["id"]))["ok"]
    await c.close()
    assert audit(node, sale["id"])["ok"]
    # the coupon's use wiped behind the script's back (as if it could be spent again)
    r = redis_server.client()
    key = CommerceKeys(room_name).claims("fay")
    entry = _json.loads(r.hget(key, coupon["id"]))
    entry.update(used=0, orders={})
    r.hset(key, coupon["id"], _json.dumps(entry))
    result = audit(node, sale["id"])
    assert not result["ok"] and any("does not list it" in p for p in result["problems"])
