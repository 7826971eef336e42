"""Fixtures: a private redis-server per test session, and node processes on it.

`redis_cluster` is a real Redis Cluster (3 masters + 3 replicas, formed from Python) for
the session; a test module runs against both one Redis and the Cluster by overriding
`redis_server` with `redis_backend` (module-scoped, parametrized "redis" / "cluster")."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import pytest

import harness
from harness import Node, RedisClusterServers, RedisServer, free_port, node_env

_rooms = itertools.count(1)
LOG_TAIL = 6000  # characters of each node's log in a failed test's report
SUMMARY_TAIL = 1500  # ... and in the summary at the end of the run
_FAILED_LOGS: list[tuple[str, str, str]] = []  # (test, log file, its tail) for that summary


def pytest_runtest_setup(item: pytest.Item) -> None:
    harness.STARTED.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report ends with the log of every node it started: in CI that
    log is the only trace of what a node (or its media child) was doing."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for node in harness.STARTED:
        for path in node.logs():
            if path.exists():
                text = path.read_text(errors="replace")
                report.sections.append((f"{path.name} ({call.when})", text[-LOG_TAIL:] or "(empty)"))
                if text.strip():
                    _FAILED_LOGS.append((report.nodeid, path.name, text[-SUMMARY_TAIL:]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The failed tests' node logs once more, short, at the very end of the output: a CI
    page that shows only the head and the tail of a long run still shows them."""
    if not _FAILED_LOGS:
        return
    terminalreporter.section("node logs of the failed tests (tails)")
    for nodeid, name, text in _FAILED_LOGS:
        terminalreporter.write_line(f"--- {nodeid}: {name}")
        terminalreporter.write_line(text.rstrip() or "(empty)")


@pytest.fixture(scope="session")
def redis_single() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(redis_single: RedisServer) -> RedisServer:
    """The Redis tests run on (a module may override it with `redis_backend`)."""
    return redis_single


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module", params=["redis", "cluster"])
def redis_backend(request: pytest.FixtureRequest) -> RedisServer | RedisClusterServers:
    """One Redis, then the session's Redis Cluster: both have `.url` and `.client()`."""
    return request.getfixturevalue("redis_single" if request.param == "redis" else "redis_cluster")


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
