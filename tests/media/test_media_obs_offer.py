"""OBS 30.2+ posts its WHIP offer without candidates and takes none trickled: the answer
must carry the server's, and the server learns the publisher's address from its checks."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness import Client, create_room, token
from mediakit import publish, watch

pytestmark = pytest.mark.timeout(120)


async def test_offer_without_candidates_goes_live(media_node, room_name) -> None:
    create_room(media_node, room_name)
    ws = await Client.connect(media_node, room_name, "v1")
    pub = await publish(f"{media_node.http}/api/v1/rooms/{room_name}/whip", token("host-1", "host", room=room_name), like_obs=True)
    try:
        assert "a=candidate:" in pub.response.text
        await ws.wait_state(lambda s: s["media"].get("live"), timeout=30)
        viewer = await watch(f"{media_node.http}/api/v1/rooms/{room_name}/whep", want=30)
        try:
            await asyncio.wait_for(viewer.got.wait(), 30)
        finally:
            await viewer.close()
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.delete(pub.location)).status_code == 200
    finally:
        await pub.close()
        await ws.close()
