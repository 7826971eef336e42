"""Bad input on the viewer websocket: each kind gets its documented error (a `reply` with
the error when the frame's `id` could be read, else an `error` frame) and the connection
stays open; repeated abuse closes with 4429; the node keeps serving everyone else.
(The pure decoder is fuzzed with hypothesis in test_protocol.py.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import msgpack
import pytest
import websockets

from harness import Client, Node, RedisServer, create_room, free_port, node_env, token

MAX_FRAME = 4096


@pytest.fixture(scope="module")
def bad_node(redis_server: RedisServer) -> Iterator[Node]:
    env = node_env(redis_server.url, LIVESERVER_BLOCKED_WORDS="spamword,Bad Thing", LIVESERVER_ABUSE_ERRORS="20")
    node = Node(port=free_port(), env=env).start()
    create_room(node, "bad-input")
    yield node
    node.kill()


ROOM = "bad-input"


async def still_serving(node: Node) -> None:
    """A fresh client can still join, ping and see its own danmaku come back."""
    c = await Client.connect(node, ROOM, user="bystander")
    await c.send({"op": "ping", "client_ms": 5})
    assert (await c.wait_for(lambda f: f["t"] == "pong", timeout=5))["client_ms"] == 5
    reply = await c.request("danmaku", text="still here", timeout=5)
    assert reply["ok"], reply
    await c.wait_event("danmaku", lambda e: e["offset"] == reply["data"]["offset"], timeout=5)
    await c.close()


def drain(c: Client) -> list[dict[str, Any]]:
    """Frames received so far (the harness queues replies too): take them off the queue."""
    out = []
    while not c.frames.empty():
        out.append(c.frames.get_nowait())
    return out


async def closed_with(c: Client, timeout: float = 10) -> int:
    return await asyncio.wait_for(asyncio.shield(c.closed), timeout)


async def expect_error_frame(c: Client, code: str) -> dict[str, Any]:
    """The next error-or-reply frame after everything already received is an `error`."""
    frame = await c.wait_for(lambda f: f["t"] in ("error", "reply"), timeout=5)
    assert frame["t"] == "error", frame
    assert frame["code"] == code and frame["message"], frame
    return frame


async def expect_reply_error(c: Client, op: str, code: str, **fields: Any) -> dict[str, Any]:
    reply = await c.request(op, timeout=5, **fields)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code and reply["error"]["message"], reply
    return reply


async def ping_ok(c: Client) -> None:
    drain(c)
    await c.send({"op": "ping", "id": "p", "client_ms": 1})
    pong = await c.wait_for(lambda f: f["t"] in ("pong", "reply"), timeout=5)
    assert pong["t"] == "pong" and pong["re"] == "p", "a ping is answered by a pong that names its id"


@pytest.mark.parametrize(
    "data",
    [b"\xc1\xc1", b"\x92\x01\x02", b"\x81\x01\x02", b"", b"\x82\xa2op"],
    ids=["not-msgpack", "array", "int-key", "empty", "truncated"],
)
async def test_msgpack_garbage_gets_error_frame(bad_node: Node, data: bytes) -> None:
    c = await Client.connect(bad_node, ROOM, user="mp", codec="lc1.msgpack")
    drain(c)
    await c.ws.send(data)
    await expect_error_frame(c, "bad_request")
    await c.ws.send(msgpack.packb({"op": "ping", "client_ms": 2}))
    pong = await c.wait_for(lambda f: f["t"] == "pong", timeout=5)
    assert pong["client_ms"] == 2
    await c.close()


async def test_msgpack_codec_speaks_binary(bad_node: Node) -> None:
    async with asyncio.timeout(10):
        async with websockets.connect(f"{bad_node.ws}/ws/rooms/{ROOM}?token={token('mp2')}", subprotocols=["lc1.msgpack"]) as ws:
            assert ws.subprotocol == "lc1.msgpack"
            await ws.send(msgpack.packb({"op": "danmaku", "id": 1, "text": "二进制"}))
            kinds = []
            while True:
                raw = await ws.recv()
                assert isinstance(raw, bytes), "lc1.msgpack frames are binary"
                frame = msgpack.unpackb(raw, raw=False)
                kinds.append(frame["t"])
                if frame["t"] == "reply":
                    break
            assert kinds[0] == "welcome" and frame["ok"] and frame["re"] == 1


async def test_json_is_the_default_codec(bad_node: Node) -> None:
    async with asyncio.timeout(10):
        async with websockets.connect(f"{bad_node.ws}/ws/rooms/{ROOM}") as ws:
            assert ws.subprotocol is None
            welcome = await ws.recv()
            assert isinstance(welcome, str) and json.loads(welcome)["t"] == "welcome"


@pytest.mark.parametrize("text", ["[1,2]", '"op"', "42", "null", "{oops", '{"op":"ping","client_ms":NaN}', "[" * 2000],
                         ids=["array", "string", "number", "null", "broken", "nan", "deep"])
async def test_json_non_map_gets_error_frame(bad_node: Node, text: str) -> None:
    c = await Client.connect(bad_node, ROOM, user="js")
    drain(c)
    await c.ws.send(text)
    await expect_error_frame(c, "bad_request")
    await ping_ok(c)
    await c.close()


async def test_oversize_frames(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="big")
    drain(c)
    # Over LIVESERVER_MAX_FRAME: not even decoded, so the id cannot be replied to.
    await c.send({"op": "ping", "id": 1, "pad": "x" * MAX_FRAME})
    await expect_error_frame(c, "too_long")
    # The limit is in bytes: 2,000 CJK characters are 6,000 bytes of UTF-8.
    await c.ws.send(json.dumps({"op": "ping", "id": 2, "pad": "弹" * 2000}, ensure_ascii=False))
    await expect_error_frame(c, "too_long")
    # Just under the limit is fine.
    frame = {"op": "ping", "id": 3, "pad": ""}
    frame["pad"] = "y" * (MAX_FRAME - len(json.dumps(frame)))
    await c.send(frame)
    await c.wait_for(lambda f: f["t"] == "pong", timeout=5)
    await c.close()
    await still_serving(bad_node)


async def test_huge_frame_is_cut_by_the_websocket_layer(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="huge")
    await c.ws.send("z" * (MAX_FRAME * 16 + 1))
    assert await closed_with(c) == 1009
    await still_serving(bad_node)


async def test_unknown_op_and_bad_fields_get_reply_errors(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="fields")
    await expect_reply_error(c, "dance", "bad_request")
    await expect_reply_error(c, "danmaku", "bad_request")  # missing text
    await expect_reply_error(c, "danmaku", "bad_request", text=["a"])
    await expect_reply_error(c, "like", "bad_request", n="many")
    await expect_reply_error(c, "like", "bad_request", n=51)
    await expect_reply_error(c, "vote", "bad_request", poll="p")
    await expect_reply_error(c, "ping", "bad_request", client_ms={"a": 1})
    # Without an id the same errors come as `error` frames.
    drain(c)
    await c.send({"op": "dance"})
    await expect_error_frame(c, "bad_request")
    drain(c)
    await c.send({"id": 5})
    frame = await c.wait_for(lambda f: f["t"] in ("error", "reply"), timeout=5)
    assert frame == {"t": "reply", "re": 5, "ok": False, "error": frame["error"]} and frame["error"]["code"] == "bad_request"
    # An unusable id cannot be replied to.
    drain(c)
    await c.send({"op": "ping", "id": 1.5})
    await expect_error_frame(c, "bad_request")
    await ping_ok(c)
    await c.close()


async def test_commerce_ops_on_nothing_are_not_found(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="shopper")
    await expect_reply_error(c, "buy", "not_found", sale="bad-input.s999", key="k1")
    await expect_reply_error(c, "claim", "not_found", coupon="bad-input.c999")
    await expect_reply_error(c, "enter", "not_found", lottery="bad-input.l999")
    await expect_reply_error(c, "vote", "not_found", poll="bad-input.p999", option=0)
    await ping_ok(c)
    await c.close()


async def test_danmaku_content_rules(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="writer")
    await expect_reply_error(c, "danmaku", "too_long", text="长" * 101)
    await expect_reply_error(c, "danmaku", "bad_request", text=" \t\n ")
    await expect_reply_error(c, "danmaku", "blocked_word", text="buy SPAMWORD now")
    await expect_reply_error(c, "danmaku", "blocked_word", text="a bad   thing")  # whitespace is normalised
    ok = await c.request("danmaku", text="  a   fine\tcomment ")
    assert ok["ok"], ok
    event = await c.wait_event("danmaku", lambda e: e["offset"] == ok["data"]["offset"])
    assert event["text"] == "a fine comment"
    await c.close()


async def test_danmaku_rate_limit(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="chatty")
    results = [await c.request("danmaku", text=f"msg {i}", timeout=5) for i in range(8)]
    codes = [r["error"]["code"] if not r["ok"] else "ok" for r in results]
    # Burst of 5 (LIVESERVER_DANMAKU_BURST), then limited; the connection stays open.
    assert codes[:5] == ["ok"] * 5 and "rate_limited" in codes[5:], codes
    await ping_ok(c)
    await c.close()


async def test_flood_of_bad_frames_closes_4429(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="flooder")
    for _ in range(30):
        await c.ws.send("not json")
    assert await closed_with(c) == 4429
    errors = [f for f in drain(c) if f["t"] == "error"]
    assert len(errors) <= 20 and all(f["code"] == "bad_request" for f in errors)
    await still_serving(bad_node)


async def test_op_flood_closes_4429(bad_node: Node) -> None:
    c = await Client.connect(bad_node, ROOM, user="pinger")
    for i in range(200):
        await c.send({"op": "ping", "id": i})
    assert await closed_with(c) == 4429
    seen: dict[str, int] = {}
    for frame in drain(c):
        key = frame["t"] if frame["t"] != "reply" else frame["error"]["code"]
        seen[key] = seen.get(key, 0) + 1
    # The burst (2x LIVESERVER_OP_RATE) is served, not the whole flood; frames still queued
    # when the 4429 close comes are not sent.
    assert 0 < seen.get("pong", 0) <= 120, seen
    await still_serving(bad_node)
