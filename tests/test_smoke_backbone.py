"""The backbone end to end on one node: welcome, ping, own danmaku comes back."""

from __future__ import annotations

import pytest

from harness import Client, create_room


@pytest.mark.parametrize("direct_write", ["1", "0"], ids=["direct-write", "queued-writer"])
async def test_welcome_ping_danmaku(start_node, room_name: str, direct_write: str) -> None:
    """Both send paths (the tick writing to the socket, and the writer task) deliver."""
    node = start_node(LIVESERVER_DIRECT_WRITE=direct_write)
    create_room(node, room_name)
    c = await Client.connect(node, room_name, user="alice")
    assert c.welcome["room"] == room_name
    assert c.welcome["user"]["id"] == "alice"
    await c.send({"op": "ping", "client_ms": 123})
    pong = await c.wait_for(lambda f: f["t"] == "pong")
    assert pong["client_ms"] == 123 and pong["server_ms"] > 0
    reply = await c.request("danmaku", text="hello room")
    assert reply["ok"], reply
    event = await c.wait_event("danmaku", lambda e: e["offset"] == reply["data"]["offset"])
    assert event["text"] == "hello room" and event["user"] == "alice"
    msgpack_client = await Client.connect(node, room_name, user="bob", codec="lc1.msgpack")
    reply = await c.request("danmaku", text="second")
    event = await msgpack_client.wait_event("danmaku", lambda e: e["offset"] == reply["data"]["offset"])
    assert event["text"] == "second"
    await c.close()
    await msgpack_client.close()
