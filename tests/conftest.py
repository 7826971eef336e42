"""Fixtures: a private redis-server per test session, and node processes on it."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import pytest

from harness import Node, RedisServer, free_port, node_env

_rooms = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def room_name(request: pytest.FixtureRequest) -> str:
    """A room name no other test uses (tests share one Redis)."""
    return f"t{next(_rooms)}-{request.node.name[:30]}".replace("[", "-").replace("]", "").replace("/", "-")


@pytest.fixture
def start_node(redis_server: RedisServer) -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def start(redis_url: str | None = None, **env: str) -> Node:
        node = Node(port=free_port(), env=node_env(redis_url or redis_server.url, **env))
        nodes.append(node)
        return node.start()

    yield start
    for node in nodes:
        node.kill()


@pytest.fixture
def node(start_node: Callable[..., Node]) -> Node:
    return start_node()
