"""Invite coupons (分享得券), quizzes, pinned danmaku, the card unpinned, peak_online across nodes."""

from __future__ import annotations

import asyncio

import httpx

from harness import Client, Node, RedisServer, admin_headers, create_room
from waiting import wait_until

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}]


def api(node: Node, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=admin_headers(), timeout=30)


def invite_coupons(node: Node, user: str, room: str) -> int:
    coupons = api(node, "GET", f"/users/{user}/coupons").json()["coupons"]
    return sum(c["count"] for c in coupons if c["coupon_id"] == f"{room}.invite")


async def test_invite_rewards_once_never_self_capped(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    nobody = await Client.connect(node, room_name, user="n1")
    assert (await nobody.request("invite", ref="ann"))["error"]["code"] == "not_found"  # no invite reward set
    await nobody.close()
    r = api(node, "PUT", f"/rooms/{room_name}/invite", {"title": "Invite ¥3", "amount": 300, "per_inviter": 2})
    assert r.status_code == 200, r.text
    ann = await Client.connect(node, room_name, user="ann")
    own = await ann.request("invite", ref="ann")
    assert own["error"]["code"] == "forbidden" and own["error"]["reason"] == "self"
    bo = await Client.connect(node, room_name, user="bo")
    assert (await bo.request("invite", ref="ann"))["data"] == {"inviter": "ann", "rewarded": True}
    again = await bo.request("invite", ref="ann")
    assert again["error"]["code"] == "already_claimed" and again["error"]["reason"] == "counted"
    other = await bo.request("invite", ref="cy")  # the same invitee for another inviter
    assert other["error"]["reason"] == "counted"
    # n1 has been in the room before (left once): not a first-time viewer
    late = await Client.connect(node, room_name, user="n1")
    refused = await late.request("invite", ref="ann")
    assert refused["error"]["reason"] == "not_first_time"
    # the cap: ann earns 2 at most, concurrent newcomers or not
    newcomers = [await Client.connect(node, room_name, user=f"new{i}") for i in range(6)]
    replies = await asyncio.gather(*(c.request("invite", ref="ann") for c in newcomers))
    assert sum(1 for x in replies if x["ok"]) == 1
    assert {x["error"]["reason"] for x in replies if not x["ok"]} == {"cap"}
    assert invite_coupons(node, "ann", room_name) == 2
    assert invite_coupons(node, "bo", room_name) == 0
    for c in (ann, bo, late, *newcomers):
        await c.close()


async def test_quiz_reveal_lists_and_rewards_correct_voters_once(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    poll = api(node, "POST", f"/rooms/{room_name}/polls",
               {"question": "Which hill is Longjing from?", "options": ["Huangshan", "West Lake", "Emei"],
                "duration_s": 60}).json()["poll"]
    voters = {u: await Client.connect(node, room_name, user=u) for u in ("a", "b", "c", "d")}
    for user, option in (("a", 1), ("b", 0), ("c", 1), ("d", 2)):
        assert (await voters[user].request("vote", poll=poll["id"], option=option))["ok"]
    base = f"/rooms/{room_name}/polls/{poll['id']}"
    assert api(node, "GET", f"{base}/correct").status_code == 409  # not revealed yet
    assert api(node, "POST", f"{base}/reveal", {"correct": 5}).status_code == 400
    revealed = api(node, "POST", f"{base}/reveal", {"correct": 1}).json()
    assert revealed["correct_voters"] == ["a", "c"] and revealed["poll"]["correct"] == 1 and revealed["changed"]
    # the first answer stands; voting is closed
    assert api(node, "POST", f"{base}/reveal", {"correct": 0}).json()["poll"]["correct"] == 1
    late = await voters["d"].request("vote", poll=poll["id"], option=1)
    assert late["error"]["code"] in ("ended", "already_claimed")
    fresh = await Client.connect(node, room_name, user="e")
    assert (await fresh.request("vote", poll=poll["id"], option=1))["error"]["code"] == "ended"
    await fresh.wait_state(lambda s: s.get("polls", {}).get(poll["id"], {}).get("correct") == 1)
    rewarded = api(node, "POST", f"{base}/reward", {"title": "Quiz ¥2", "amount": 200})
    assert rewarded.status_code == 201 and rewarded.json()["rewarded"] == ["a", "c"]
    assert api(node, "POST", f"{base}/reward", {"title": "Quiz ¥2", "amount": 200}).status_code == 409
    for user, want in (("a", 1), ("b", 0), ("c", 1)):
        coupons = api(node, "GET", f"/users/{user}/coupons").json()["coupons"]
        assert sum(c["count"] for c in coupons if c["coupon_id"] == f"{poll['id']}.reward") == want
    for c in (*voters.values(), fresh):
        await c.close()


async def test_pin_danmaku_and_unpin_card(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    viewer = await Client.connect(node, room_name, user="v", badge="vip")
    said = await viewer.request("danmaku", text="Is it this year's tea?")
    offset = said["data"]["offset"]
    pinned = api(node, "PUT", f"/rooms/{room_name}/pin", {"offset": offset})
    assert pinned.status_code == 200 and pinned.json()["pin"]["text"] == "Is it this year's tea?"
    assert pinned.json()["pin"]["badge"] == "vip"
    await viewer.wait_state(lambda s: (s.get("pin") or {}).get("offset") == offset)
    late = await Client.connect(node, room_name, user="late")
    assert late.state["pin"]["text"] == "Is it this year's tea?"  # in the welcome
    assert api(node, "PUT", f"/rooms/{room_name}/pin", {"offset": "1-0"}).status_code == 404
    assert api(node, "PUT", f"/rooms/{room_name}/pin", {"offset": "nope"}).status_code == 400
    assert api(node, "DELETE", f"/rooms/{room_name}/pin").status_code == 200
    await late.wait_state(lambda s: s.get("pin") is None)
    api(node, "POST", f"/rooms/{room_name}/cards", {"product_id": "tea"})
    await late.wait_state(lambda s: (s.get("card") or {}).get("id") == "tea")
    assert api(node, "DELETE", f"/rooms/{room_name}/cards").status_code == 200
    await late.wait_state(lambda s: s.get("card") is None)
    again = await Client.connect(node, room_name, user="again")
    assert again.state["card"] is None and again.state["pin"] is None
    for c in (viewer, late, again):
        await c.close()


async def test_peak_online_across_nodes(start_node, room_name: str) -> None:
    a = start_node()
    b = start_node()
    create_room(a, room_name, PRODUCTS)
    on_a = [await Client.connect(a, room_name, user=f"pa{i}") for i in range(3)]
    on_b = [await Client.connect(b, room_name, user=f"pb{i}") for i in range(4)]
    await on_a[0].wait_state(lambda s: s.get("online") == 7 and s.get("peak_online") == 7)
    for c in on_b:
        await c.close()
    await on_a[0].wait_state(lambda s: s.get("online") == 3)
    assert on_a[0].state["peak_online"] == 7  # the peak stays
    watcher = await Client.connect(b, room_name, user="w")
    assert watcher.state["peak_online"] == 7
    for c in (*on_a, watcher):
        await c.close()
