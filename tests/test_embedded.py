"""Embedded mode: `python -m liveserver serve` with no LIVESERVER_REDIS_URL starts its own
redis-server in LIVESERVER_DATA_DIR, serves the demo room, prints where to go, keeps
data across restarts (AOF), and never leaves an orphan redis-server behind, whether it
is stopped with SIGTERM or killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import psutil
import pytest
import websockets

from harness import ROOT, Node, free_port, node_env
from waiting import wait_until_sync


def embedded_env(data_dir: Path) -> dict[str, str]:
    env = node_env(None, LIVESERVER_DATA_DIR=str(data_dir), LIVESERVER_DEMO="1")
    env.pop("LIVESERVER_SECRET")  # the real first-run experience: a random secret
    assert "LIVESERVER_REDIS_URL" not in env
    return env


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lc-embedded-") as d:
        yield Path(d)


def redis_child(node: Node) -> psutil.Process:
    assert node.proc is not None
    children = [p for p in psutil.Process(node.proc.pid).children(recursive=True) if "redis-server" in p.name()]
    assert len(children) == 1, children
    return children[0]


def exited(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def banner(node: Node) -> dict[str, str]:
    assert node.log is not None
    text = node.log.read_text()
    found = dict(re.findall(r"^\s+(redis|viewer|console|guest|host token):\s+(\S.*)$", text, re.M))
    assert {"redis", "viewer", "console", "host token"} <= set(found), text
    return found


async def test_embedded_serves_demo_and_stops_its_redis(data_dir: Path) -> None:
    node = Node(port=free_port(), env=embedded_env(data_dir)).start()
    try:
        redis = redis_child(node)
        assert (data_dir / "redis.sock").exists()
        info = banner(node)
        assert str(data_dir) in info["redis"] and "AOF" in info["redis"]
        viewer_url = urlparse(info["viewer"])
        assert viewer_url.port == node.port and viewer_url.path == "/rooms/demo"
        assert urlparse(info["console"]).path == "/console/demo"
        assert httpx.get(f"{node.http}/readyz", timeout=5).json()["ready"] is True

        demo = httpx.get(f"{node.http}/api/v1/rooms/demo", timeout=5).json()
        assert demo["status"] == "live" and len(demo["products"]) >= 3
        assert all(isinstance(p["price"], int) for p in demo["products"])

        # The README's check: welcome, ping, and one's own danmaku back in a batch.
        viewer_token = parse_qs(viewer_url.query)["token"][0]
        async with asyncio.timeout(15):
            async with websockets.connect(f"{node.ws}/ws/rooms/demo?token={viewer_token}", subprotocols=["lc1.json"]) as ws:
                welcome = json.loads(await ws.recv())
                assert welcome["t"] == "welcome" and welcome["room"] == "demo" and welcome["user"]["role"] == "viewer"
                await ws.send(json.dumps({"op": "ping", "client_ms": 1}))
                await ws.send(json.dumps({"op": "danmaku", "id": 1, "text": "hello demo"}))
                kinds: set[str] = set()
                offset = None
                while True:
                    frame = json.loads(await ws.recv())
                    kinds.add(frame["t"])
                    if frame["t"] == "reply":
                        assert frame["ok"], frame
                        offset = frame["data"]["offset"]
                    if frame["t"] == "batch" and any(e.get("offset") == offset for e in frame["events"]):
                        break
                assert "pong" in kinds

        # The printed host token works on the host API for the demo room.
        r = httpx.post(f"{node.http}/api/v1/rooms/demo/notices", json={"text": "kept"},
                       headers={"Authorization": f"Bearer {info['host token']}"}, timeout=5)
        assert r.status_code == 201, r.text
        kept_offset = r.json()["offset"]

        # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean stop.
        assert node.stop(signal.SIGTERM, timeout=20) in (0, -signal.SIGTERM)
        wait_until_sync(lambda: exited(redis), timeout=10, interval=0.05, what="redis-server to exit with the server")
    finally:
        node.kill()

    # A restart on the same data dir finds what was written (AOF), with a new secret.
    again = Node(port=free_port(), env=embedded_env(data_dir)).start()
    try:
        assert httpx.get(f"{again.http}/api/v1/rooms/demo", timeout=5).json()["offset"] == kept_offset
        redis = redis_child(again)
    finally:
        again.stop(signal.SIGTERM, timeout=20)
    wait_until_sync(lambda: exited(redis), timeout=10, interval=0.05, what="redis-server to exit")


def test_sigkill_leaves_no_orphan_redis_and_restarts_cleanly(data_dir: Path) -> None:
    node = Node(port=free_port(), env=embedded_env(data_dir)).start()
    redis = redis_child(node)
    node.kill()  # SIGKILL: no cleanup code runs; PR_SET_PDEATHSIG must take redis down
    wait_until_sync(lambda: exited(redis), timeout=10, interval=0.05,
                    what="redis-server to exit after SIGKILL of the server (else an orphan)")
    # The stale socket file left behind does not stop the next start.
    again = Node(port=free_port(), env=embedded_env(data_dir)).start()
    try:
        assert httpx.get(f"{again.http}/readyz", timeout=5).status_code == 200
    finally:
        again.stop(signal.SIGTERM, timeout=20)


def test_second_server_on_the_same_data_dir_refuses(data_dir: Path) -> None:
    first = Node(port=free_port(), env=embedded_env(data_dir)).start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "liveserver", "serve", "--port", str(free_port())],
            env=embedded_env(data_dir), cwd=ROOT, capture_output=True, text=True, timeout=30,
        )
        assert second.returncode != 0
        assert "another liveserver" in second.stdout + second.stderr
        assert httpx.get(f"{first.http}/readyz", timeout=5).status_code == 200, "the first server is unharmed"
    finally:
        first.stop(signal.SIGTERM, timeout=20)


def test_ctrl_c_in_a_terminal_stops_cleanly(data_dir: Path) -> None:
    """Ctrl-C signals the whole foreground process group. The embedded Redis lives in its
    own session, so only the server gets it; the server drains and stops Redis last:
    exit 130, no traceback, no orphan."""
    port = free_port()
    out = data_dir / "out.log"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "liveserver", "serve", "--port", str(port)],
                                env=embedded_env(data_dir), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # a "terminal" group of its own
        try:
            def ready() -> bool:
                assert proc.poll() is None, out.read_text()
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until_sync(ready, timeout=20, interval=0.05, what="the server to get ready")
            redis = [p for p in psutil.Process(proc.pid).children(recursive=True) if "redis-server" in p.name()]
            assert len(redis) == 1
            assert os.getpgid(redis[0].pid) != os.getpgid(proc.pid), "Ctrl-C would reach Redis directly"
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
            assert proc.wait(timeout=20) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out.read_text()
    assert "Traceback" not in text and "Error" not in text, text
    wait_until_sync(lambda: exited(redis[0]), timeout=10, interval=0.05, what="redis-server to exit with the server")


def test_a_production_banner_prints_no_token_and_no_redis_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no demo room (a production node) the banner is logged where others may read it:
    it names the node and Redis, with Redis's password masked, and carries no token."""
    import dataclasses
    from types import SimpleNamespace

    from liveserver.core.config import Settings
    from liveserver.edge.app import banner

    monkeypatch.setenv("LIVESERVER_PUBLIC_URL", "http://127.0.0.1:8000")
    prod = dataclasses.replace(Settings.from_env(), demo_room=False, secret="s" * 32)
    text = banner(prod, "redis://app:hunter2-secret@10.0.0.5:6379/0", SimpleNamespace(node_id="n1"))
    assert "hunter2-secret" not in text and "redis://app:***@10.0.0.5:6379/0" in text
    assert "token=" not in text and "host token" not in text and "eyJ" not in text
    demo = dataclasses.replace(prod, demo_room=True)
    assert "host token: eyJ" in banner(demo, "redis://:pw@h:1/0", SimpleNamespace(node_id="n1"))
