"""Garbage collection for many long-lived sockets (core/gcpolicy.py, edge/lean.py).

A full collection walks every object the collector tracks; with 10,000 viewers that
stopped a node for ~1 s at a time. The policy freezes what survives a full collection,
which is only safe if closed connections leave no garbage in reference cycles (frozen
cycles are only freed by the periodic sweep): the second test serves real viewer
sockets in this process and looks for their objects among the cyclic garbage."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import socket
import time
import weakref
from types import SimpleNamespace
from typing import Any

import httpx
import uvicorn

from harness import SECRET, Client, RedisServer, admin_headers
from liveserver.core.config import Settings
from liveserver.core.gcpolicy import GcPolicy
from liveserver.core.metrics import Metrics
from liveserver.edge.app import create_app
from liveserver.edge.lean import LeanHttpToolsProtocol, LeanWebSocketProtocol
from waiting import wait_until


class Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_survivors_of_a_full_collection_are_frozen_and_a_sweep_frees_frozen_cycles() -> None:
    policy = GcPolicy(sweep_s=0)
    policy.install()
    try:
        kept = Cyclic()
        probe = weakref.ref(kept)
        gc.collect()  # a full collection: its survivors are frozen by the policy's callback
        assert policy.freezes >= 1
        frozen = gc.get_freeze_count()
        assert frozen > 0
        del kept  # garbage now, but in a cycle: only the collector frees it, and it is frozen
        gc.collect()
        assert probe() is not None, "a frozen cycle is not walked by later full collections"
        policy.sweep()
        assert probe() is None, "the sweep unfreezes and collects everything"
        assert gc.get_freeze_count() > 0  # the survivors are frozen again
    finally:
        policy.uninstall()
    assert gc.get_freeze_count() == 0
    assert policy._on_gc not in gc.callbacks


async def test_a_due_sweep_waits_while_the_node_is_busy_then_runs() -> None:
    """A sweep is one long pause: while busy() says viewers race for a sale, it waits."""
    busy = True
    policy = GcPolicy(sweep_s=0.2, busy=lambda: busy, poll_s=0.01)
    task = asyncio.create_task(policy.run())
    try:
        await wait_until(lambda: policy.busy_polls >= 5, timeout=5, what="a due sweep finding the node busy")
        assert policy.sweeps == 0, "no sweep while the node is busy"
        busy = False
        await wait_until(lambda: policy.sweeps >= 1, timeout=5, what="the sweep once the node is quiet")
    finally:
        await _cancel(task)


async def test_a_node_busy_for_a_whole_period_is_swept_anyway() -> None:
    policy = GcPolicy(sweep_s=0.1, busy=lambda: True, poll_s=0.01)
    started = time.monotonic()
    task = asyncio.create_task(policy.run())
    try:
        await wait_until(lambda: policy.sweeps >= 1, timeout=5, what="a sweep despite the node being busy")
        assert time.monotonic() - started >= 0.2  # one period, then one more waiting for a quiet moment
        assert policy.busy_polls >= 1
    finally:
        await _cancel(task)


def test_rush_ops_make_a_node_busy_for_its_sweep() -> None:
    metrics = Metrics()
    assert not metrics.rushing()
    metrics.op_done("like", "ok")
    assert not metrics.rushing(), "likes are not a rush"
    metrics.op_done("buy", "sold_out")  # a refused buy is part of the rush too
    assert metrics.rushing()
    assert not metrics.rushing(within_s=0)


async def _cancel(task: "asyncio.Task[None]") -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONNECTION_TYPES = {"LeanWebSocketProtocol", "LeanHttpToolsProtocol", "HttpToolsProtocol", "ServerProtocol",
                    "Viewer", "DirectWriter", "WebSocket", "ViewerSession", "FrameInbox",
                    "ViewerSocket"}


async def test_closed_viewer_sockets_leave_no_reference_cycles(redis_server: RedisServer, monkeypatch: Any) -> None:
    monkeypatch.setenv("LIVESERVER_MEDIA", "0")
    settings = dataclasses.replace(Settings.from_env(), redis_url=redis_server.url, secret=SECRET, demo_room=False,
                                   scheduler=False, webhooks=False, archive=False, gc_freeze=False, tick_ms=50)
    port = _free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio",
                            http=LeanHttpToolsProtocol, ws=LeanWebSocketProtocol, lifespan="on", log_level="warning",
                            ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, timeout=20, what="the in-process node")
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            r = await http.put(f"{base}/api/v1/rooms/gc-room", json={"status": "live"}, headers=admin_headers())
            assert r.status_code == 200, r.text
        # From here on only the collection below frees cyclic garbage, so whatever the
        # upgrades and the closed connections left in cycles is still there for it to find.
        gc.collect()
        gc.disable()
        node = SimpleNamespace(ws=f"ws://127.0.0.1:{port}")
        clients = [await Client.connect(node, "gc-room", user=f"v{i}") for i in range(30)]
        assert (await clients[0].request("danmaku", text="hello"))["ok"]
        for c in clients:
            await c.close()
        hub = app.state.services.hub
        await wait_until(lambda: not any(r.viewers for r in hub.rooms.values()), timeout=10, what="viewers gone")
        await asyncio.sleep(0.3)  # let the endpoints' last steps and connection_lost run

        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            leaked: dict[str, int] = {}
            for obj in gc.garbage:
                name = type(obj).__name__
                if name in CONNECTION_TYPES:
                    leaked[name] = leaked.get(name, 0) + 1
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert leaked == {}, f"closed connections left reference cycles: {leaked}"
    finally:
        gc.enable()
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
