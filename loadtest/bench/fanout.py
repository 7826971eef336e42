"""`liveload bench fanout`: one room, V viewers over N server processes sharing one
private Redis, one publisher at R msgs/s of a fixed size; the same client stack against
every peer. Reports deliveries/s, p50/p99 latency (publisher send -> viewer receive),
server memory per connection and server CPU, each as a ratio to liveserver.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from liveserver.core.auth import mint

from .. import hist
from .clients import Protocol, generator_main, open_client, payload
from .cluster import ClusterProc
from .procs import join_generators, stop_servers

PEERS_DIR = Path(__file__).resolve().parent.parent / "peers"
NODE_DIR = PEERS_DIR / "socketio-node"
ROOT = PEERS_DIR.parent.parent
SECRET = "bench-secret-0123456789-0123456789-abcdef"
ALL_PEERS = ["liveserver", "liveserver-queued", "websockets", "socketio-node", "python-socketio", "channels"]
PIP_DEPS = {"python-socketio": ["python-socketio>=5.11"], "channels": ["channels>=4.1", "channels-redis>=4.2", "django>=4.2"]}


@dataclass
class BenchOptions:
    viewers: int = 1000
    rate: float = 20
    seconds: float = 20
    size: int = 100
    servers: int = 2
    peers: list[str] | None = None
    install: bool = False
    out: Path | None = None
    generators: int = 1
    redis: str = "single"  # or "cluster": a private 3-master Redis Cluster (liveserver peers only)


@dataclass
class Peer:
    name: str
    kind: str  # client protocol
    path: str
    describe: str

    def command(self, port: int, redis_url: str) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESERVER_")}
        py = sys.executable
        if self.kind == "liveserver":
            # liveserver-queued: the same server with the direct-write fast path off
            # (every frame through the viewer's writer task), to measure that path.
            env["LIVESERVER_DIRECT_WRITE"] = "0" if self.name == "liveserver-queued" else "1"
            env.update({"LIVESERVER_SECRET": SECRET, "LIVESERVER_REDIS_URL": redis_url, "LIVESERVER_DEMO": "0",
                        "LIVESERVER_DANMAKU_RATE": "100000", "LIVESERVER_DANMAKU_BURST": "100000",
                        "LIVESERVER_OP_RATE": "100000", "LIVESERVER_MAX_DANMAKU_LEN": "4000"})
            return [py, "-m", "liveserver", "serve", "--port", str(port), "--log-level", "warning"], env
        if self.name == "websockets":
            return [py, str(PEERS_DIR / "ws_broadcast.py"), str(port), redis_url], env
        if self.name == "socketio-node":
            return ["node", str(NODE_DIR / "server.js"), str(port), redis_url], env
        if self.name == "python-socketio":
            return [py, str(PEERS_DIR / "psio_server.py"), str(port), redis_url], env
        if self.name == "channels":
            env["BENCH_REDIS_URL"] = redis_url
            env["PYTHONPATH"] = str(PEERS_DIR) + os.pathsep + env.get("PYTHONPATH", "")
            return [py, "-m", "uvicorn", "channels_peer.asgi:application", "--port", str(port), "--host", "127.0.0.1",
                    "--log-level", "warning", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
                    "--ws-per-message-deflate", "false"], env
        raise ValueError(self.name)

    def missing(self) -> str | None:
        """Why this peer cannot run here (None when it can)."""
        if self.name == "socketio-node":
            if not shutil.which("node"):
                return "node is not installed"
            if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
                return "run with --install-peers (npm install)"
        for module, peer in (("socketio", "python-socketio"), ("channels_redis", "channels")):
            if self.name == peer:
                try:
                    __import__(module)
                except ImportError:
                    return "run with --install-peers (pip install)"
        return None


PEERS = {
    "liveserver": Peer("liveserver", "liveserver", "/ws/rooms/bench", "liveserver (this repo), default 100 ms tick"),
    "liveserver-queued": Peer("liveserver-queued", "liveserver", "/ws/rooms/bench",
                              "liveserver with LIVESERVER_DIRECT_WRITE=0 (writer task per viewer)"),
    "websockets": Peer("websockets", "raw", "/", "bare websockets broadcast() + Redis pub/sub"),
    "socketio-node": Peer("socketio-node", "engineio", "", "Socket.IO 4 on Node + @socket.io/redis-streams-adapter"),
    "python-socketio": Peer("python-socketio", "engineio", "", "python-socketio AsyncServer + AsyncRedisManager (uvicorn)"),
    "channels": Peer("channels", "raw", "/ws/", "Django Channels + channels_redis RedisChannelLayer (uvicorn)"),
}


def install_peers(names: list[str]) -> None:
    pip = [dep for name in names for dep in PIP_DEPS.get(name, [])]
    if pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip], check=True)
    if "socketio-node" in names and shutil.which("npm"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)


# -- processes -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, in KiB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
        except (OSError, ValueError):
            pass
    return total


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class RedisProc:
    """A private redis-server on a free TCP port (never 6379), no persistence."""

    def __init__(self) -> None:
        from liveserver.engine.embedded import redis_binary

        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lc-bench-redis-")
        self.proc = subprocess.Popen([redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("bench redis did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


# -- one peer ---------------------------------------------------------------------------------
async def _recv(conn: Any, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: fut.done() or fut.set_result(None))
    try:
        await asyncio.wait_for(fut, timeout)
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


async def open_bench_room(ports: list[int]) -> None:
    """liveserver nodes: wait for /readyz on each (Redis reachable too), then create the room."""
    for port in ports:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    httpx.put(f"http://127.0.0.1:{ports[0]}/api/v1/rooms/bench", json={"status": "live"},
              headers={"Authorization": f"Bearer {mint(SECRET, 'admin', role='admin')}"}, timeout=10).raise_for_status()


async def bench_peer(peer: Peer, opts: BenchOptions, log: Any) -> dict[str, Any]:
    if opts.redis == "cluster" and peer.kind != "liveserver":
        raise RuntimeError("--redis cluster runs liveserver peers only")
    redis: Any = ClusterProc() if opts.redis == "cluster" else RedisProc()
    servers: list[subprocess.Popen[bytes]] = []
    procs = []
    try:
        ports = [free_port() for _ in range(opts.servers)]
        for port in ports:
            cmd, env = peer.command(port, redis.url)
            servers.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port, proc in zip(ports, servers):
            wait_port(port, proc)
        bases = [f"ws://127.0.0.1:{p}" for p in ports]
        if peer.kind == "liveserver":
            await open_bench_room(ports)
        await asyncio.sleep(0.5)
        rss_before = sum(rss_kb(p.pid) for p in servers)
        ctx = mp.get_context("spawn")
        conns = []
        per = [opts.viewers // opts.generators + (1 if g < opts.viewers % opts.generators else 0) for g in range(opts.generators)]
        start_index = 0
        for g, count in enumerate(per):
            tokens = [mint(SECRET, f"v{start_index + i}") for i in range(count)] if peer.kind == "liveserver" else []
            # spread each generator's clients over the servers, continuing the global round-robin
            gbases = [bases[(start_index + i) % len(bases)] for i in range(len(bases))]
            spec = {"kind": peer.kind, "path": peer.path, "bases": gbases, "count": count, "tokens": tokens}
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=generator_main, args=(spec, child), daemon=True)
            proc.start()
            child.close()
            conns.append(parent)
            procs.append(proc)
            start_index += count
        connected = failures = 0
        for conn in conns:
            _, ok, bad = await _recv(conn, 180)
            connected += ok
            failures += bad
        await asyncio.sleep(1.0)
        rss_after = sum(rss_kb(p.pid) for p in servers)
        log(f"  {peer.name}: {connected} connected ({failures} failed), publishing {opts.rate}/s for {opts.seconds}s")
        proto = Protocol(peer.kind, peer.path, mint(SECRET, "publisher") if peer.kind == "liveserver" else None)
        pub = await open_client(proto, proto.url(bases[0]))
        drain = asyncio.create_task(_drain(pub))
        for conn in conns:
            conn.send(("reset",))
        cpu_before = sum(cpu_s(p.pid) for p in servers)
        started = time.time()
        sent = 0
        while True:
            elapsed = time.time() - started
            if elapsed >= opts.seconds:
                break
            due = int(elapsed * opts.rate) + 1 - sent
            for _ in range(max(0, due)):
                await pub.send(proto.publish_frame(payload(opts.size)))
                sent += 1
            await asyncio.sleep(max(0.0, (sent / opts.rate) - (time.time() - started)))
        await asyncio.sleep(2.0)  # let the last messages arrive
        cpu_used = sum(cpu_s(p.pid) for p in servers) - cpu_before
        window = time.time() - started
        for conn in conns:
            conn.send(("stop",))
        received = frames = 0
        parts = []
        dropped = 0
        for conn in conns:
            _, count, encoded, gone, framed = await _recv(conn, 60)
            received += count
            frames += framed
            parts.append(encoded)
            dropped += gone
        drain.cancel()
        await pub.close()
        h = hist.merge(parts)
        s = hist.summary_ms(h)
        expected = sent * connected
        return {
            "peer": peer.name, "describe": peer.describe, "viewers": connected, "connect_failures": failures,
            "sent": sent, "received": received, "expected": expected,
            "delivered_pct": round(100 * received / expected, 2) if expected else 0.0,
            "deliveries_per_s": round(received / opts.seconds, 1),
            "p50_ms": s["p50"], "p99_ms": s["p99"], "max_ms": s["max"],
            "mem_per_conn_kb": round((rss_after - rss_before) / max(connected, 1), 1),
            "server_rss_mb": round(rss_after / 1024, 1),
            "server_cpu_pct": round(100 * cpu_used / window, 1),
            # Frames that carried messages (a liveserver batch carries a tick's worth).
            "frames": frames,
            "cpu_us_per_frame": round(1e6 * cpu_used / frames, 2) if frames else 0.0,
            "cpu_us_per_delivery": round(1e6 * cpu_used / received, 2) if received else 0.0,
            "dropped_connections": dropped,
        }
    finally:
        join_generators(procs)
        stop_servers(servers)
        redis.stop()


async def _drain(ws: Any) -> None:
    try:
        async for msg in ws:
            if msg == "2":  # Engine.IO ping
                await ws.send("3")
    except Exception:
        pass


# -- the table -------------------------------------------------------------------------------
def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def markdown(results: list[dict[str, Any]], opts: BenchOptions, command: str) -> str:
    base = next((r for r in results if r.get("peer") == "liveserver" and "error" not in r), None)
    lines = [
        f"`{command}` — {opts.viewers} viewers over {opts.servers} server processes sharing "
        f"{'a 3-master Redis Cluster' if opts.redis == 'cluster' else 'one Redis'}, "
        f"{opts.rate:g} msgs/s of {opts.size} bytes for {opts.seconds:g} s, {opts.generators} client process(es).",
        "",
        "| peer | viewers | delivered | deliveries/s | ratio | p50 ms | ratio | p99 ms | ratio | mem/conn KiB | ratio "
        "| server CPU % | frames/s | CPU µs/frame | ratio | CPU µs/delivery | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['peer']} | not run: {r['error']} |" + "  |" * 15)
            continue
        b = base or r
        lines.append(
            f"| {r['peer']} | {r['viewers']} | {r['delivered_pct']}% | {r['deliveries_per_s']:,} | {ratio(r['deliveries_per_s'], b['deliveries_per_s'])} "
            f"| {r['p50_ms']:.1f} | {ratio(r['p50_ms'], b['p50_ms'])} | {r['p99_ms']:.1f} | {ratio(r['p99_ms'], b['p99_ms'])} "
            f"| {r['mem_per_conn_kb']:.1f} | {ratio(r['mem_per_conn_kb'], b['mem_per_conn_kb'])} | {r['server_cpu_pct']} "
            f"| {r['frames'] / opts.seconds:,.0f} | {r['cpu_us_per_frame']:.2f} | {ratio(r['cpu_us_per_frame'], b['cpu_us_per_frame'])} "
            f"| {r['cpu_us_per_delivery']:.2f} | {ratio(r['cpu_us_per_delivery'], b['cpu_us_per_delivery'])} |"
        )
    return "\n".join(lines)


def run_peers(kind: str, names: list[str], opts: Any, run: Any, to_markdown: Any) -> int:
    """The body every `liveload bench <kind>` shares: check and install the peers, run
    `run(peer, opts, log)` for each in turn (a failing peer is reported, not fatal),
    print the markdown table, and write `<kind>.json` / `<kind>.md` under `opts.out`."""
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        print(f"liveload: unknown peers {unknown}; known: {', '.join(PEERS)}", file=sys.stderr)
        return 2
    if opts.install:
        install_peers(names)
    command = "liveload " + " ".join(sys.argv[1:]) if sys.argv and "bench" in sys.argv else f"liveload bench {kind}"
    results = []
    for name in names:
        peer = PEERS[name]
        why = peer.missing()
        if why:
            print(f"{name}: skipped ({why})", flush=True)
            results.append({"peer": name, "error": why})
            continue
        print(f"{name}: {peer.describe}", flush=True)
        try:
            results.append(asyncio.run(run(peer, opts, lambda m: print(m, flush=True))))
        except Exception as exc:
            print(f"{name}: failed: {type(exc).__name__}: {exc}", flush=True)
            results.append({"peer": name, "error": f"{type(exc).__name__}: {exc}"})
    table = to_markdown(results, opts, command)
    print()
    print(table)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / f"{kind}.json").write_text(json.dumps({"options": opts.__dict__ | {"out": str(opts.out)}, "results": results,
                                                            "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2, default=str))
        (opts.out / f"{kind}.md").write_text(table + "\n")
    return 0


def run_bench(opts: BenchOptions) -> int:
    return run_peers("fanout", opts.peers or ALL_PEERS, opts, bench_peer, markdown)
