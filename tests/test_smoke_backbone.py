"""The backbone end to end on one node: welcome, ping, own danmaku comes back."""

from __future__ import annotations

from harness import Client, Node, create_room


async def test_welcome_ping_danmaku(node: Node, room_name: str) -> None:
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
    await c.close()
