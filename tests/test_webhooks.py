"""Webhooks: signed, at-least-once, retried with backoff, dead letters, isolation between
receivers, and nothing lost when a worker dies mid-delivery. Real nodes, real worker
processes, real HTTP receivers (tests/webhook_receiver.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterator

import httpx
import pytest

from harness import ROOT, Client, Node, RedisServer, admin_headers, create_room, host_headers, node_env
from waiting import wait_until, wait_until_sync
from webhook_receiver import Receiver

from liveserver.webhooks.signing import sign, verify

SECRET = "whsec-test-0123456789abcdef"
FAST = {"LIVESERVER_WEBHOOKS_ALLOW_PRIVATE": "1", "LIVESERVER_WEBHOOK_BACKOFF_MS": "100",
        "LIVESERVER_WEBHOOK_BACKOFF_MAX_MS": "400", "LIVESERVER_WEBHOOK_TIMEOUT_MS": "2000",
        "LIVESERVER_WEBHOOK_LEASE_MS": "1500"}


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        r = Receiver(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


class Worker:
    """A `liveserver worker` process."""

    def __init__(self, redis_url: str, **env: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "liveserver", "worker"], cwd=ROOT,
                                     env=node_env(redis_url, **env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def start(**env: str) -> Worker:
        w = Worker(redis_server.url, **{**FAST, **env})
        made.append(w)
        return w

    yield start
    for w in made:
        w.kill()


def subscribe(node: Node, url: str, room: str, events: list[str] | None = None, headers: dict | None = None) -> httpx.Response:
    body: dict[str, Any] = {"url": url, "secret": SECRET, "room": room}
    if events:
        body["events"] = events
    return httpx.post(f"{node.http}/api/v1/webhooks", json=body, headers=headers or admin_headers(), timeout=10)


def lottery_drawn(node: Node, room: str) -> str:
    """Create and draw a lottery; returns the webhook event id of its `lottery.drawn`."""
    r = httpx.post(f"{node.http}/api/v1/rooms/{room}/lotteries", json={"prize": "tea", "winners": 1, "duration_s": 60},
                   headers=admin_headers(), timeout=10)
    assert r.status_code == 201, r.text
    lottery_id = r.json()["lottery"]["id"]
    r = httpx.post(f"{node.http}/api/v1/rooms/{room}/lotteries/{lottery_id}/draw", headers=admin_headers(), timeout=10)
    assert r.status_code == 200, r.text
    return f"{lottery_id}.drawn"


def test_signature_roundtrip() -> None:
    body = b'{"id":"x"}'
    header = sign("s3cret-s3cret-s3cret", body, t=int(time.time()))
    assert verify("s3cret-s3cret-s3cret", body, header)
    assert not verify("s3cret-s3cret-s3cret", body + b" ", header)
    assert not verify("another-secret-xxxx", body, header)
    assert not verify("s3cret-s3cret-s3cret", body, sign("s3cret-s3cret-s3cret", body, t=int(time.time()) - 3600))
    assert not verify("s3cret-s3cret-s3cret", body, "garbage")


async def test_retried_signed_delivery_of_every_event(start_node: Callable[..., Node], room_name: str,
                                                     receivers: Callable[..., Receiver]) -> None:
    """A receiver that fails the first 3 attempts of every event still gets each event id,
    every request (failed or not) carries a valid signature, and no secret leaks."""
    node = start_node(**FAST)
    rx = receivers(fail_first=3)
    create_room(node, room_name, [{"id": "tea", "title": "Tea", "price": 1200}])
    r = subscribe(node, rx.url, room_name)
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]
    assert "secret" not in hook and SECRET not in r.text
    listed = httpx.get(f"{node.http}/api/v1/webhooks", headers=admin_headers(), timeout=10)
    assert SECRET not in listed.text and any(h["id"] == hook["id"] for h in listed.json()["webhooks"])

    sale = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/sales", headers=admin_headers(), timeout=10,
                      json={"product_id": "tea", "price": 1000, "stock": 5, "per_user_limit": 2, "duration_s": 600}).json()["sale"]
    alice = await Client.connect(node, room_name, user="alice")
    orders = []
    for key in ("k1", "k2"):
        reply = await alice.request("buy", sale=sale["id"], qty=1, key=key)
        assert reply["ok"], reply
        orders.append(reply["data"]["order"])
    await alice.close()
    assert httpx.post(f"{node.http}/api/v1/orders/{orders[0]}/paid", headers=admin_headers(), timeout=10).status_code == 200
    drawn_id = lottery_drawn(node, room_name)
    assert httpx.put(f"{node.http}/api/v1/rooms/{room_name}", json={"status": "ended"}, headers=admin_headers(),
                     timeout=10).status_code == 200

    def got_all() -> bool:
        events = rx.ok_events().values()
        types = [e["type"] for e in events]
        return (types.count("order.reserved") == 2 and types.count("order.paid") == 1 and "lottery.drawn" in types
                and "room.ended" in types and "followup" in types)

    await wait_until(got_all, timeout=30, what="every event delivered")
    assert rx.all_signed(SECRET)
    events = rx.ok_events()
    assert drawn_id in events and events[drawn_id]["data"]["winners"] is not None
    paid = [e for e in events.values() if e["type"] == "order.paid"]
    assert paid[0]["data"]["id"] == orders[0] and paid[0]["data"]["status"] == "paid"
    # 3 failures then a success for each event, with attempts counted in the header
    for event_id in events:
        attempts = [h for h in rx.hits if h.headers["liveserver-event-id"] == event_id]
        assert [h.status for h in attempts[:4]] == [500, 500, 500, 200], event_id
        assert attempts[3].headers["liveserver-attempt"] == "4"
        assert all(h.event["id"] == event_id for h in attempts)
    assert SECRET not in node.log.read_text()


async def test_worker_killed_mid_delivery_loses_nothing(start_node: Callable[..., Node], room_name: str,
                                                       receivers: Callable[..., Receiver],
                                                       workers: Callable[..., Worker]) -> None:
    node = start_node(LIVESERVER_WEBHOOKS="0", **FAST)  # only the worker processes deliver
    rx = receivers(hang_s=30)  # holds every request until released
    create_room(node, room_name)
    assert subscribe(node, rx.url, room_name, ["lottery.drawn"]).status_code == 201
    first = workers()
    ids = [lottery_drawn(node, room_name) for _ in range(3)]
    wait_until_sync(lambda: rx.arrived >= 1, timeout=20, what="a delivery in flight")
    first.kill()  # mid-delivery: the receiver is holding its request
    rx.hang_s = 0
    rx.release()
    second = workers()
    await wait_until(lambda: set(ids) <= set(rx.ok_events()), timeout=30, what="every event after the kill")
    assert rx.all_signed(SECRET)
    second.kill()


async def test_hanging_receiver_does_not_delay_another(start_node: Callable[..., Node], room_name: str,
                                                     receivers: Callable[..., Receiver]) -> None:
    node = start_node(**{**FAST, "LIVESERVER_WEBHOOK_TIMEOUT_MS": "20000"})
    slow = receivers(hang_s=25)
    fast = receivers()
    create_room(node, room_name)
    assert subscribe(node, slow.url, room_name, ["lottery.drawn"]).status_code == 201
    assert subscribe(node, fast.url, room_name, ["lottery.drawn"]).status_code == 201
    started = time.monotonic()
    ids = [lottery_drawn(node, room_name) for _ in range(20)]
    await wait_until(lambda: set(ids) <= set(fast.ok_events()), timeout=10, what="the fast receiver's events")
    assert time.monotonic() - started < 10
    assert not slow.ok_events()  # the slow one is still holding its requests
    slow.release()
    await wait_until(lambda: set(ids) <= set(slow.ok_events()), timeout=30, what="the slow receiver's events")


async def test_dead_letters_listed_and_replayed(start_node: Callable[..., Node], room_name: str,
                                              receivers: Callable[..., Receiver]) -> None:
    node = start_node(**{**FAST, "LIVESERVER_WEBHOOK_RETRY_S": "1"})
    rx = receivers(status=503)
    create_room(node, room_name)
    hook = subscribe(node, rx.url, room_name, ["lottery.drawn"]).json()["webhook"]
    event_id = lottery_drawn(node, room_name)

    def dead() -> list:
        r = httpx.get(f"{node.http}/api/v1/webhooks/dead", headers=admin_headers(), timeout=10)
        assert r.status_code == 200 and SECRET not in r.text
        return [d for d in r.json()["dead"] if d["hook"] == hook["id"]]

    letters = await wait_until(dead, timeout=20, what="a dead letter")
    assert letters[0]["event_id"] == event_id and letters[0]["attempts"] >= 2 and letters[0]["last_status"] == 503
    count = len(rx.hits)
    rx.status = 200
    r = httpx.post(f"{node.http}/api/v1/webhooks/dead/{letters[0]['id']}/replay", headers=admin_headers(), timeout=10)
    assert r.status_code == 200, r.text
    await wait_until(lambda: event_id in rx.ok_events(), timeout=10, what="the replayed delivery")
    assert len(rx.hits) > count and not dead()
    again = httpx.post(f"{node.http}/api/v1/webhooks/dead/{letters[0]['id']}/replay", headers=admin_headers(), timeout=10)
    assert again.status_code == 404


def test_api_rules(start_node: Callable[..., Node], room_name: str) -> None:
    node = start_node()  # private receivers are refused here
    create_room(node, room_name)
    url = f"{node.http}/api/v1/webhooks"
    for bad in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "ftp://example.com/x", "http://user:pw@example.com/x"):
        r = httpx.post(url, json={"url": bad, "secret": SECRET}, headers=admin_headers(), timeout=10)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", (bad, r.text)
    for secret in ("short-secret", "x" * 300, 12345678901234567890):
        r = httpx.post(url, json={"url": "https://example.com/x", "secret": secret}, headers=admin_headers(), timeout=10)
        assert r.status_code == 400 and str(secret) not in r.text, r.text  # never echoed
    assert httpx.post(url, json={"url": "https://example.com/x", "secret": SECRET}, timeout=10).status_code == 401
    viewer = {"Authorization": f"Bearer {__import__('harness').token('v1', 'viewer')}"}
    assert httpx.get(url, headers=viewer, timeout=10).status_code == 403
    # a host token of one room may not subscribe to another
    r = httpx.post(url, json={"url": "https://example.com/x", "secret": SECRET, "room": "other"},
                   headers=host_headers(room_name), timeout=10)
    assert r.status_code == 403
    assert httpx.delete(f"{url}/wh_nope", headers=admin_headers(), timeout=10).status_code == 404


async def test_group_completed_and_failed_sent_once(start_node: Callable[..., Node], room_name: str,
                                                   receivers: Callable[..., Receiver]) -> None:
    """A team that fills sends `group.completed` (a retried join with the same key sends no
    second one); a team whose window ends unfilled sends `group.failed`, once however many
    nodes' sweepers race to close it; a hook for `group.failed` only gets only that."""
    node = start_node(**FAST)
    start_node(**FAST)  # a second sweeper (and relay) on the same Redis
    rx, only_failed = receivers(), receivers()
    create_room(node, room_name, [{"id": "tea", "title": "Tea", "price": 1200}])
    assert subscribe(node, rx.url, room_name, ["group.completed", "group.failed"]).status_code == 201
    assert subscribe(node, only_failed.url, room_name, ["group.failed"]).status_code == 201
    r = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/groups", headers=admin_headers(), timeout=10,
                   json={"product_id": "tea", "price": 900, "size": 2, "stock": 10, "team_window_s": 2, "duration_s": 600})
    assert r.status_code == 201, r.text
    group = r.json()["group"]["id"]
    ann, bo, cy = [await Client.connect(node, room_name, user=u, name=u.title()) for u in ("ann", "bo", "cy")]
    try:
        full = (await ann.request("group_join", group=group, key="a"))["data"]["team"]
        joined = await bo.request("group_join", group=group, team=full, key="b")
        assert joined["ok"] and joined["data"]["status"] == "completed", joined
        assert (await bo.request("group_join", group=group, team=full, key="b"))["data"] == joined["data"]
        lonely = (await cy.request("group_join", group=group, key="c"))["data"]["team"]
    finally:
        for c in (ann, bo, cy):
            await c.close()

    def both() -> bool:
        types = sorted(e["type"] for e in rx.ok_events().values())
        return types == ["group.completed", "group.failed"]

    await wait_until(both, timeout=30, what="group.completed and group.failed delivered")
    events = rx.ok_events()
    done, failed = events[f"{full}.completed"], events[f"{lonely}.failed"]
    assert done["room"] == room_name and done["data"]["group"] == group and done["data"]["team"] == full
    assert [m["user"] for m in done["data"]["members"]] == ["ann", "bo"] and done["data"]["price"] == 900
    assert [m["user"] for m in failed["data"]["members"]] == ["cy"] and failed["data"]["size"] == 2
    assert all(m["order"] for m in done["data"]["members"] + failed["data"]["members"])
    await wait_until(lambda: len(only_failed.ok_events()) == 1, timeout=10, what="the failed-only hook's delivery")
    assert list(only_failed.ok_events()) == [f"{lonely}.failed"]
    assert rx.all_signed(SECRET)
    # one request each (no duplicate deliveries from the retried join or the racing sweepers)
    assert sorted(h.headers["liveserver-event-id"] for h in rx.hits) == sorted([f"{full}.completed", f"{lonely}.failed"])


