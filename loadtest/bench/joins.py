"""`liveload bench joins`: a join storm on one node, then every viewer resuming after a
node restart; a bare websocket server measured the same way in the same run is the
baseline.

1. Join storm: V viewers (each with its own viewer JWT) connect to one room with realistic
   state (products, a pushed card, a live sale, a coupon, a poll), at most C connects in
   flight over G generator processes, until each has its `welcome`. joins/s = welcomes /
   (last welcome - first connect); join latency = connect start -> welcome received.
2. Restart: the viewers have seen N notices (so they hold `since` + `epoch`); the node is
   killed (SIGKILL by default: no close frame, a crash) and started again on the same port.
   While it is down, more notices are appended to the room's stream through liveserver's
   own engine (what another node's host API would do). Every viewer reconnects with
   `since` + `epoch` and the JS client's backoff (0.25, 0.5, 1, 2, 3 s, each jittered to
   [base/2, base]). Measured: node ready (/readyz 200) -> last `welcome` with
   `recovered: true`. Then more notices through the host API; every viewer must end at the
   stream's last offset with an unbroken `prev` chain and exactly every notice once.
3. Baseline: `peers/ws_hello.py`, bare `websockets` answering each connect with one frame
   of the welcome's size, stormed and restarted by the same generators.

Generators are raw asyncio protocols (the upgrade by hand, frames parsed by header, msgpack
decoded only for liveserver's frames, as the chain check needs offsets); each reports its
event-loop lag and CPU so a generator-bound run is visible.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import random
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import msgpack

from liveserver.core.auth import mint
from liveserver.hub.direct import frame_size
from protocol.codec import MSGPACK
from protocol.offsets import offset_key

from .. import hist
from ..host import HostApi
from .capacity import _lag_monitor, _pin, split_cpus
from .fanout import PEERS, PEERS_DIR, ROOT, SECRET, RedisProc, _recv, cpu_s, free_port, ratio
from .procs import join_generators
from .sink import upgrade_request

ROOM = "joins"
FATAL_CLOSES = {4401, 4403, 4404}  # the JS client gives up after these (DESIGN.md close codes)
GOAL_JOINS_PER_S = 5000
GOAL_RESUME_S = 5.0
GOAL_RESUME_VIEWERS = 5000


@dataclass
class JoinsOptions:
    viewers: int = 5000
    concurrency: int = 500  # connects in flight during the storm, over all generators
    generators: int = 2
    notices: int = 3  # seen before the restart
    outage_notices: int = 2  # appended while the node is down (must come back in the replay)
    after_notices: int = 2  # through the restarted node
    signal: str = "kill"  # how the node is stopped: kill (SIGKILL) or term (SIGTERM, graceful, 1012)
    baseline: bool = True
    pin: bool = True
    timeout: float = 120.0
    out: Path | None = None


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the generator process ---------------------------------------------------------------------
class Conn(asyncio.Protocol):
    """One websocket connection of a viewer: the upgrade, then frames by header."""

    __slots__ = ("v", "transport", "buf", "open")

    def __init__(self, v: "Viewer") -> None:
        self.v = v
        self.transport: Any = None
        self.buf = b""
        self.open = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.v.request())

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.buf = b""
                self.v.gen.reason(f"http {buf[9:12].decode('latin-1')}")
                self.transport.abort()
                return
            self.open = True
            buf = buf[end + 4 :]
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            sized = frame_size(buf, pos)
            if sized is None:
                break
            size, head = sized
            if n - pos - head < size:
                break
            payload = buf[pos + head : pos + head + size]
            pos += head + size
            op = b0 & 0x0F
            if op == 1 or op == 2:
                self.v.frame(self, payload)
            elif op == 9:  # ping: pong with its payload, masked with key 0
                self.transport.write(bytes((0x8A, 0x80 | size)) + b"\0\0\0\0" + payload)
            elif op == 8:
                self.v.closed_with(int.from_bytes(payload[:2], "big") if size >= 2 else 1005)
                self.transport.abort()
                return
        self.buf = buf[pos:] if pos < n else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.v.lost(self)


class Viewer:
    __slots__ = ("gen", "i", "token", "conn", "epoch", "offset", "key", "sent_since", "welcomed", "joined",
                 "waiter", "t_start", "attempt", "resumed_at", "gone", "notices", "gaps", "ooo", "unrecovered",
                 "recovered")

    def __init__(self, gen: "Generator", i: int, token: str) -> None:
        self.gen = gen
        self.i = i
        self.token = token
        self.conn: Conn | None = None
        self.epoch: str | None = None
        self.offset: str | None = None  # the last offset this viewer holds (its `since`)
        self.key = (0, 0)  # sort key of the last event seen
        self.sent_since = False
        self.welcomed = False  # on the current connection
        self.joined = False  # got its welcome in the storm
        self.waiter: asyncio.Future[bool] | None = None
        self.t_start = 0.0
        self.attempt = 0
        self.resumed_at = 0.0
        self.gone = False  # a fatal close: the JS client stops
        self.notices = 0
        self.gaps = 0
        self.ooo = 0
        self.unrecovered = 0
        self.recovered = False

    def request(self) -> bytes:
        query = f"token={self.token}"
        self.sent_since = bool(self.offset and self.epoch) and not self.gen.bare
        if self.sent_since:
            query += f"&since={self.offset}&epoch={self.epoch}"
        return upgrade_request(f"{self.gen.base}{self.gen.path}?{query}", None if self.gen.bare else MSGPACK.subprotocol)

    # -- frames -------------------------------------------------------------------------
    def frame(self, conn: Conn, payload: bytes) -> None:
        if conn is not self.conn:
            return
        gen = self.gen
        if gen.bare:
            if not self.welcomed:
                self.welcome(None, len(payload))
            return
        f = msgpack.unpackb(payload)
        t = f.get("t")
        if t == "batch":
            if f.get("prev") != self.offset:
                self.gaps += 1
            events = f.get("events")
            if events:
                for e in events:
                    key = offset_key(e["offset"])
                    if key <= self.key:
                        self.ooo += 1
                    self.key = key
                    if e.get("k") == "notice":
                        self.notices += 1
            self.offset = f.get("offset", self.offset)
        elif t == "welcome":
            self.welcome(f, len(payload))

    def welcome(self, f: dict[str, Any] | None, size: int) -> None:
        now = time.time()
        gen = self.gen
        self.welcomed = True
        if f is not None:
            self.epoch = f.get("epoch")
            if self.sent_since and f.get("recovered"):
                pass  # the chain continues from `since`: replayed batches follow
            else:
                if self.sent_since:
                    self.unrecovered += 1
                self.offset = f.get("offset")
                self.key = offset_key(self.offset) if self.offset else (0, 0)
            if not gen.welcome_size:
                gen.welcome_size = size
            state = f.get("state") or {}
            if not (state.get("card") and state.get("sales") and state.get("coupons") and state.get("polls")):
                gen.thin_welcomes += 1
        elif not gen.welcome_size:
            gen.welcome_size = size
        if not self.joined:
            self.joined = True
            hist.record_ms(gen.h, (now - self.t_start) * 1000)
            gen.first_start = min(gen.first_start, self.t_start)
            gen.last_welcome = max(gen.last_welcome, now)
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(True)
        elif gen.armed and not self.resumed_at:
            self.resumed_at = now
            self.recovered = bool(f and f.get("recovered")) or gen.bare
            gen.resumed += 1

    def closed_with(self, code: int) -> None:
        self.gen.reason(f"close {code}")
        if code in FATAL_CLOSES:
            self.gone = True

    # -- connecting ------------------------------------------------------------------------
    async def join(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.t_start = time.time()
        if not await self._open(timeout):
            return False
        try:
            return await asyncio.wait_for(self.waiter, timeout)
        except asyncio.TimeoutError:
            self.gen.reason("timeout")
            if self.conn is not None and self.conn.transport is not None:
                self.conn.transport.abort()
            return False

    async def _open(self, timeout: float) -> bool:
        conn = Conn(self)
        self.conn = conn
        self.welcomed = False
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_connection(lambda: conn, self.gen.host, self.gen.port), timeout)
            return True
        except (OSError, asyncio.TimeoutError) as exc:
            self.gen.reason(type(exc).__name__)
            if conn.transport is not None:
                conn.transport.abort()
            self.lost(conn)
            return False

    def lost(self, conn: Conn) -> None:
        if conn is not self.conn:
            return
        gen = self.gen
        if not self.joined:  # failed in the storm: counted, not retried
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(False)
            return
        if gen.stopping or self.gone:
            return
        if not gen.armed:
            gen.unexpected_drops += 1
        if self.welcomed:
            self.attempt = 0
        self.welcomed = False
        self.attempt += 1
        gen.attempts += 1
        base = min(3.0, 0.25 * 2 ** min(self.attempt - 1, 4))
        delay = base / 2 + random.random() * base / 2
        asyncio.get_running_loop().call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if not self.gen.stopping:
            task = asyncio.ensure_future(self._open(10))
            self.gen.tasks.add(task)
            task.add_done_callback(self.gen.tasks.discard)


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.bare = spec["bare"]
        self.host, self.port, self.path = "127.0.0.1", spec["port"], spec["path"]
        self.base = f"ws://{self.host}:{self.port}"
        self.viewers = [Viewer(self, i, mint(SECRET, f"{spec['prefix']}{i}")) for i in range(spec["count"])]
        self.concurrency = spec["concurrency"]
        self.timeout = spec["timeout"]
        self.h = hist.new()
        self.first_start = float("inf")
        self.last_welcome = 0.0
        self.welcome_size = 0
        self.thin_welcomes = 0
        self.reasons: dict[str, int] = {}
        self.armed = False
        self.stopping = False
        self.resumed = 0
        self.attempts = 0
        self.unexpected_drops = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.lag = {"max": 0.0, "sum": 0.0, "n": 0}
        self.cpu0 = time.process_time()

    def reason(self, what: str) -> None:
        self.reasons[what] = self.reasons.get(what, 0) + 1

    def _phase(self) -> None:
        self.lag.update(max=0.0, sum=0.0, n=0)
        self.cpu0 = time.process_time()

    def _load(self) -> dict[str, Any]:
        return {"lag_max_ms": round(self.lag["max"], 1), "cpu_s": round(time.process_time() - self.cpu0, 3)}

    async def storm(self) -> dict[str, Any]:
        self._phase()
        sem = asyncio.Semaphore(self.concurrency)

        async def one(v: Viewer) -> bool:
            async with sem:
                return await v.join(self.timeout)

        results = await asyncio.gather(*(one(v) for v in self.viewers))
        ok = sum(results)
        return {"ok": ok, "failed": len(results) - ok, "first_start": self.first_start, "last_welcome": self.last_welcome,
                "hist": hist.encode(self.h), "welcome_size": self.welcome_size, "thin_welcomes": self.thin_welcomes,
                "reasons": dict(self.reasons), **self._load()}

    def _live(self) -> list[Viewer]:
        return [v for v in self.viewers if v.joined and not v.gone]

    async def reach(self, offset: str, timeout: float) -> dict[str, Any]:
        key = offset_key(offset)
        deadline = time.monotonic() + timeout
        while True:
            behind = sum(1 for v in self._live() if v.key < key)
            if not behind or time.monotonic() > deadline:
                return {"behind": behind}
            await asyncio.sleep(0.02)

    async def resumed_report(self, t_ready: float, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            expected = sum(1 for v in self.viewers if v.joined)
            if self.resumed >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        h = hist.new()
        before_ready = 0
        times = [v.resumed_at for v in self.viewers if v.resumed_at]
        for t in times:
            if t < t_ready:
                before_ready += 1
            hist.record_ms(h, max(0.0, t - t_ready) * 1000)
        return {"expected": expected, "resumed": self.resumed,
                "recovered": sum(1 for v in self.viewers if v.resumed_at and v.recovered),
                "unrecovered": sum(1 for v in self.viewers if v.resumed_at and not v.recovered),
                "first_welcome": min(times, default=0.0), "last_welcome": max(times, default=0.0), "before_ready": before_ready,
                "hist": hist.encode(h), "attempts": self.attempts, "gone": sum(1 for v in self.viewers if v.gone),
                "unexpected_drops": self.unexpected_drops, "reasons": dict(self.reasons), **self._load()}

    async def check(self, offset: str, notices: int, timeout: float) -> dict[str, Any]:
        reached = await self.reach(offset, timeout)
        live = self._live()
        return {"behind": reached["behind"], "gaps": sum(v.gaps for v in live), "out_of_order": sum(v.ooo for v in live),
                "missing_notices": sum(1 for v in live if v.notices < notices),
                "extra_notices": sum(1 for v in live if v.notices > notices),
                "unrecovered_welcomes": sum(v.unrecovered for v in live)}

    async def serve(self, conn: Connection) -> None:
        lag_task = asyncio.create_task(_lag_monitor(self.lag))
        loop = asyncio.get_running_loop()
        conn.send(("ready",))
        try:
            while True:
                fut = loop.create_future()
                loop.add_reader(conn.fileno(), lambda: fut.done() or fut.set_result(conn.recv()))
                msg = await fut
                loop.remove_reader(conn.fileno())
                if msg[0] == "storm":
                    conn.send(("storm", await self.storm()))
                elif msg[0] == "reach":
                    conn.send(("reach", await self.reach(msg[1], msg[2])))
                elif msg[0] == "arm":
                    self._phase()
                    self.armed = True
                    self.reasons.clear()
                    conn.send(("armed",))
                elif msg[0] == "resumed":
                    conn.send(("resumed", await self.resumed_report(msg[1], msg[2])))
                elif msg[0] == "check":
                    conn.send(("check", await self.check(msg[1], msg[2], msg[3])))
                elif msg[0] == "stop":
                    break
        finally:
            self.stopping = True
            lag_task.cancel()
            for v in self.viewers:
                if v.conn is not None and v.conn.transport is not None:
                    v.conn.transport.abort()
            for t in list(self.tasks):
                t.cancel()
        conn.send(("stopped",))


def generator_main(spec: dict[str, Any], conn: Connection) -> None:
    _pin(set(spec["cpus"]) if spec.get("cpus") else None)
    _raise_nofile()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        await Generator(spec).serve(conn)

    asyncio.run(main())


class Generators:
    def __init__(self, opts: JoinsOptions, port: int, path: str, bare: bool, cpus: set[int] | None, tag: str) -> None:
        ctx = mp.get_context("spawn")
        n = max(1, opts.generators)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for g in range(n):
            count = opts.viewers // n + (1 if g < opts.viewers % n else 0)
            spec = {"bare": bare, "port": port, "path": path, "count": count, "prefix": f"{tag}{g}v",
                    "concurrency": max(1, math.ceil(opts.concurrency / n)), "timeout": 30.0,
                    "cpus": sorted(cpus) if cpus else None}
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=generator_main, args=(spec, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    async def ready(self) -> None:
        await self.ask(None, 60)

    async def ask(self, msg: tuple[Any, ...] | None, timeout: float) -> list[Any]:
        if msg is not None:
            for conn in self.conns:
                conn.send(msg)
        return [(await _recv(conn, timeout))[-1] for conn in self.conns]

    async def stop(self) -> None:
        try:
            await self.ask(("stop",), 20)
        except Exception:
            pass
        join_generators(self.procs)


# -- the servers -------------------------------------------------------------------------------
class Server:
    """The node (or the bare peer) as a process that can be stopped and started again on
    the same port."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, cpus: set[int] | None, ready_url: str | None) -> None:
        self.cmd, self.env, self.port, self.cpus, self.ready_url = cmd, env, port, cpus, ready_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.readyz_s: float | None = None
        self.cpu_at_listen = 0.0

    def _pre(self) -> None:
        _pin(self.cpus)
        _raise_nofile()

    async def start(self) -> float:
        """Start and wait until it listens; returns that wall time (its "ready" time).

        A node listens only once its startup (Redis reachable) is done, so listening is when
        /readyz can first answer 200. The probe is a bare TCP connect, which the kernel
        answers at once: a /readyz request would queue behind thousands of reconnecting
        viewers in the accept backlog and see "ready" late. /readyz is then checked too
        (`readyz_s`: when its 200 came back, from listening)."""
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=self._pre)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd[1:3]} exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not listen")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1)
                listening = time.time()
                self.cpu_at_listen = self.cpu_s()
                writer.transport.abort()
                break
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.005)
        self.readyz_s = None
        if self.ready_url is not None:
            async with httpx.AsyncClient(timeout=30) as client:
                while time.monotonic() < deadline:
                    try:
                        if (await client.get(self.ready_url)).status_code == 200:
                            self.readyz_s = round(time.time() - listening, 3)
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.01)
                else:
                    raise RuntimeError("/readyz never answered 200")
        return listening

    def stop(self, how: str = "term") -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def cpu_s(self) -> float:
        return cpu_s(self.proc.pid) if self.proc is not None else 0.0


