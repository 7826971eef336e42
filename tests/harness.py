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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import redis
from redis.asyncio import Redis as AsyncRedis

from loadtest.bench.cluster import free_cluster_port  # one port picker for tests and benchmarks
import websockets

from liveserver.core.auth import mint
from liveserver.engine.connect import cluster_client, cluster_url
from liveserver.engine.embedded import redis_binary
from liveserver.engine.keys import RoomKeys
from liveserver.media.child import media_log
from tls import TlsFiles
from waiting import wait_until_sync

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
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        try:
            wait_until_sync(self._pings, timeout=10, interval=0.05, what="redis-server to answer PING")
        except AssertionError as e:
            raise RuntimeError("redis-server did not start") from e
        return self

    def _pings(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
            return False

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


STARTED: list["Node"] = []  # the nodes the running test started: their logs go into a failure's report


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
        STARTED.append(self)
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liveserver", "serve", "--port", str(self.port), "--log-level", "warning", *self.extra_args],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            preexec_fn=_die_with_parent,  # a killed test run leaves no node behind
        )
        try:
            wait_until_sync(self._ready, timeout=timeout, interval=0.05, what="the node's /readyz")
        except AssertionError as e:
            raise RuntimeError(f"node did not get ready:\n{self.log.read_text()}") from e
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.log is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            return httpx.get(self.http + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

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

    def logs(self) -> list[Path]:
        """This node's log and, when it runs a media child on a known port, the child's."""
        found = [self.log] if self.log is not None else []
        media_port = self.env.get("LIVESERVER_MEDIA_PORT")
        if media_port:
            found.append(media_log(media_port))
        return found


def metric(node: Node, name: str) -> float:
    """One sample of the node's /metrics: `name` alone, or the first of its labelled series."""
    for line in httpx.get(f"{node.http}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def async_redis(url: str) -> Any:
    """An asyncio client for a `redis://` or `redis+cluster://` URL, made as the node makes
    its own (engine/connect.py): a test can hand it to a ScriptRunner directly."""
    plain = cluster_url(url)
    return cluster_client(plain) if plain else AsyncRedis.from_url(url, decode_responses=True)


def archive_caught_up(client: Any, room: str) -> bool:
    """Whether the archive holds the room's last event (archive_copy.lua's `archived_last`)."""
    last, archived = client.hmget(RoomKeys(room).meta, "last", "archived_last")
    return last is not None and last == archived


def node_env(redis_url: str | None, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESERVER_")}
    env.update({"LIVESERVER_SECRET": SECRET, "LIVESERVER_TICK_MS": "50", "LIVESERVER_DEMO": "0",
                "LIVESERVER_MEDIA": "0",  # no media child unless a test asks (tests/media)
                # A loop blocked this long leaves every thread's stack in the node's log
                # (core/stallwatch.py): shorter than the tests' request timeouts.
                "LIVESERVER_STALL_DUMP_S": "4"})
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


@contextmanager
def node_with_room(redis_url: str, room: str, **env: str) -> Iterator[Node]:
    """A node on `redis_url` with `env` and a live `room`, for a module's fixture; it is
    killed on the way out, also when the room could not be made."""
    node = Node(port=free_port(), env=node_env(redis_url, **env)).start()
    try:
        create_room(node, room)
        yield node
    finally:
        node.kill()


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
        self.gaps: list[tuple[str, Any]] = []  # (our last offset, a batch's prev) where they differed
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
                    if frame.get("prev") != self.offset:  # the chain broke: frames were lost
                        self.gaps.append((self.offset, frame.get("prev")))
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


def _die_with_parent() -> None:
    """Linux: a server the tests started (node, Redis, cluster node) gets SIGKILL when the
    test process dies, whatever the cause. Servers are started from the main thread only:
    the signal follows the thread that started the child."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ClusterNodeServer:
    """One `redis-server --cluster-enabled yes` on 127.0.0.1:<port> (never 6379); with
    `tls`, TLS only (clients and the cluster bus), from a `binary` built with TLS."""

    def __init__(self, base: Path, tls: TlsFiles | None = None, binary: str | None = None) -> None:
        self.port = free_cluster_port()
        self.dir = base / str(self.port)
        self.dir.mkdir(parents=True)
        self.tls = tls
        self.binary = binary or redis_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ClusterNodeServer":
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cluster", "yes", "--tls-replication", "yes",
                      "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                      "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *listen, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.dir / "nodes.conf"), "--cluster-node-timeout", "1000",
             "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5, **tls_kwargs(self.tls))

    def pings(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)


def tls_kwargs(tls: TlsFiles | None) -> dict[str, Any]:
    """redis-py client arguments for a TLS-only server (none without `tls`)."""
    return {} if tls is None else {"ssl": True, "ssl_ca_certs": str(tls.ca)}


class RedisClusterServers:
    """3 masters + 3 replicas (or none) on random ports, formed with CLUSTER ADDSLOTS /
    MEET / REPLICATE from Python (no redis-cli needed); with `tls`, TLS only."""

    def __init__(self, masters: int = 3, replicas: bool = True, tls: TlsFiles | None = None,
                 binary: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lc-cluster-"))
        self.nodes = [ClusterNodeServer(self.dir, tls, binary) for _ in range(masters * (2 if replicas else 1))]
        self.masters = masters
        self.replicas = replicas
        self.tls = tls

    @property
    def url(self) -> str:
        if self.tls is not None:  # what a deployment on a TLS cluster sets, its CA in the query
            return f"rediss+cluster://127.0.0.1:{self.nodes[0].port}?ssl_ca_certs={self.tls.ca}"
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def client(self) -> "redis.RedisCluster":
        """A sync cluster client (for a test's own reads and checks)."""
        live = next(n for n in self.nodes if n.alive())
        return redis.RedisCluster(host="127.0.0.1", port=live.port, decode_responses=True, socket_timeout=5,
                                  **tls_kwargs(self.tls))

    def start(self) -> "RedisClusterServers":
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            wait_until_sync(lambda: n.pings() or not n.alive(), timeout=10, interval=0.05,
                            what=f"cluster node {n.port} to answer PING")
            if not n.alive():
                raise RuntimeError(f"cluster node {n.port} exited: {(n.dir / 'redis.log').read_text(errors='replace')[-500:]}")
        masters, replicas = self.nodes[: self.masters], self.nodes[self.masters :]
        per = 16384 // self.masters
        for i, m in enumerate(masters):
            last = 16383 if i == self.masters - 1 else (i + 1) * per - 1
            m.client().execute_command("CLUSTER", "ADDSLOTS", *range(i * per, last + 1))  # 6.2 has no ADDSLOTSRANGE
        first = self.nodes[0].client()
        for n in self.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
        wait_until_sync(lambda: all(len(n.client().execute_command("CLUSTER", "NODES").splitlines()) == len(self.nodes)
                                    for n in self.nodes), timeout=20, interval=0.1, what="every node to know the others")
        for m, r in zip(masters, replicas):
            r.client().execute_command("CLUSTER", "REPLICATE", m.client().execute_command("CLUSTER", "MYID"))
        wait_until_sync(self.healthy, timeout=30, interval=0.1, what="cluster_state:ok (and every replica in sync)")
        return self

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and every live master has a synced replica."""
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                c = n.client()
                if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                    return False
                info = c.info("replication")
                if self.replicas and info["role"] == "master" and c.execute_command("CLUSTER", "COUNTKEYSINSLOT", 0) is not None:
                    if int(info.get("connected_slaves", 0)) < 1 and self._has_slots(c):
                        return False
            except redis.RedisError:
                return False
        return True

    @staticmethod
    def _has_slots(c: redis.Redis) -> bool:
        me = c.execute_command("CLUSTER", "MYID")
        for line in c.execute_command("CLUSTER", "NODES").splitlines():
            parts = line.split()
            if parts[0] == me:
                return len(parts) > 8
        return False

    def master_of(self, key: str) -> ClusterNodeServer:
        slot = self.nodes[0].client().execute_command("CLUSTER", "KEYSLOT", key) if self.nodes[0].alive() else None
        for n in self.nodes:
            if not n.alive():
                continue
            c = n.client()
            if slot is None:
                slot = c.execute_command("CLUSTER", "KEYSLOT", key)
            if c.info("replication")["role"] == "master":
                for line in c.execute_command("CLUSTER", "NODES").splitlines():
                    parts = line.split()
                    if "myself" in parts[2]:
                        for rng in parts[8:]:
                            lo, _, hi = rng.partition("-")
                            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                                return n
        raise LookupError(f"no live master serves {key!r}")

    def stop(self) -> None:
        import shutil

        for n in self.nodes:
            n.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
