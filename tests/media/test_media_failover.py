"""A media process that dies mid-live: its lease in Redis expires, every node shows the
room offline, and a new publisher (through another node) takes the room."""

from __future__ import annotations

import httpx
import psutil
import pytest

from harness import Client, create_room, token
from mediakit import publish

pytestmark = pytest.mark.timeout(180)


async def test_dead_media_process_releases_the_room(start_media_node, room_name) -> None:
    a = start_media_node()
    b = start_media_node(LIVESERVER_MEDIA_OWNER_TTL_MS="2000")
    create_room(a, room_name)
    ws = await Client.connect(a, room_name, "v1")
    host = token("host-1", "host", room=room_name)
    first = await publish(f"{b.http}/api/v1/rooms/{room_name}/whip", host)
    second = None
    try:
        await ws.wait_state(lambda s: s["media"].get("live"), timeout=30)
        media_child = [p for p in psutil.Process(b.proc.pid).children() if "media" in p.cmdline()]
        assert len(media_child) == 1
        media_child[0].kill()
        # Nobody announced the end: the expired lease is what tells node A.
        await ws.wait_state(lambda s: s["media"].get("live") is False, timeout=20)
        second = await publish(f"{a.http}/api/v1/rooms/{room_name}/whip", host)
        assert second.location.startswith(a.media)
        await ws.wait_state(lambda s: s["media"].get("live") and a.media in s["media"]["hls"], timeout=30)
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.delete(second.location)).status_code == 200
    finally:
        await first.close()
        if second is not None:
            await second.close()
        await ws.close()
