"""Reservations: 1,000 viewers reserve a room in preview; when it goes live one `room.live`
webhook lists all of them, delivered once although two workers run and two hosts press
"go live" at the same moment. The trailer page shows the count."""

from __future__ import annotations

import asyncio
from typing import Callable

import httpx

from harness import Node, RedisServer, admin_headers, token
from waiting import wait_until
from test_webhooks import FAST, SECRET, Worker, receivers, subscribe, workers  # noqa: F401  (fixtures)
from webhook_receiver import Receiver


async def test_thousand_reservations_one_room_live_delivery(start_node: Callable[..., Node], room_name: str,
                                                             redis_server: RedisServer,
                                                             receivers: Callable[..., Receiver],  # noqa: F811
                                                             workers: Callable[..., Worker]) -> None:  # noqa: F811
    node = start_node(LIVESERVER_WEBHOOKS="0", **FAST)
    r = httpx.put(f"{node.http}/api/v1/rooms/{room_name}", headers=admin_headers(), timeout=10,
                  json={"title": "Spring tea launch", "status": "preview", "start_ms": 1_900_000_000_000,
                        "host_name": "Lin"})
    assert r.status_code == 200 and r.json()["status"] == "preview"
    rx = receivers()
    assert subscribe(node, rx.url, room_name, ["room.live"]).status_code == 201
    workers()
    workers()
    users = [f"fan{i:04d}" for i in range(1000)]
    async with httpx.AsyncClient(base_url=node.http, timeout=30) as http:
        sem = asyncio.Semaphore(32)

        async def reserve(user: str) -> None:
            async with sem:
                r = await http.post(f"/api/v1/rooms/{room_name}/reservations",
                                    headers={"Authorization": f"Bearer {token(user)}"})
                assert r.status_code == 200, r.text

        await asyncio.gather(*(reserve(u) for u in users))
        await reserve(users[0])  # reserving twice is one reservation
        mine = await http.get(f"/api/v1/rooms/{room_name}/reservation", headers={"Authorization": f"Bearer {token(users[1])}"})
        assert mine.json() == {"reserved": True, "count": 1000}
        # two hosts press "go live" at once: one transition, one event
        lives = await asyncio.gather(*(http.put(f"/api/v1/rooms/{room_name}", json={"status": "live"},
                                                headers=admin_headers()) for _ in range(2)))
        assert all(r.status_code == 200 for r in lives)
    await wait_until(lambda: rx.ok_events(), timeout=20, what="the room.live delivery")
    client = redis_server.client()
    # settle: nothing left to fan out or deliver for this room, then count deliveries
    await wait_until(lambda: client.xlen("lc:{wh}:ev") == 0 and not any(
        room_name in m for m in client.zrange("lc:{wh}:due", 0, -1)), timeout=20, what="the queue to drain")
    hits = [h for h in rx.hits if h.event["room"] == room_name]
    assert len(hits) == 1, [h.event["id"] for h in hits]
    data = hits[0].event["data"]
    assert data["reservations"] == 1000 and sorted(data["users"]) == users
    assert rx.all_signed(SECRET)
    page = httpx.get(f"{node.http}/rooms/{room_name}/trailer", timeout=10)
    assert page.status_code == 200 and "trailer.js" in page.text
    assert httpx.get(f"{node.http}/rooms/{room_name}", timeout=10).status_code == 200  # live now: the room page
    room = httpx.get(f"{node.http}/api/v1/rooms/{room_name}", timeout=10).json()
    assert room["reservations"] == 1000 and room["host_name"] == "Lin"


def test_reservation_needs_a_user(node: Node, room_name: str) -> None:
    httpx.put(f"{node.http}/api/v1/rooms/{room_name}", json={"status": "preview"}, headers=admin_headers(), timeout=10)
    # a room in preview sends viewers to its trailer (the query, e.g. ?ref=, goes along)
    r = httpx.get(f"{node.http}/rooms/{room_name}?ref=ann", timeout=10)
    assert r.status_code == 307 and r.headers["location"] == f"/rooms/{room_name}/trailer?ref=ann"
    assert httpx.get(f"{node.http}/rooms/{room_name}?preview=1", timeout=10).status_code == 200
    assert httpx.post(f"{node.http}/api/v1/rooms/{room_name}/reservations", timeout=10).status_code == 401
    r = httpx.post(f"{node.http}/api/v1/rooms/nope-{room_name}/reservations",
                   headers={"Authorization": f"Bearer {token('x')}"}, timeout=10)
    assert r.status_code == 404
    assert httpx.get(f"{node.http}/api/v1/rooms/{room_name}/reservations",
                     headers={"Authorization": f"Bearer {token('x')}"}, timeout=10).status_code == 403


async def test_reminder_before_the_start(start_node: Callable[..., Node], room_name: str,
                                         receivers: Callable[..., Receiver]) -> None:  # noqa: F811
    """A `reminder` goes out LIVESERVER_REMINDER_LEAD_S before the announced start, once."""
    import time

    node = start_node(LIVESERVER_REMINDER_LEAD_S="3600", **FAST)
    rx = receivers()
    httpx.put(f"{node.http}/api/v1/rooms/{room_name}", json={"status": "preview"}, headers=admin_headers(),
              timeout=10).raise_for_status()
    assert subscribe(node, rx.url, room_name, ["reminder"]).status_code == 201
    for user in ("ann", "bo"):
        httpx.post(f"{node.http}/api/v1/rooms/{room_name}/reservations", headers={"Authorization": f"Bearer {token(user)}"},
                   timeout=10).raise_for_status()
    start_ms = int(time.time() * 1000) + 1800_000  # in 30 min: inside the 1 h lead, so due now
    for _ in range(2):  # announcing the same start twice reminds once
        httpx.put(f"{node.http}/api/v1/rooms/{room_name}", json={"start_ms": start_ms}, headers=admin_headers(),
                  timeout=10).raise_for_status()
    events = await wait_until(lambda: rx.ok_events(), timeout=15, what="the reminder")
    (event,) = events.values()
    assert event["type"] == "reminder" and event["data"]["users"] == ["ann", "bo"]
    assert event["data"]["start_ms"] == start_ms
