"""Ops endpoints (/healthz, /readyz, /metrics, /api/v1/openapi.json) and graceful
shutdown (viewers closed with 1012, the node's viewers leave the online count at once)."""

from __future__ import annotations

import asyncio
import signal
from typing import Iterator

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from harness import Client, Node, RedisServer, create_room, free_port, metric, node_env
from waiting import wait_until, wait_until_sync


@pytest.fixture(scope="module")
def ops_node(redis_server: RedisServer) -> Iterator[Node]:
    node = Node(port=free_port(), env=node_env(redis_server.url)).start()
    yield node
    node.kill()


def test_healthz_and_readyz(ops_node: Node) -> None:
    h = httpx.get(f"{ops_node.http}/healthz", timeout=5)
    assert h.status_code == 200 and h.json()["ok"] is True and h.json()["node"]
    r = httpx.get(f"{ops_node.http}/readyz", timeout=5)
    assert r.status_code == 200 and r.json()["ready"] is True
    assert r.json()["node"] == h.json()["node"]


async def test_metrics(ops_node: Node, room_name: str) -> None:
    r = httpx.get(f"{ops_node.http}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in ("liveserver_connections", "liveserver_rooms", "liveserver_frames_sent_total", "liveserver_events_in_total",
                 "liveserver_tick_seconds_bucket", "liveserver_danmaku_dropped_total", "liveserver_slow_closes_total",
                 "liveserver_abuse_closes_total"):
        assert f"\n{name}" in r.text, name
    assert "# TYPE liveserver_ops_total counter" in r.text  # labelled: samples appear with the first op
    # The numbers move with what happens on the node.
    create_room(ops_node, room_name)
    base_conn = metric(ops_node, "liveserver_connections")
    base_events = metric(ops_node, "liveserver_events_in_total")
    c = await Client.connect(ops_node, room_name, user="counted")
    assert metric(ops_node, "liveserver_connections") == base_conn + 1
    assert metric(ops_node, "liveserver_rooms") >= 1
    sent = await c.request("danmaku", text="count me")
    await c.wait_event("danmaku", lambda e: e["offset"] == sent["data"]["offset"])
    assert metric(ops_node, "liveserver_events_in_total") >= base_events + 1
    assert metric(ops_node, "liveserver_frames_sent_total") >= 1
    assert metric(ops_node, "liveserver_tick_seconds_count") > 0
    assert 'liveserver_ops_total{op="danmaku",result="ok"}' in httpx.get(f"{ops_node.http}/metrics", timeout=5).text
    await c.close()
    await wait_until(lambda: metric(ops_node, "liveserver_connections") == base_conn, timeout=5, interval=0.05,
                     what="liveserver_connections to drop back")


def test_openapi_document(ops_node: Node) -> None:
    r = httpx.get(f"{ops_node.http}/api/v1/openapi.json", timeout=5)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    validate_openapi(doc)  # raises on an invalid OpenAPI document
    paths = doc["paths"]
    expected = {
        "/api/v1/rooms/{room}": {"put", "get"},
        "/api/v1/rooms/{room}/products": {"put", "get"},
        "/api/v1/rooms/{room}/notices": {"post"},
        "/api/v1/rooms/{room}/mutes": {"post"},
        "/api/v1/rooms/{room}/danmaku/{offset}": {"delete"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    for ops in paths.values():
        for op in ops.values():
            if "requestBody" in op:
                Draft202012Validator.check_schema(op["requestBody"]["content"]["application/json"]["schema"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/api/v1/rooms/{room}"]["get"]["security"] == []  # reading a room needs no token


def test_readyz_is_503_when_redis_is_down() -> None:
    own = RedisServer().start()
    node = Node(port=free_port(), env=node_env(own.url)).start()
    try:
        own.stop()
        r = httpx.get(f"{node.http}/readyz", timeout=10)
        assert r.status_code == 503
        assert r.json()["ready"] is False and r.json()["error"]["code"] == "internal"
        assert httpx.get(f"{node.http}/healthz", timeout=5).status_code == 200  # the process is up
        own.start()
        wait_until_sync(lambda: httpx.get(f"{node.http}/readyz", timeout=10).status_code == 200, timeout=10, interval=0.1,
                        what="readyz to recover with Redis")
    finally:
        node.kill()
        own.stop()


async def test_sigterm_closes_viewers_with_1012_and_leaves_online_at_once(redis_server: RedisServer, room_name: str) -> None:
    env = node_env(redis_server.url, LIVESERVER_NODE_TTL_MS="20000")  # a dead node would linger 20 s
    stays = Node(port=free_port(), env=env).start()
    going = Node(port=free_port(), env=env).start()
    try:
        create_room(stays, room_name)
        watcher = await Client.connect(stays, room_name, user="watcher")
        leaving = [await Client.connect(going, room_name, user=f"l{i}") for i in range(2)]
        await watcher.wait_state(lambda s: s["online"] == 3)
        assert going.proc is not None
        going.proc.send_signal(signal.SIGTERM)
        for c in leaving:
            assert await asyncio.wait_for(asyncio.shield(c.closed), 10) == 1012
        # Graceful: the node takes its viewers out of the count, no waiting for the TTL.
        await watcher.wait_state(lambda s: s["online"] == 1, timeout=5)
        assert going.stop(signal.SIGTERM, timeout=15) in (0, -signal.SIGTERM)
        await watcher.close()
    finally:
        going.kill()
        stays.kill()