async def test_group_failed_survives_a_node_that_died_before_emitting(start_node: Callable[..., Node], room_name: str,
                                                                      receivers: Callable[..., Receiver],
                                                                      redis_server: RedisServer) -> None:
    """A sweeper that fails a team and dies before its direct emit: `group_close.lua` wrote
    the team's `group_failed` orders-stream entry in the same step, and the orders relay
    emits `group.failed` from it (once: same event id as the direct emit)."""
    from liveserver.core.config import Settings
    from liveserver.engine.commerce_store import CommerceStore
    from liveserver.engine.connect import connect

    node = start_node(LIVESERVER_SCHEDULER="0", **FAST)  # the relay runs; no sweeper of its own
    rx = receivers()
    create_room(node, room_name, [{"id": "tea", "title": "Tea", "price": 1200}])
    assert subscribe(node, rx.url, room_name, ["group.failed"]).status_code == 201
    r = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/groups", headers=admin_headers(), timeout=10,
                   json={"product_id": "tea", "price": 900, "size": 2, "stock": 10, "team_window_s": 1, "duration_s": 600})
    assert r.status_code == 201, r.text
    group = r.json()["group"]["id"]
    cy = await Client.connect(node, room_name, user="cy", name="Cy")
    lonely = (await cy.request("group_join", group=group, key="c"))["data"]["team"]
    await cy.close()

    # "The sweeper": only the script, as a node would run it, and no emit after it.
    engine = await connect(redis_server.url, Settings.from_env())
    try:
        store = CommerceStore(engine, 900)
        await wait_until(lambda: store.close_team(room_name, group, lonely), timeout=15, interval=0.2,
                         what="the team's window to end (close_team True)")
    finally:
        await engine.close()
    await wait_until(lambda: f"{lonely}.failed" in rx.ok_events(), timeout=20, what="group.failed from the relay")
    assert [m["user"] for m in rx.ok_events()[f"{lonely}.failed"]["data"]["members"]] == ["cy"]
    assert [h.headers["liveserver-event-id"] for h in rx.hits] == [f"{lonely}.failed"]
