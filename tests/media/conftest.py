"""Media fixtures: web nodes (each with its media child on a known port) on the
session's private Redis, with their data in a temp dir."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from harness import Node, RedisServer, free_port, node_env


@pytest.fixture
def start_media_node(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def start(**env: str) -> Node:
        media_port = free_port()
        data = tmp_path / f"node{len(nodes)}"
        node = Node(port=free_port(), env=node_env(redis_server.url, LIVESERVER_DATA_DIR=str(data), LIVESERVER_MEDIA="1",
                                                   LIVESERVER_MEDIA_PORT=str(media_port), **env))
        node.media = f"http://127.0.0.1:{media_port}"  # type: ignore[attr-defined]
        node.data = data  # type: ignore[attr-defined]
        nodes.append(node)
        node.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(node.media + "/healthz", timeout=1).status_code == 200:  # type: ignore[attr-defined]
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the media child did not start")
            time.sleep(0.1)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def media_node(start_media_node: Callable[..., Node]) -> Node:
    return start_media_node()