# -- one target ----------------------------------------------------------------------------------
async def _setup_room(base: str) -> None:
    host = HostApi(base, SECRET, ROOM)
    try:
        products = [{"id": f"p{i}", "title": f"Product {i}", "price": 1000 + 100 * i,
                     "points": ["free shipping", "30-day returns"]} for i in range(6)]
        await host.setup_room(products)
        await host.act({"action": "push_card", "product": "p0"}, {})
        await host.act({"action": "start_sale", "product": "p1", "price": 999, "stock": 500, "duration_s": 3600}, {})
        await host.act({"action": "drop_coupon", "title": "5 off", "amount": 500, "min_spend": 1000, "quantity": 1000,
                        "duration_s": 3600}, {})
        await host.act({"action": "start_poll", "question": "which colour?", "options": ["red", "blue", "green"],
                        "duration_s": 3600}, {})
    finally:
        await host.close()


async def _notices(base: str, n: int, tag: str) -> str | None:
    """n notices through the host API; the offset of the last."""
    host = HostApi(base, SECRET, ROOM)
    last = None
    try:
        for i in range(n):
            data, _ = await host.call("POST", f"/rooms/{ROOM}/notices", {"text": f"{tag} {i}"})
            last = data["offset"]
    finally:
        await host.close()
    return last


