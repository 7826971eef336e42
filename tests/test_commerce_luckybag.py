"""Follow and lucky bags (福袋): `follow` + `state.followers`; a lottery whose entry needs
following, the keyword danmaku and minutes watched (counted across reconnects and nodes);
its coupon prize lands in the winners' wallets at the draw, which still verifies."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx

from harness import ROOT, Client, Node, RedisServer, admin_headers, create_room, node_env
from waiting import wait_until

from liveserver.engine.commerce_keys import CommerceKeys

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}]


def api(node: Node, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=admin_headers(), timeout=30)


async def test_follow_counts_once_and_shows_in_state(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    watcher = await Client.connect(node, room_name, user="w")
    fan = await Client.connect(node, room_name, user="fan", name="Fan")
    r = await fan.request("follow", on=True)
    assert r["ok"] and r["data"] == {"following": True, "followers": 1}
    assert (await fan.request("follow"))["data"]["followers"] == 1  # again: still one
    event = await watcher.wait_event("follow")
    assert event["user"] == "fan" and event["name"] == "Fan" and event["followers"] == 1
    await watcher.wait_state(lambda s: s.get("followers") == 1)
    assert (await fan.request("follow", on=False))["data"] == {"following": False, "followers": 0}
    await watcher.wait_state(lambda s: s.get("followers") == 0)
    assert sum(1 for e in watcher.events if e["k"] == "follow") == 1
    guest = await Client.connect(node, room_name, user=None)
    assert (await guest.request("follow"))["error"]["code"] == "unauthorized"
    for c in (watcher, fan, guest):
        await c.close()


async def test_lucky_bag_conditions_coupon_prize_and_verify(start_node, redis_server: RedisServer,
                                                           room_name: str) -> None:
    a = start_node()
    b = start_node()
    create_room(a, room_name, PRODUCTS)
    r = api(a, "POST", f"/rooms/{room_name}/lotteries",
            {"prize": "¥5 coupon", "winners": 5, "keyword": "福袋", "keyword_only": True, "follow": True,
             "watch_s": 1, "duration_s": 60, "coupon": {"title": "Lucky ¥5", "amount": 500}})
    assert r.status_code == 201, r.text
    lottery = r.json()["lottery"]
    assert lottery["conditions"] == {"follow": True, "watch_s": 1, "keyword": "福袋"}
    assert lottery["coupon"]["amount"] == 500
    users = {u: await Client.connect(a, room_name, user=u) for u in ("ann", "bob", "cat", "dan")}
    for u in ("ann", "bob", "dan"):
        assert (await users[u].request("follow"))["ok"]
    # eve watches 0.7 s on node a, leaves, and comes back on node b
    eve = await Client.connect(a, room_name, user="eve")
    assert (await eve.request("follow"))["ok"]
    await asyncio.sleep(0.8)  # watching is the thing measured here
    await eve.close()
    watch_key = CommerceKeys(room_name).watch()
    await wait_until(lambda: int(redis_server.client().hget(watch_key, "eve") or 0) >= 800, timeout=5,
                     what="eve's first session to be counted")
    # bob has followed but not watched a second yet: his keyword does not enter him
    early = await users["bob"].request("danmaku", text="福袋 please")
    assert early["ok"] and early["data"]["entered"] == []
    await asyncio.sleep(1.05)
    said = {u: await users[u].request("danmaku", text="我要福袋!") for u in ("ann", "cat")}
    assert said["ann"]["data"]["entered"] == [lottery["id"]]
    assert said["cat"]["data"]["entered"] == []  # not following
    refused = await users["cat"].request("enter", lottery=lottery["id"])
    assert refused["error"]["code"] == "forbidden" and refused["error"]["condition"] == "keyword"
    # dan qualifies by follow and watch time, but the op is not the keyword
    op = await users["dan"].request("enter", lottery=lottery["id"])
    assert op["error"]["condition"] == "keyword"
    # eve comes back on node b: 0.8 s before + 0.3 s now; this session alone would be too short
    eve = await Client.connect(b, room_name, user="eve")
    await asyncio.sleep(0.3)
    assert (await eve.request("danmaku", text="福袋"))["data"]["entered"] == [lottery["id"]]
    entrants = redis_server.client().smembers(CommerceKeys(room_name).entrants(lottery["id"]))
    assert entrants == {"ann", "eve"}
    # ...and a follower who has not watched long enough is told how long
    fresh = await Client.connect(a, room_name, user="fay")
    await fresh.request("follow")
    api(a, "POST", f"/rooms/{room_name}/lotteries",
        {"prize": "p", "winners": 1, "follow": True, "watch_s": 600, "duration_s": 60})
    state = await fresh.wait_state(lambda s: any(l.get("conditions", {}).get("watch_s") == 600
                                                 for l in s.get("lotteries", {}).values()))
    long_id = next(i for i, l in state["lotteries"].items() if l.get("conditions", {}).get("watch_s") == 600)
    told = await fresh.request("enter", lottery=long_id)
    assert told["error"]["condition"] == "watch" and told["error"]["need_watch_s"] == 600
    # the draw: every entrant wins (5 prizes), the coupon lands in both wallets, once
    drawn = api(a, "POST", f"/rooms/{room_name}/lotteries/{lottery['id']}/draw").json()["result"]
    assert sorted(drawn["winners"]) == ["ann", "eve"]
    api(a, "POST", f"/rooms/{room_name}/lotteries/{lottery['id']}/draw")  # again: no second grant
    for winner in ("ann", "eve"):
        wallet = api(a, "GET", f"/users/{winner}/coupons").json()["coupons"]
        prize = [c for c in wallet if c["coupon_id"] == f"{lottery['id']}.prize"]
        assert len(prize) == 1 and prize[0]["count"] == 1 and prize[0]["usable"] == 1 and prize[0]["amount"] == 500
    assert not [c for c in api(a, "GET", "/users/cat/coupons").json()["coupons"]]
    url = f"{a.http}/api/v1/rooms/{room_name}/lotteries/{lottery['id']}"
    verified = subprocess.run([sys.executable, "-m", "liveserver", "verify-lottery", "--url", url],
                              env=node_env(None), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    # the prize is spendable at checkout
    sale = api(a, "POST", f"/rooms/{room_name}/sales", {"product_id": "tea", "price": 2000, "stock": 5,
                                                      "duration_s": 60}).json()["sale"]
    bought = await users["ann"].request("buy", sale=sale["id"], key="k", coupon=f"{lottery['id']}.prize")
    assert bought["ok"] and bought["data"]["amount"] == 1500
    for c in (*users.values(), eve, fresh):
        await c.close()


async def test_winners_leave_a_shipping_address_until_the_window_closes(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    lottery = api(node, "POST", f"/rooms/{room_name}/lotteries",
                  {"prize": "A tin of tea", "winners": 2, "duration_s": 60, "claim_s": 2}).json()["lottery"]
    users = {u: await Client.connect(node, room_name, user=u) for u in ("ann", "bo", "cy")}
    for c in users.values():
        assert (await c.request("enter", lottery=lottery["id"]))["ok"]
    address = {"name": "Ann Li", "phone": "13800000000", "address": "1 Lake Road, Hangzhou"}
    early = await users["ann"].request("prize_claim", lottery=lottery["id"], **address)
    assert early["error"]["code"] == "not_started"
    winners = api(node, "POST", f"/rooms/{room_name}/lotteries/{lottery['id']}/draw").json()["result"]["winners"]
    loser = next(u for u in users if u not in winners)
    first, second = winners
    assert (await users[loser].request("prize_claim", lottery=lottery["id"], **address))["error"]["code"] == "forbidden"
    ok = await users[first].request("prize_claim", lottery=lottery["id"], **address)
    assert ok["ok"] and ok["data"]["claimed"]
    again = await users[first].request("prize_claim", lottery=lottery["id"], **address)
    assert again["error"]["code"] == "already_claimed"
    listed = api(node, "GET", f"/rooms/{room_name}/lotteries/{lottery['id']}/claims").json()
    assert [c["user"] for c in listed["claims"]] == [first] and listed["claims"][0]["address"] == address["address"]
    assert listed["unclaimed"] == [second] and listed["expired"] is False
    # the public lottery page never shows addresses
    public = httpx.get(f"{node.http}/api/v1/rooms/{room_name}/lotteries/{lottery['id']}", timeout=10).text
    assert "Hangzhou" not in public
    await wait_until(lambda: api(node, "GET", f"/rooms/{room_name}/lotteries/{lottery['id']}/claims").json()["expired"],
                     timeout=5, interval=0.2, what="the 2 s claim window to close")
    late = await users[second].request("prize_claim", lottery=lottery["id"], **address)
    assert late["error"]["code"] == "ended"
    for c in users.values():
        await c.close()
