"""A private Redis Cluster for benchmarks: N masters (and optional replicas) on free
ports below 45000 (their bus ports, +10000, stay below 55000; never 6379), formed from
Python with CLUSTER ADDSLOTS / MEET / REPLICATE, no persistence."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from .procs import stop_servers


_PICK = random.Random()  # its own generator: a test framework may seed the global one
_HANDED_OUT: set[int] = set()


def free_cluster_port() -> int:
    """A free TCP port below 45000 whose cluster bus port (+10000) is free too, never one
    this process handed out before (ports are picked before the nodes start, so a port
    picked twice would still look free)."""
    for _ in range(200):
        port = _PICK.randint(20000, 44999)
        if {port, port + 10000, port - 10000} & _HANDED_OUT:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterProc:
    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        from liveserver.engine.embedded import redis_binary

        self.dir = Path(tempfile.mkdtemp(prefix="lc-bench-cluster-"))
        self.ports = [free_cluster_port() for _ in range(masters * (1 + replicas))]
        self.procs = [
            subprocess.Popen([redis_binary(), "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                              "--cluster-config-file", str(self.dir / f"nodes-{p}.conf"), "--save", "",
                              "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
            for p in self.ports
        ]
        try:
            self._form(masters)
        except BaseException:
            self.stop()
            raise
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)

    def _wait(self, check, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bench cluster: timed out waiting for {what}")

    def _form(self, masters: int) -> None:
        for p in self.ports:
            self._wait(lambda p=p: self._client(p).ping(), f"node {p}")
        per = 16384 // masters
        for i, p in enumerate(self.ports[:masters]):
            last = 16383 if i == masters - 1 else (i + 1) * per - 1
            self._client(p).execute_command("CLUSTER", "ADDSLOTS", *range(i * per, last + 1))
        first = self._client(self.ports[0])
        for p in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", p)
        n = len(self.ports)
        self._wait(lambda: all(len(self._client(p).execute_command("CLUSTER", "NODES").splitlines()) == n
                               for p in self.ports), "every node to meet")
        for i, p in enumerate(self.ports[masters:]):
            master = self.ports[i % masters]
            self._client(p).execute_command("CLUSTER", "REPLICATE", self._client(master).execute_command("CLUSTER", "MYID"))
        self._wait(lambda: all("cluster_state:ok" in self._client(p).execute_command("CLUSTER", "INFO") for p in self.ports),
                   "cluster_state:ok")

    def stop(self) -> None:
        stop_servers(self.procs)
        shutil.rmtree(self.dir, ignore_errors=True)
