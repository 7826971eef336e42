"""Real parts for tests: a private redis-server and real liveserver node processes.

Nothing here mocks Redis. Every wait is bounded, so a hang fails fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import websockets

from liveserver.auth import mint
from liveserver.embedded import redis_binary

SECRET = "test-secret-not-for-production-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server on a unix socket in a temp dir (never port 6379), AOF on."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lc-redis-"))
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", "0", "--unixsocket", str(self.socket), "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same socket and data (AOF replays)."""
        self.stop()
        self.start()


@dataclass
class Node:
    """One liveserver process."""

    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> "Node":
        self.log = Path(tempfile.mkstemp(prefix=f"lc-node-{self.port}-", suffix=".log")[1])
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liveserver", "serve", "--port", str(self.port), "--log-level", "warning", *self.extra_args],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.http + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node did not get ready:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def node_env(redis_url: str | None, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESERVER_")}
    env.update({"LIVESERVER_SECRET": SECRET, "LIVESERVER_TICK_MS": "50", "LIVESERVER_DEMO": "0"})
    if redis_url:
        env["LIVESERVER_REDIS_URL"] = redis_url
    env.update(overrides)
    return env


def token(user: str, role: str = "viewer", **kw: Any) -> str:
    return mint(SECRET, user, role=role, **kw)


def host_headers(room: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('host-1', 'host', room=room)}"}


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('admin-1', 'admin')}"}


def create_room(node: Node, room: str, products: list[dict[str, Any]] | None = None) -> None:
    r = httpx.put(f"{node.http}/api/v1/rooms/{room}", json={"title": room, "status": "live"}, headers=admin_headers(), timeout=5)
    r.raise_for_status()
    if products:
        r = httpx.put(f"{node.http}/api/v1/rooms/{room}/products", json={"products": products}, headers=admin_headers(), timeout=5)
        r.raise_for_status()


class Client:
    """A viewer websocket client (JSON codec by default) with bounded waits.

    A reader task takes every frame off the socket: replies resolve their `request`,
    batches update `state`/`events`, and every frame is also queued for `wait_for`.
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}
        self.next_id = 0
        self.state: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.offset = ""
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, node: Node, room: str, user: str | None = "u1", role: str = "viewer",
                      since: str | None = None, epoch: str | None = None, codec: str = "lc1.json", **token_kw: Any) -> "Client":
        params = []
        if user is not None:
            params.append(f"token={token(user, role, **token_kw)}")
        if since is not None:
            params.append(f"since={since}")
        if epoch is not None:
            params.append(f"epoch={epoch}")
        url = f"{node.ws}/ws/rooms/{room}" + ("?" + "&".join(params) if params else "")
        ws = await asyncio.wait_for(websockets.connect(url, subprotocols=[codec], max_size=None), 10)
        client = cls(ws)
        first = client._parse(await asyncio.wait_for(ws.recv(), 10))
        assert first["t"] == "welcome", first
        client.welcome = first
        client.state = dict(first["state"])
        client.offset = first["offset"]
        client._reader = asyncio.create_task(client._read())
        return client

    @staticmethod
    def _parse(raw: Any) -> dict[str, Any]:
        if isinstance(raw, bytes):
            import msgpack

            return msgpack.unpackb(raw, raw=False)
        return json.loads(raw)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = self._parse(raw)
                if frame.get("t") == "batch":
                    self.state.update(frame["state"])
                    self.events.extend(frame["events"])
                    self.offset = frame["offset"]
                elif frame.get("t") == "reply":
                    fut = self.pending.pop(frame.get("re"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
                self.frames.put_nowait(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result(self.ws.close_code)
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"closed with {self.ws.close_code}"))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def request(self, op: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        """Send an op with an id and return its reply."""
        self.next_id += 1
        rid = self.next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.send({"op": op, "id": rid, **fields})
        return await asyncio.wait_for(fut, timeout)

    async def wait_for(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("frame not seen in time")
            frame = await self.recv(left)
            if predicate(frame):
                return frame

    async def wait_event(self, kind: str, predicate: Any = lambda e: True, timeout: float = 10) -> dict[str, Any]:
        """The first event of `kind` matching `predicate`, already received or coming."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for e in self.events:
                if e["k"] == kind and predicate(e):
                    return e
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {kind} event in time")
            await self.wait_for(lambda f: f.get("t") == "batch", left)

    async def wait_state(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.state):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"state not reached in time: {self.state}")
            await self.wait_for(lambda f: f.get("t") == "batch", left)
        return self.state

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
