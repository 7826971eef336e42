"""Who may connect and who may call the host API: bad tokens close with 4401, banned
users with 4403, unknown rooms with 4404; the host API answers 401/403 as JSON; a guest
reads but cannot send danmaku."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Iterator

import httpx
import jwt
import pytest
import websockets

from harness import SECRET, Client, Node, RedisServer, admin_headers, create_room, free_port, host_headers, node_env, token
from liveserver.core.auth import mint


@pytest.fixture(scope="module")
def api_node(redis_server: RedisServer) -> Iterator[Node]:
    node = Node(port=free_port(), env=node_env(redis_server.url)).start()
    yield node
    node.kill()


@pytest.fixture(scope="module")
def room(api_node: Node) -> str:
    create_room(api_node, "tokens-room")
    return "tokens-room"


async def close_code(node: Node, room: str, query: str = "") -> tuple[int, list[dict[str, Any]]]:
    """Connect, read until the server closes; the close code and any frames seen first."""
    url = f"{node.ws}/ws/rooms/{room}" + (f"?{query}" if query else "")
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        ws = await websockets.connect(url, subprotocols=["lc1.json"])
        try:
            while True:
                seen.append(json.loads(await ws.recv()))
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None, "the server must send a close frame"
            return exc.rcvd.code, seen


def forged(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def exp(seconds: int = 600) -> int:
    return int(time.time()) + seconds


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param(lambda: mint(SECRET, "u1", ttl_s=-30), id="expired"),
        pytest.param(lambda: mint("not-the-server-secret-0123456789abcdef", "u1"), id="wrong-secret"),
        pytest.param(lambda: forged({"sub": "u1", "role": "superuser", "exp": exp()}), id="bad-role"),
        pytest.param(lambda: forged({"role": "viewer", "exp": exp()}), id="no-sub"),
        pytest.param(lambda: forged({"sub": "u1", "role": "viewer"}), id="no-exp"),
        pytest.param(lambda: forged({"sub": "", "exp": exp()}), id="empty-sub"),
        pytest.param(lambda: jwt.encode({"sub": "u1", "exp": exp()}, SECRET * 2, algorithm="HS512"), id="other-alg"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
async def test_bad_tokens_close_4401(api_node: Node, room: str, bad_token: Any) -> None:
    code, seen = await close_code(api_node, room, f"token={bad_token()}")
    assert code == 4401
    assert seen == [], "no welcome before a refused token"


async def test_banned_user_closes_4403_and_unban_lets_in(api_node: Node, room: str) -> None:
    r = httpx.post(f"{api_node.http}/api/v1/rooms/{room}/bans", json={"user": "troll"}, headers=host_headers(room), timeout=5)
    assert r.status_code == 201, r.text
    code, _ = await close_code(api_node, room, f"token={token('troll')}")
    assert code == 4403
    # Another user is not affected.
    ok = await Client.connect(api_node, room, user="fine")
    await ok.close()
    r = httpx.post(f"{api_node.http}/api/v1/rooms/{room}/bans", json={"user": "troll", "banned": False}, headers=host_headers(room), timeout=5)
    assert r.status_code == 201
    back = await Client.connect(api_node, room, user="troll")
    await back.close()


@pytest.mark.parametrize("name", ["no-such-room-here", "bad.name", "x" * 65])
async def test_unknown_room_closes_4404(api_node: Node, name: str) -> None:
    code, _ = await close_code(api_node, name, f"token={token('u1')}")
    assert code == 4404


async def test_unknown_room_closes_4404_for_guests_too(api_node: Node) -> None:
    code, _ = await close_code(api_node, "nothing-here")
    assert code == 4404


async def test_guest_reads_but_cannot_send_danmaku(api_node: Node, room: str) -> None:
    guest = await Client.connect(api_node, room, user=None)
    assert guest.welcome["user"]["role"] == "guest"
    assert guest.welcome["user"]["id"].startswith("guest:")
    reply = await guest.request("danmaku", text="hi")
    assert reply["ok"] is False and reply["error"]["code"] == "unauthorized"
    # Still connected and reading: a signed-in viewer's danmaku reaches the guest.
    viewer = await Client.connect(api_node, room, user="signed-in")
    sent = await viewer.request("danmaku", text="hello guests")
    assert sent["ok"], sent
    seen = await guest.wait_event("danmaku", lambda e: e["offset"] == sent["data"]["offset"])
    assert seen["text"] == "hello guests"
    await guest.send({"op": "ping", "client_ms": 1})
    await guest.wait_for(lambda f: f["t"] == "pong")
    await guest.close()
    await viewer.close()


async def test_identity_comes_from_the_token(api_node: Node, room: str) -> None:
    c = await Client.connect(api_node, room, user="vip", name="V. I. P.", badge="gold")
    assert c.welcome["user"] == {"id": "vip", "name": "V. I. P.", "role": "viewer", "badge": "gold"}
    reply = await c.request("danmaku", text="badge check")
    event = await c.wait_event("danmaku", lambda e: e["offset"] == reply["data"]["offset"])
    assert event["badge"] == "gold" and event["name"] == "V. I. P."
    await c.close()


# -- host API ---------------------------------------------------------------------------

def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str), body


def test_host_api_without_token_is_401(api_node: Node, room: str) -> None:
    _error(httpx.post(f"{api_node.http}/api/v1/rooms/{room}/notices", json={"text": "x"}, timeout=5), 401, "unauthorized")
    _error(httpx.put(f"{api_node.http}/api/v1/rooms/{room}", json={}, headers={"Authorization": "Basic abc"}, timeout=5), 401, "unauthorized")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: mint(SECRET, "h", role="host", ttl_s=-5), id="expired"),
        pytest.param(lambda: mint("another-secret-0123456789abcdef0123", "h", role="host"), id="wrong-secret"),
        pytest.param(lambda: "garbage", id="garbage"),
    ],
)
def test_host_api_with_bad_token_is_401(api_node: Node, room: str, bad: Any) -> None:
    r = httpx.post(f"{api_node.http}/api/v1/rooms/{room}/notices", json={"text": "x"},
                   headers={"Authorization": f"Bearer {bad()}"}, timeout=5)
    _error(r, 401, "unauthorized")


def test_host_api_with_viewer_token_is_403(api_node: Node, room: str) -> None:
    headers = {"Authorization": f"Bearer {token('viewer-1')}"}
    _error(httpx.post(f"{api_node.http}/api/v1/rooms/{room}/notices", json={"text": "x"}, headers=headers, timeout=5), 403, "forbidden")
    _error(httpx.put(f"{api_node.http}/api/v1/rooms/{room}", json={"title": "mine"}, headers=headers, timeout=5), 403, "forbidden")


def test_host_token_is_limited_to_its_room(api_node: Node, room: str) -> None:
    create_room(api_node, "tokens-other")
    r = httpx.post(f"{api_node.http}/api/v1/rooms/tokens-other/notices", json={"text": "x"}, headers=host_headers(room), timeout=5)
    _error(r, 403, "forbidden")
    ok = httpx.post(f"{api_node.http}/api/v1/rooms/{room}/notices", json={"text": "x"}, headers=host_headers(room), timeout=5)
    assert ok.status_code == 201, ok.text
    # An unscoped host token and an admin token work anywhere.
    for headers in (host_headers(None), admin_headers()):
        r = httpx.post(f"{api_node.http}/api/v1/rooms/tokens-other/notices", json={"text": "y"}, headers=headers, timeout=5)
        assert r.status_code == 201, r.text


def test_reading_a_room_needs_no_token(api_node: Node, room: str) -> None:
    r = httpx.get(f"{api_node.http}/api/v1/rooms/{room}", timeout=5)
    assert r.status_code == 200 and r.json()["room"] == room


async def test_ban_closes_open_connections_and_others_see_no_gap(start_node, room_name: str) -> None:
    """A ban reaches every node: the user's open sockets close with 4403 at the next tick;
    the other viewers never see the internal `ban` event and their batch chain is whole."""
    a = start_node()
    b = start_node()
    create_room(a, room_name)
    troll_a = await Client.connect(a, room_name, user="troll")
    troll_b = await Client.connect(b, room_name, user="troll")
    witness = await Client.connect(b, room_name, user="witness")
    frames: list[dict] = []
    last = witness.offset
    r = httpx.post(f"{a.http}/api/v1/rooms/{room_name}/bans", json={"user": "troll"}, headers=admin_headers(), timeout=5)
    assert r.status_code == 201, r.text
    for troll in (troll_a, troll_b):
        code = await asyncio.wait_for(troll.closed, 5)
        assert code == 4403
    notice = httpx.post(f"{a.http}/api/v1/rooms/{room_name}/notices", json={"text": "after"}, headers=admin_headers(), timeout=5)
    after = notice.json()["offset"]
    while True:
        frame = await witness.recv(5)
        frames.append(frame)
        if frame["t"] == "batch" and any(e["offset"] == after for e in frame["events"]):
            break
    for frame in (f for f in frames if f["t"] == "batch"):
        assert frame["prev"] == last, "gap in the witness's batch chain"
        last = frame["offset"]
        assert all(e["k"] != "ban" for e in frame["events"])
    await witness.close()


async def test_each_node_admits_from_its_copy_of_the_bans_and_it_stays_true(start_node, room_name: str) -> None:
    """A node admits signed-in viewers of a room it has open from its copy of the room's
    bans (hub.py `admit`): loaded with the room, kept by the `ban` events that ban.lua
    writes with the ban itself. A ban on one node refuses the next join on the other; an
    unban lets the user in on the other node at once (Redis is asked when the copy says
    banned); a node that opens the room later loads the bans already there."""
    a = start_node()
    b = start_node()
    create_room(a, room_name)
    keep_b = await Client.connect(b, room_name, user="keeps-b-open")  # the room is open on b

    async def ban(banned: bool) -> None:
        r = httpx.post(f"{a.http}/api/v1/rooms/{room_name}/bans", json={"user": "troll", "banned": banned},
                       headers=admin_headers(), timeout=5)
        assert r.status_code == 201, r.text

    for _ in range(3):
        await ban(True)
        code, seen = await close_code(b, room_name, f"token={token('troll')}")
        assert code == 4403
        await ban(False)  # and at once on the other node: admitted, no 4403 from a stale copy
        back = await Client.connect(b, room_name, user="troll")
        assert back.welcome["user"]["id"] == "troll"
        await back.close()
    await ban(True)
    c = start_node()  # opens the room after the ban: reads the bans with the room
    keep_c = await Client.connect(c, room_name, user="keeps-c-open")
    code, seen = await close_code(c, room_name, f"token={token('troll')}")
    assert code == 4403
    assert not any(f.get("t") == "welcome" for f in seen)
    for client in (keep_b, keep_c):
        await client.close()