async def _outage_notices(redis_url: str, n: int) -> str | None:
    """n notices appended to the room stream while the node is down, through liveserver's
    own engine (what another node's host API would do)."""
    from liveserver.core.config import Settings
    from liveserver.engine.connect import connect

    engine = await connect(redis_url, Settings.from_env())
    last = None
    try:
        for i in range(n):
            last, _ = await engine.publish(ROOM, "notice", {"text": f"while the node was down {i}"})  # type: ignore[misc]
    finally:
        await engine.close()
    return last


async def _warm_up(base: str) -> None:
    """One viewer joins first: the room is opened on the node (a one-time cost that is not a join's)."""
    from websockets.asyncio.client import connect

    async with connect(f"{base.replace('http', 'ws', 1)}/ws/rooms/{ROOM}?token={mint(SECRET, 'warm-up')}", subprotocols=[MSGPACK.subprotocol]) as ws:  # type: ignore[list-item]
        first = MSGPACK.decode(await asyncio.wait_for(ws.recv(), 20))
        assert first.get("t") == "welcome", first


def _storm_result(replies: list[dict[str, Any]], cpu: float, redis_cpu: float, window: float) -> dict[str, Any]:
    ok = sum(r["ok"] for r in replies)
    first = min(r["first_start"] for r in replies)
    last = max(r["last_welcome"] for r in replies)
    wall = last - first if ok else 0.0
    s = hist.summary_ms(hist.merge([r["hist"] for r in replies]))
    reasons: dict[str, int] = {}
    for r in replies:
        for k, v in r["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    return {"joined": ok, "failed": sum(r["failed"] for r in replies), "wall_s": round(wall, 3),
            "joins_per_s": round(ok / wall, 1) if wall > 0 else 0.0, "p50_ms": s["p50"], "p99_ms": s["p99"], "max_ms": s["max"],
            "server_cpu_pct": round(100 * cpu / window, 1) if window else 0.0,
            "redis_cpu_pct": round(100 * redis_cpu / window, 1) if window else 0.0,
            "gen_lag_max_ms": max(r["lag_max_ms"] for r in replies),
            "gen_cpu_pct": round(100 * sum(r["cpu_s"] for r in replies) / window, 1) if window else 0.0,
            "welcome_bytes": max(r["welcome_size"] for r in replies),
            "thin_welcomes": sum(r.get("thin_welcomes", 0) for r in replies), "reasons": reasons}


