"""Coupons, lotteries, polls, cards, scheduling and host API validation."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from harness import Client, Node, RedisServer, admin_headers, create_room, host_headers, token
from liveserver.commerce import lottery_verify
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.keys import RoomKeys
from waiting import wait_until_sync

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}, {"id": "mug", "title": "Mug", "price": 5900}]


def api(node: Node, method: str, path: str, body: object = None, headers: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=headers or admin_headers(), timeout=10)


async def test_card_push_pins_and_clicks(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    viewer = await Client.connect(node, room_name, user="v1")
    r = api(node, "POST", f"/rooms/{room_name}/cards", {"product_id": "mug"})
    assert r.status_code == 201, r.text
    event = await viewer.wait_event("card")
    assert event["product"]["id"] == "mug" and event["product"]["price"] == 5900
    await viewer.wait_state(lambda s: (s.get("card") or {}).get("id") == "mug")
    late = await Client.connect(node, room_name, user="v2")
    assert late.welcome["state"]["card"]["id"] == "mug"  # pinned: a late joiner sees it at once
    assert (await late.request("click", product="mug"))["ok"]
    stats = api(node, "GET", f"/rooms/{room_name}/stats").json()
    assert stats["clicks"] == {"mug": 1}
    await viewer.close()
    await late.close()


@pytest.mark.timeout(180)
async def test_2000_claimers_300_coupons(start_node, room_name: str) -> None:
    a = start_node(LIVESERVER_OP_RATE="1000")
    b = start_node(LIVESERVER_OP_RATE="1000")
    create_room(a, room_name, PRODUCTS)
    r = api(a, "POST", f"/rooms/{room_name}/coupons",
            {"title": "10 off", "amount": 1000, "min_spend": 5000, "quantity": 300, "per_user": 1, "duration_s": 600})
    assert r.status_code == 201, r.text
    coupon = r.json()["coupon"]

    async def claimers(node: Node, users: list[str]) -> list[dict]:
        sem = asyncio.Semaphore(300)

        async def one(user: str) -> dict:
            async with sem:
                c = await Client.connect(node, room_name, user=user)
                try:
                    first = await c.request("claim", timeout=60, coupon=coupon["id"])
                    if first["ok"]:
                        second = await c.request("claim", timeout=60, coupon=coupon["id"])
                        assert second["error"]["code"] == "already_claimed"
                    return first
                finally:
                    await c.close()

        return await asyncio.gather(*(one(u) for u in users))

    users = [f"claimer{i}" for i in range(2000)]
    replies = sum(await asyncio.gather(claimers(a, users[0::2]), claimers(b, users[1::2])), [])
    ok = [r for r in replies if r["ok"]]
    assert len(ok) == 300
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"sold_out"}
    one_winner = next(u for u, r in zip(users[0::2] + users[1::2], replies) if r["ok"])
    wallet = httpx.get(f"{a.http}/api/v1/users/{one_winner}/coupons",
                       headers={"Authorization": f"Bearer {token(one_winner)}"}, timeout=10).json()
    assert [c["coupon_id"] for c in wallet["coupons"]] == [coupon["id"]]
    other = httpx.get(f"{a.http}/api/v1/users/{one_winner}/coupons",
                      headers={"Authorization": f"Bearer {token('someone-else')}"}, timeout=10)
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"


async def test_lottery_verifiable_and_once_per_user(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    r = api(node, "POST", f"/rooms/{room_name}/lotteries", {"prize": "Tea set", "winners": 3, "keyword": "lucky", "duration_s": 600})
    assert r.status_code == 201, r.text
    lottery = r.json()["lottery"]
    assert "seed" not in lottery and len(lottery["commit"]) == 64
    viewers = [await Client.connect(node, room_name, user=f"p{i}") for i in range(8)]
    await viewers[0].wait_state(lambda s: lottery["id"] in s.get("lotteries", {}))
    for v in viewers[:5]:
        assert (await v.request("enter", lottery=lottery["id"]))["ok"]
    twice = await viewers[0].request("enter", lottery=lottery["id"])
    assert twice["ok"] and twice["data"]["entrants"] == 5  # entering twice is still one entrant
    for v in viewers[5:]:  # by keyword in a danmaku
        reply = await v.request("danmaku", text="I feel LUCKY today")
        assert reply["ok"] and reply["data"]["entered"] == [lottery["id"]]
    await viewers[0].wait_state(lambda s: s["lotteries"][lottery["id"]]["entrants"] == 8)
    drawn = api(node, "POST", f"/rooms/{room_name}/lotteries/{lottery['id']}/draw")
    assert drawn.status_code == 200, drawn.text
    result = drawn.json()["result"]
    again = api(node, "POST", f"/rooms/{room_name}/lotteries/{lottery['id']}/draw").json()["result"]
    assert again == result  # idempotent
    event = await viewers[3].wait_event("lottery_result")
    assert event["winners"] == result["winners"] and event["seed"] == result["seed"]
    public = httpx.get(f"{node.http}/api/v1/rooms/{room_name}/lotteries/{lottery['id']}", timeout=10).json()
    entrants = public["entrants_list"]
    assert sorted(entrants) == sorted(f"p{i}" for i in range(8))
    # anyone re-checks the draw from published data alone
    assert lottery_verify.verify(result["seed"], lottery["commit"], entrants, 3, result["winners"]) == []
    assert lottery_verify.verify(result["seed"], lottery["commit"], entrants, 3, list(reversed(result["winners"]))) != []
    late = await viewers[0].request("enter", lottery=lottery["id"])
    assert late["error"]["code"] == "ended"
    for v in viewers:
        await v.close()


async def test_poll_one_vote_per_user(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    r = api(node, "POST", f"/rooms/{room_name}/polls", {"question": "Which colour?", "options": ["red", "blue"], "duration_s": 600})
    assert r.status_code == 201, r.text
    poll = r.json()["poll"]
    a = await Client.connect(node, room_name, user="va")
    b = await Client.connect(node, room_name, user="vb")
    assert (await a.request("vote", poll=poll["id"], option=1))["ok"]
    assert (await a.request("vote", poll=poll["id"], option=0))["error"]["code"] == "already_claimed"
    assert (await b.request("vote", poll=poll["id"], option=5))["error"]["code"] == "bad_request"
    assert (await b.request("vote", poll=poll["id"], option=1))["data"]["tallies"] == [0, 2]
    await a.wait_state(lambda s: s.get("polls", {}).get(poll["id"], {}).get("tallies") == [0, 2])
    await a.close()
    await b.close()


async def test_scheduled_coupon_drop_fires_once_across_two_nodes(start_node, redis_server: RedisServer, room_name: str) -> None:
    a = start_node()
    b = start_node()
    create_room(a, room_name, PRODUCTS)
    va = await Client.connect(a, room_name, user="wa")
    vb = await Client.connect(b, room_name, user="wb")
    at_ms = int(time.time() * 1000) + 1500
    r = api(a, "POST", f"/rooms/{room_name}/coupons",
            {"title": "flash", "amount": 500, "quantity": 10, "duration_s": 60, "at_ms": at_ms})
    assert r.status_code == 201, r.text
    coupon = r.json()["coupon"]
    early = await va.request("claim", coupon=coupon["id"])
    assert early["error"]["code"] == "not_started"
    ea = await va.wait_event("coupon", lambda e: e["coupon"]["id"] == coupon["id"], timeout=10)
    eb = await vb.wait_event("coupon", lambda e: e["coupon"]["id"] == coupon["id"], timeout=10)
    assert ea["offset"] == eb["offset"] and ea["ts"] >= at_ms
    assert (await vb.request("claim", coupon=coupon["id"]))["ok"]
    # exactly one `coupon` drop event in the room stream, whatever both schedulers did
    r = redis_server.client()
    entries = r.xrange(RoomKeys(room_name).events)
    drops = [e for e in entries if e[1]["k"] == "coupon" and coupon["id"] in e[1]["d"] and '"live"' in e[1]["d"]]
    assert len(drops) == 1, drops
    await va.close()
    await vb.close()


def test_scheduled_job_survives_restart(start_node, redis_server: RedisServer, room_name: str) -> None:
    """A job due while no node runs fires when one starts again."""
    a = start_node()
    create_room(a, room_name, PRODUCTS)
    r = api(a, "POST", f"/rooms/{room_name}/sales",
            {"product_id": "tea", "price": 100, "stock": 5, "start_in_s": 1, "duration_s": 60})
    sale = r.json()["sale"]
    a.stop()
    time.sleep(1.5)  # the start time passes while nothing runs (nothing to await: no node)
    start_node()
    client = redis_server.client()
    wait_until_sync(lambda: client.hexists(CommerceKeys(room_name).sale(sale["id"]), "ev_live"), timeout=10, interval=0.05,
                    what="the sale start to be announced after the restart")


@pytest.mark.parametrize(
    "path,body,code",
    [
        ("/sales", {"product_id": "tea", "price": -1, "stock": 5, "duration_s": 60}, "bad_request"),
        ("/sales", {"product_id": "tea", "price": 100, "stock": -5, "duration_s": 60}, "bad_request"),
        ("/sales", {"product_id": "tea", "price": 100, "stock": 5}, "bad_request"),
        ("/sales", {"product_id": "tea", "price": 1.5, "stock": 5, "duration_s": 60}, "bad_request"),
        ("/sales", {"product_id": "nope", "price": 100, "stock": 5, "duration_s": 60}, "not_found"),
        ("/sales", {"product_id": "tea", "price": 100, "stock": 5, "duration_s": 60, "start_ms": 1, "start_in_s": 1}, "bad_request"),
        ("/sales", {"product_id": "tea", "price": 100, "stock": 5, "duration_s": 60, "extra": 1}, "bad_request"),
        ("/sales", "not an object", "bad_request"),
        ("/coupons", {"title": "x", "amount": 0, "quantity": 1, "duration_s": 60}, "bad_request"),
        ("/lotteries", {"prize": "x", "winners": 0, "duration_s": 60}, "bad_request"),
        ("/polls", {"question": "q", "options": ["only one"], "duration_s": 60}, "bad_request"),
        ("/cards", {"product_id": "ghost"}, "not_found"),
    ],
)
def test_host_api_rejects_bad_bodies(node: Node, room_name: str, redis_server: RedisServer, path: str, body: object, code: str) -> None:
    create_room(node, room_name, PRODUCTS)
    client = redis_server.client()
    every_key = RoomKeys(room_name).sub("*")
    before = sorted(client.scan_iter(every_key))
    r = api(node, "POST", f"/rooms/{room_name}{path}", body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] == code
    assert sorted(client.scan_iter(every_key)) == before  # nothing written


def test_host_api_auth(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    body = {"product_id": "tea", "price": 100, "stock": 5, "duration_s": 60}
    viewer = api(node, "POST", f"/rooms/{room_name}/sales", body, {"Authorization": f"Bearer {token('v', 'viewer')}"})
    assert viewer.status_code == 403 and viewer.json()["error"]["code"] == "forbidden"
    other_room = api(node, "POST", f"/rooms/{room_name}/sales", body, host_headers("another-room"))
    assert other_room.status_code == 403
    none = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/sales", json=body, timeout=10)
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    ok = api(node, "POST", f"/rooms/{room_name}/sales", body, host_headers(room_name))
    assert ok.status_code == 201
    sale = ok.json()["sale"]["id"]
    assert api(node, "GET", f"/sales/{sale}/audit", None, host_headers("another-room")).status_code == 403
    assert api(node, "GET", f"/sales/{sale}/audit", None, host_headers(room_name)).json()["ok"] is True
    assert api(node, "POST", f"/orders/{room_name}.o999/paid").status_code == 404
    assert api(node, "POST", "/orders/garbage/paid").status_code == 404


def test_redis_keys_carry_room_hash_tag(node: Node, room_name: str, redis_server: RedisServer) -> None:
    create_room(node, room_name, PRODUCTS)
    api(node, "POST", f"/rooms/{room_name}/sales", {"product_id": "tea", "price": 100, "stock": 5, "duration_s": 60})
    keys = list(redis_server.client().scan_iter(f"*{room_name}*"))  # any key naming the room, wherever it lives
    assert keys and all(k.startswith(RoomKeys(room_name).sub("")) for k in keys), keys
