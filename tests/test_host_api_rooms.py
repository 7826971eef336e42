"""The rooms part of the host API against a real node: rooms, products, notices, mutes,
retracting danmaku. Every error is JSON {"error": {code, message}}."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from harness import Client, Node, RedisServer, admin_headers, free_port, host_headers, node_env

PRODUCTS = [
    {"id": "tea", "title": "Longjing tea", "price": 12800, "image": "/static/tea.svg", "points": ["spring"]},
    {"id": "mug", "title": "Celadon mug", "price": 5900},
]


@pytest.fixture(scope="module")
def api_node(redis_server: RedisServer) -> Iterator[Node]:
    node = Node(port=free_port(), env=node_env(redis_server.url)).start()
    yield node
    node.kill()


@pytest.fixture
def room(api_node: Node, room_name: str) -> str:
    r = httpx.put(f"{api_node.http}/api/v1/rooms/{room_name}", json={"title": "Room", "status": "live"}, headers=admin_headers(), timeout=5)
    assert r.status_code == 200, r.text
    return room_name


def api(node: Node, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{node.http}/api/v1{path}", json=body, headers=headers or admin_headers(), timeout=5, **kw)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body
    return body["error"]


def test_put_creates_then_updates_a_room(api_node: Node, room_name: str) -> None:
    r = api(api_node, "PUT", f"/rooms/{room_name}", {"title": "First"}, headers=host_headers(room_name))
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["created"] is True and first["title"] == "First" and first["status"] == "preview"
    assert first["epoch"] and first["offset"] == "0-0" and first["created_ms"] > 0
    r = api(api_node, "PUT", f"/rooms/{room_name}", {"title": "Second", "status": "live"})
    again = r.json()
    assert again["created"] is False and again["title"] == "Second" and again["status"] == "live"
    assert again["epoch"] == first["epoch"], "updating a room keeps its epoch"
    got = httpx.get(f"{api_node.http}/api/v1/rooms/{room_name}", timeout=5).json()
    assert got["title"] == "Second" and got["products"] == [] and got["epoch"] == first["epoch"]


@pytest.mark.parametrize(
    "body",
    [{"status": "exploded"}, {"title": 5}, {"title": "x" * 201}, {"nope": 1}, [], "live"],
    ids=["bad-status", "title-int", "title-long", "unknown-field", "array", "string"],
)
def test_put_room_validates_the_body(api_node: Node, room_name: str, body: Any) -> None:
    assert_error(api(api_node, "PUT", f"/rooms/{room_name}", body), 400, "bad_request")


def test_invalid_json_and_bad_names(api_node: Node, room: str) -> None:
    r = httpx.put(f"{api_node.http}/api/v1/rooms/{room}", content=b"{not json", headers={**admin_headers(), "content-type": "application/json"}, timeout=5)
    assert_error(r, 400, "bad_request")
    assert_error(api(api_node, "PUT", "/rooms/bad.name", {"title": "x"}), 400, "bad_request")
    assert_error(api(api_node, "GET", "/rooms/" + "x" * 65), 400, "bad_request")
    big = {"title": "x" * (300 * 1024)}
    assert_error(api(api_node, "PUT", f"/rooms/{room}", big), 400, "too_long")


def test_unknown_things_are_404_json(api_node: Node) -> None:
    assert_error(api(api_node, "GET", "/rooms/never-made"), 404, "not_found")
    assert_error(api(api_node, "POST", "/rooms/never-made/notices", {"text": "x"}), 404, "not_found")
    assert_error(api(api_node, "PUT", "/rooms/never-made/products", {"products": []}), 404, "not_found")
    assert_error(api(api_node, "GET", "/no/such/endpoint"), 404, "not_found")


def test_wrong_method_is_json_too(api_node: Node, room: str) -> None:
    r = api(api_node, "PATCH", f"/rooms/{room}", {"title": "x"})
    assert r.status_code == 405, r.text
    assert r.json()["error"]["code"]


def test_products_replace_and_list(api_node: Node, room: str) -> None:
    r = api(api_node, "PUT", f"/rooms/{room}/products", {"products": PRODUCTS})
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{api_node.http}/api/v1/rooms/{room}/products", timeout=5).json()["products"]
    assert listed == sorted(PRODUCTS, key=lambda p: p["id"])
    assert httpx.get(f"{api_node.http}/api/v1/rooms/{room}", timeout=5).json()["products"] == listed
    # PUT replaces the whole list.
    api(api_node, "PUT", f"/rooms/{room}/products", {"products": PRODUCTS[:1]}).raise_for_status()
    listed = httpx.get(f"{api_node.http}/api/v1/rooms/{room}/products", timeout=5).json()["products"]
    assert [p["id"] for p in listed] == ["tea"]


@pytest.mark.parametrize(
    "products",
    [
        [PRODUCTS[0], PRODUCTS[0]],
        [{"id": "x", "title": "X", "price": -1}],
        [{"id": "x", "title": "X", "price": 9.99}],
        [{"id": "x", "title": "X"}],
        [{"id": "has space", "title": "X", "price": 1}],
        [{"id": "x", "title": "X", "price": 1, "color": "red"}],
    ],
    ids=["duplicate-ids", "negative-price", "float-price", "no-price", "bad-id", "unknown-field"],
)
def test_products_are_validated(api_node: Node, room: str, products: list[Any]) -> None:
    assert_error(api(api_node, "PUT", f"/rooms/{room}/products", {"products": products}), 400, "bad_request")


async def test_notice_reaches_viewers(api_node: Node, room: str) -> None:
    c = await Client.connect(api_node, room, user="watcher")
    r = api(api_node, "POST", f"/rooms/{room}/notices", {"text": "Sale at 8pm"}, headers=host_headers(room))
    assert r.status_code == 201, r.text
    offset = r.json()["offset"]
    event = await c.wait_event("notice", lambda e: e["offset"] == offset)
    assert event["text"] == "Sale at 8pm" and event["ts"] == r.json()["ts"]
    assert_error(api(api_node, "POST", f"/rooms/{room}/notices", {"text": ""}), 400, "bad_request")
    assert_error(api(api_node, "POST", f"/rooms/{room}/notices", {}), 400, "bad_request")
    await c.close()


async def test_mute_and_unmute(api_node: Node, room: str) -> None:
    c = await Client.connect(api_node, room, user="loud")
    r = api(api_node, "POST", f"/rooms/{room}/mutes", {"user": "loud", "duration_s": 60}, headers=host_headers(room))
    assert r.status_code == 201, r.text
    until_ms = r.json()["until_ms"]
    reply = await c.request("danmaku", text="can you hear me")
    assert reply["ok"] is False and reply["error"]["code"] == "muted"
    assert reply["error"]["until_ms"] == until_ms
    # Other users are not muted.
    other = await Client.connect(api_node, room, user="quiet")
    assert (await other.request("danmaku", text="I can talk"))["ok"]
    api(api_node, "POST", f"/rooms/{room}/mutes", {"user": "loud", "duration_s": 0}).raise_for_status()
    reply = await c.request("danmaku", text="back again")
    assert reply["ok"], reply
    assert_error(api(api_node, "POST", f"/rooms/{room}/mutes", {"user": "loud", "duration_s": -1}), 400, "bad_request")
    await c.close()
    await other.close()


async def test_retract_danmaku(api_node: Node, room: str) -> None:
    c = await Client.connect(api_node, room, user="oops")
    sent = await c.request("danmaku", text="regrettable")
    target = sent["data"]["offset"]
    await c.wait_event("danmaku", lambda e: e["offset"] == target)
    r = api(api_node, "DELETE", f"/rooms/{room}/danmaku/{target}", headers=host_headers(room))
    assert r.status_code == 200, r.text
    assert r.json()["retracted"] == target
    event = await c.wait_event("retract", lambda e: e["offset"] == r.json()["offset"])
    # The event's own offset is its place in the stream; `target` names the danmaku.
    assert event["target"] == target and event["offset"] != target
    assert_error(api(api_node, "DELETE", f"/rooms/{room}/danmaku/1-1"), 404, "not_found")
    assert_error(api(api_node, "DELETE", f"/rooms/{room}/danmaku/not-an-offset"), 400, "bad_request")
    # Only danmaku can be retracted, not a notice.
    notice = api(api_node, "POST", f"/rooms/{room}/notices", {"text": "n"}).json()["offset"]
    assert_error(api(api_node, "DELETE", f"/rooms/{room}/danmaku/{notice}"), 404, "not_found")
    await c.close()


def test_room_offset_follows_events(api_node: Node, room: str) -> None:
    offset = api(api_node, "POST", f"/rooms/{room}/notices", {"text": "n"}).json()["offset"]
    assert httpx.get(f"{api_node.http}/api/v1/rooms/{room}", timeout=5).json()["offset"] == offset