def _resume_result(replies: list[dict[str, Any]], t_kill: float, t_ready: float, cpu: float, redis_cpu: float) -> dict[str, Any]:
    s = hist.summary_ms(hist.merge([r["hist"] for r in replies]))
    last = max(r["last_welcome"] for r in replies)
    window = max(last - t_ready, 1e-3)
    reasons: dict[str, int] = {}
    for r in replies:
        for k, v in r["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    expected = sum(r["expected"] for r in replies)
    resumed = sum(r["resumed"] for r in replies)
    return {"expected": expected, "resumed": resumed, "recovered": sum(r["recovered"] for r in replies),
            "unrecovered": sum(r["unrecovered"] for r in replies), "downtime_s": round(t_ready - t_kill, 3),
            "ready_to_last_s": round(last - t_ready, 3) if resumed else None,
            "kill_to_last_s": round(last - t_kill, 3) if resumed else None,
            "p50_ms": s["p50"], "p99_ms": s["p99"], "before_ready": sum(r["before_ready"] for r in replies),
            "attempts": sum(r["attempts"] for r in replies), "gone": sum(r["gone"] for r in replies),
            "unexpected_drops": sum(r["unexpected_drops"] for r in replies),
            "server_cpu_pct": round(100 * cpu / window, 1), "redis_cpu_pct": round(100 * redis_cpu / window, 1),
            "gen_lag_max_ms": max(r["lag_max_ms"] for r in replies), "reasons": reasons}


async def run_target(name: str, opts: JoinsOptions, log: Any, cpus: tuple[set[int] | None, set[int] | None],
                     welcome_bytes: int = 0) -> dict[str, Any]:
    server_cpus, client_cpus = cpus
    _pin(client_cpus)
    _raise_nofile()
    bare = name == "websockets"
    redis = None if bare else RedisProc()
    if redis is not None:
        _pin(client_cpus, redis.proc.pid)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if bare:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESERVER_")}
        server = Server([sys.executable, str(PEERS_DIR / "ws_hello.py"), str(port), str(welcome_bytes or 1500)], env,
                        port, server_cpus, None)
        path = "/ws"
    else:
        assert redis is not None
        cmd, env = PEERS["liveserver"].command(port, redis.url)
        env["LIVESERVER_MEDIA"] = "0"
        server = Server(cmd, env, port, server_cpus, f"{base}/readyz")
        path = f"/ws/rooms/{ROOM}"
    gens: Generators | None = None
    result: dict[str, Any] = {"target": name, "viewers": opts.viewers, "signal": opts.signal}
    try:
        await server.start()
        if not bare:
            await _setup_room(base)
            await _warm_up(base)
        gens = Generators(opts, port, path, bare, client_cpus, "b" if bare else "v")
        await gens.ready()
        # 1. the storm
        redis_pid = redis.proc.pid if redis is not None else None
        cpu0, rcpu0, t0 = server.cpu_s(), cpu_s(redis_pid) if redis_pid else 0.0, time.time()
        replies = await gens.ask(("storm",), opts.timeout + 60)
        window = time.time() - t0
        storm = _storm_result(replies, server.cpu_s() - cpu0, (cpu_s(redis_pid) - rcpu0) if redis_pid else 0.0, window)
        result["storm"] = storm
        log(f"  {name}: {storm['joined']} joined ({storm['failed']} failed) in {storm['wall_s']} s: {storm['joins_per_s']:,} joins/s, "
            f"p50 {storm['p50_ms']} ms, p99 {storm['p99_ms']} ms, server CPU {storm['server_cpu_pct']}%, "
            f"generator lag max {storm['gen_lag_max_ms']} ms")
        notices_total = 0
        if not bare:
            # 2. events seen before the restart, so every viewer holds `since` + `epoch`
            last = await _notices(base, opts.notices, "before the restart")
            notices_total += opts.notices
            if last:
                behind = sum(r["behind"] for r in await gens.ask(("reach", last, 30), 60))
                result["behind_before_restart"] = behind
        await gens.ask(("arm",), 30)
        t_kill = time.time()
        server.stop(opts.signal)
        if not bare and opts.outage_notices:
            assert redis is not None
            await _outage_notices(redis.url, opts.outage_notices)
            notices_total += opts.outage_notices
        t_ready = await server.start()
        cpu0, rcpu0 = server.cpu_at_listen, cpu_s(redis_pid) if redis_pid else 0.0  # from ready on (not the imports)
        replies = await gens.ask(("resumed", t_ready, opts.timeout), opts.timeout + 60)
        resume = _resume_result(replies, t_kill, t_ready, server.cpu_s() - cpu0,
                                (cpu_s(redis_pid) - rcpu0) if redis_pid else 0.0)
        resume["readyz_s"] = server.readyz_s
        result["resume"] = resume
        log(f"  {name}: {resume['resumed']}/{resume['expected']} resumed ({resume['recovered']} recovered, "
            f"{resume['unrecovered']} not) {resume['ready_to_last_s']} s after the node was ready "
            f"(down {resume['downtime_s']} s); p50 {resume['p50_ms']} ms, p99 {resume['p99_ms']} ms after ready")
        if not bare:
            # 3. more events through the restarted node; every viewer must end at the last one
            last = await _notices(base, opts.after_notices, "after the restart") or last
            notices_total += opts.after_notices
            if last:
                check = (await gens.ask(("check", last, notices_total, 30), 60))
                result["check"] = {k: sum(c[k] for c in check) for k in check[0]} | {"notices": notices_total}
                log(f"  {name}: check: {result['check']}")
        result["pinned"] = {"server": sorted(server_cpus) if server_cpus else None,
                            "clients": sorted(client_cpus) if client_cpus else None}
        return result
    finally:
        if gens is not None:
            await gens.stop()
        server.stop("term")
        if redis is not None:
            redis.stop()


# -- the report ----------------------------------------------------------------------------------
def passed(r: dict[str, Any]) -> bool:
    """Correctness (not speed): every viewer joined, resumed and, for liveserver, recovered
    with an unbroken chain and every notice once."""
    if "error" in r:
        return False
    s, z = r["storm"], r["resume"]
    ok = s["failed"] == 0 and s["joined"] == r["viewers"] and z["resumed"] == z["expected"] == s["joined"]
    if r["target"] == "liveserver":
        c = r.get("check", {})
        ok = ok and z["unrecovered"] == 0 and s["thin_welcomes"] == 0 and c.get("behind") == 0 and c.get("gaps") == 0 \
            and c.get("out_of_order") == 0 and c.get("missing_notices") == 0 and c.get("extra_notices") == 0
    return ok


def markdown(results: list[dict[str, Any]], opts: JoinsOptions, command: str) -> str:
    base = next((r for r in results if r.get("target") == "websockets" and "error" not in r), None)
    pinned = next((r["pinned"] for r in results if r.get("pinned")), None)
    lines = [
        f"`{command}` — {opts.viewers} viewers, one room, one node, {opts.concurrency} connects in flight over "
        f"{opts.generators} generator process(es)"
        + (f"; server pinned to CPU {pinned['server']}, generators + Redis to {pinned['clients']}" if pinned and pinned["server"] else "; not pinned")
        + f". Restart: SIG{opts.signal.upper()}, then started again on the same port; viewers reconnect with the JS "
        "client's backoff (0.25, 0.5, 1, 2, 3 s, jittered to [base/2, base]).",
        "",
        "Join storm (joins/s = welcomes / (last welcome - first connect); latency = connect -> welcome):",
        "",
        "| target | viewers | joined | failed | joins/s | vs bare websockets | p50 ms | p99 ms | max ms | server CPU % | Redis CPU % | generator CPU % | gen lag max ms | welcome bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['target']} | not run: {r['error']} |" + " |" * 12)
            continue
        s = r["storm"]
        vs = ratio(s["joins_per_s"], base["storm"]["joins_per_s"]) if base else "-"
        lines.append(f"| {r['target']} | {r['viewers']} | {s['joined']} | {s['failed']} | {s['joins_per_s']:,} | {vs} | {s['p50_ms']:.1f} "
                     f"| {s['p99_ms']:.1f} | {s['max_ms']:.1f} | {s['server_cpu_pct']} | {s['redis_cpu_pct']} | {s['gen_cpu_pct']} "
                     f"| {s['gen_lag_max_ms']} | {s['welcome_bytes']} |")
    lines += ["", "Resume after the restart (times from the restarted server listening, which a node does only once "
              "its startup is done, i.e. from when its /readyz can first answer 200; `down s` = kill -> listening):", "",
              "| target | resumed | recovered: true | recovered: false | down s | ready -> last welcome s | vs bare websockets "
              "| p50 ms | p99 ms | reconnect attempts | server CPU % | gen lag max ms |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        if "error" in r:
            continue
        z = r["resume"]
        vs = ratio(z["ready_to_last_s"] or 0, base["resume"]["ready_to_last_s"] or 0) if base and z["ready_to_last_s"] else "-"
        recovered = z["recovered"] if r["target"] == "liveserver" else "-"
        unrecovered = z["unrecovered"] if r["target"] == "liveserver" else "-"
        lines.append(f"| {r['target']} | {z['resumed']}/{z['expected']} | {recovered} | {unrecovered} | {z['downtime_s']} "
                     f"| {z['ready_to_last_s']} | {vs} | {z['p50_ms']:.1f} | {z['p99_ms']:.1f} | {z['attempts']} "
                     f"| {z['server_cpu_pct']} | {z['gen_lag_max_ms']} |")
    live = next((r for r in results if r.get("target") == "liveserver" and "error" not in r), None)
    if live is not None:
        c = live.get("check", {})
        s, z = live["storm"], live["resume"]
        lines += ["", f"Events: {opts.notices} notices before the restart, {opts.outage_notices} appended while the node was down, "
                  f"{opts.after_notices} after; viewers behind the last offset: {c.get('behind')}, gaps: {c.get('gaps')}, "
                  f"out of order: {c.get('out_of_order')}, viewers missing a notice: {c.get('missing_notices')}, "
                  f"with a duplicate: {c.get('extra_notices')}; welcomes without the room's state: {s['thin_welcomes']}."]
        goals = [f"joins/s >= {GOAL_JOINS_PER_S:,}: {'yes' if s['joins_per_s'] >= GOAL_JOINS_PER_S else 'no'} ({s['joins_per_s']:,})"]
        if opts.viewers >= GOAL_RESUME_VIEWERS:
            t = z["ready_to_last_s"]
            goals.append(f"{GOAL_RESUME_VIEWERS:,} viewers resumed within {GOAL_RESUME_S:g} s: "
                         f"{'yes' if t is not None and t <= GOAL_RESUME_S and z['recovered'] >= GOAL_RESUME_VIEWERS else 'no'} ({t} s)")
        else:
            goals.append(f"resume goal ({GOAL_RESUME_VIEWERS:,} viewers in {GOAL_RESUME_S:g} s) not judged at {opts.viewers} viewers")
        lines += ["", "Goals (issue 13): " + "; ".join(goals) + ".",
                  f"Correctness: {'pass' if passed(live) else 'FAIL'}."]
    return "\n".join(lines)


def _compile_sources() -> None:
    """Byte-compile liveserver and protocol first, as an installed package is: the
    restart is timed from kill to listening, and a node that compiles its ~150 modules at
    every start (no `__pycache__`, or PYTHONDONTWRITEBYTECODE set) is ~0.25 s slower to
    come back than a deployed one. Python reads existing caches even under that setting."""
    import compileall

    for package in ("liveserver", "protocol"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def run_joins(opts: JoinsOptions) -> int:
    import json

    command = "liveload " + " ".join(sys.argv[1:]) if sys.argv and "bench" in sys.argv else "liveload bench joins"
    results: list[dict[str, Any]] = []
    log = lambda m: print(m, flush=True)  # noqa: E731
    welcome_bytes = 0
    cpus = split_cpus(opts.pin)  # once: the first target pins this process to the client cores
    _compile_sources()
    for name in ["liveserver", "websockets"] if opts.baseline else ["liveserver"]:
        print(f"{name}: {'liveserver (this repo), one node' if name == 'liveserver' else 'bare websockets, one frame per connect (peers/ws_hello.py)'}",
              flush=True)
        try:
            r = asyncio.run(run_target(name, opts, log, cpus, welcome_bytes))
            welcome_bytes = welcome_bytes or r["storm"]["welcome_bytes"]
        except Exception as exc:
            print(f"{name}: failed: {type(exc).__name__}: {exc}", flush=True)
            r = {"target": name, "error": f"{type(exc).__name__}: {exc}"}
        results.append(r)
    table = markdown(results, opts, command)
    print()
    print(table)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "joins.json").write_text(json.dumps({"options": opts.__dict__ | {"out": str(opts.out)}, "results": results,
                                                         "passed": all(passed(r) for r in results),
                                                         "load_average": os.getloadavg(),
                                                         "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2, default=str))
        (opts.out / "joins.md").write_text(table + "\n")
    return 0 if all(passed(r) for r in results) else 1
