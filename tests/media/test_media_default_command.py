"""One command is a whole server: `liveserver serve` with its embedded Redis also starts
the media process, a WHIP publisher goes live through it, and stopping the node stops it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psutil
import pytest

from harness import Client, Node, create_room, free_port, node_env, token
from mediakit import publish, watch

pytestmark = pytest.mark.timeout(120)


async def test_serve_starts_its_media_process(tmp_path: Path) -> None:
    env = node_env(None, LIVESERVER_DATA_DIR=str(tmp_path), LIVESERVER_MEDIA="1")
    assert "LIVESERVER_REDIS_URL" not in env and "LIVESERVER_MEDIA_PORT" not in env  # embedded Redis, a free port
    node = Node(port=free_port(), env=env).start()
    pub = None
    try:
        media = [p for p in psutil.Process(node.proc.pid).children() if "media" in p.cmdline()]
        assert len(media) == 1
        room = "default-cmd"
        create_room(node, room)
        ws = await Client.connect(node, room, "v1")
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the child may still be importing aiortc when the web node is ready
            try:
                pub = await publish(f"{node.http}/api/v1/rooms/{room}/whip", token("host-1", "host", room=room))
                break
            except AssertionError as exc:
                if "502" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await ws.wait_state(lambda s: s["media"].get("live"), timeout=30)
        viewer = await watch(f"{node.http}/api/v1/rooms/{room}/whep", want=30)
        await asyncio.wait_for(viewer.got.wait(), 30)
        await viewer.close()
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.delete(pub.location)).status_code == 200
        await ws.wait_state(lambda s: s["media"].get("live") is False, timeout=20)
        await ws.close()
    finally:
        if pub is not None:
            await pub.close()
        node.stop()
    assert media[0].wait(10) is not None or not media[0].is_running()
