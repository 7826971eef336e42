"""Seckill benchmark: `buy` through liveserver next to raw EVALSHA of the same buy.lua
against the same Redis, measured in one run (the ratios are the figures).

    python -m loadtest.seckill_bench --seconds 10 --buyers 200 --concurrency 200
    python -m loadtest.seckill_bench --mode rush --buyers 20000 --stock 1000

It starts its own private redis-server (unix socket, AOF everysec) and liveserver
node(s) on 127.0.0.1, and stops them at the end.

`--mode throughput` (default): a sale with a huge stock and per-user limit, so every
attempt succeeds and runs the whole write path of the script. Four paths one after the
other: raw EVALSHA pipelined 100 deep on one connection, one pipeline at a time (the
ceiling issue 13's goal is measured against), raw EVALSHA from `--concurrency` redis-py
coroutines, two such pipelines in flight (for the reader: the client packs while Redis
runs, so the two overlap; not the goal's ceiling), and `--buyers` websocket
buyers through the server, each sending `buy` and awaiting its reply (closed loop). Each
path gets a fresh sale, and starts right after an AOF rewrite that it waits for (so
Redis's automatic rewrite, a fork copying the data set on a 2-core box, falls in a path
only if that path's own writes double the AOF; each row still says whether one ran).
`--rounds N` runs the paths N times in turn and reports the
median ratio: on a shared 2-core box one pair of 10 s runs swings by +-10 %.

`--mode rush`: `--buyers` distinct signed-in users (one websocket each: a buy is made by
the connection's user) are connected first, then each presses buy once at a random moment
of a `--window-ms` window, on a fresh sale of `--stock` units with a per-user limit of 1.
Reported: reply latency p50/p99/max, orders (must equal the stock), sold_out replies, audit.
The baseline is the same arrival pattern of distinct users sent straight to Redis on one
bare connection pipelining whatever has arrived (what Redis alone does with the rush).

The buyers run in `--generators` separate processes with a lean websocket client (raw
frames on asyncio; `--client websockets` uses the websockets library instead), so the
server gets what CPU the box has and the ratio measures the server, not the client. CPU
seconds of every process (client(s), node(s), redis) are measured per path and printed.
The node runs with its webhook relay off (`LIVESERVER_WEBHOOKS=0`; `--webhooks` keeps it
on): the relay turns every order into a webhook event at most ~1,000/s, so the orders of
the baselines would otherwise be relayed during the server's turn and tax only that path.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
from hdrh.histogram import HdrHistogram
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from liveserver.core.auth import mint
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.embedded import redis_binary
from liveserver.engine.scripts import LuaScript
from liveserver.hub.direct import frame_size

from .bench.capacity import _pin
from .bench.procs import join_generators, stop_servers

SECRET = "seckill-bench-secret-0123456789abcdef"
# A process may hold 20,000 files on the reference box (hard limit): a node keeps this
# many viewers at most, the rest of its budget is Redis connections, the listener, logs.
SOCKETS_PER_NODE = 19_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hist() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)


def _percentiles(h: HdrHistogram) -> dict[str, float]:
    return {f"p{q:g}": h.get_value_at_percentile(q) / 1000 for q in (50, 99)} | {"max": h.get_max_value() / 1000}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """CPU seconds of the servers (nodes, redis) over one path, as % of one core."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids

    def __enter__(self) -> "CpuMeter":
        self.t0 = time.perf_counter()
        self.start = {name: sum(_cpu_s(p) for p in pids) for name, pids in self.pids.items()}
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self.t0
        self.percent = {name: 100 * (sum(_cpu_s(p) for p in pids) - self.start[name]) / wall
                        for name, pids in self.pids.items()}


def _resp(*args: str | int) -> bytes:
    """One command in RESP (the rush baseline packs by hand, independent of the server's code)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else b"%d" % a
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


# -- baselines: raw EVALSHA from this process ----------------------------------------------

async def _raw(redis_url: str, room: str, sale: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """redis-py, `concurrency` coroutines each looping EVALSHA buy.lua."""
    redis = Redis.from_url(redis_url, decode_responses=True, max_connections=concurrency)
    script = LuaScript.load("buy")
    await redis.script_load(script.source)
    keys = CommerceKeys(room).buy_keys(sale)
    hist = _hist()
    count = 0
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            t0 = time.perf_counter()
            reply = await redis.evalsha(script.sha, len(keys), *keys, f"raw{w}", 1, f"r{w}-{i}", 900_000, room, sale, 10_000)
            hist.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
            assert json.loads(reply)["ok"], reply
            count += 1

    cpu0, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    client_cpu = 100 * (time.process_time() - cpu0) / elapsed
    await redis.aclose()
    return {"attempts": count, "per_s": count / elapsed, "client_cpu": client_cpu, **_percentiles(hist)}


async def _raw_pipelined(redis_url: str, room: str, sale: str, seconds: float, depth: int = 100,
                         inflight: int = 1) -> dict[str, Any]:
    """Redis's own ceiling for this script: `depth` EVALSHA per pipeline, `inflight`
    pipelines at a time, each on its own connection. One in flight is the goal's ceiling
    (issue 13): the client packs while Redis waits and the other way round. More in flight
    overlap the two, until Redis's core is full."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    script = LuaScript.load("buy")
    await redis.script_load(script.source)
    keys = CommerceKeys(room).buy_keys(sale)
    hist = _hist()
    count = 0
    cpu0, started = time.process_time(), time.perf_counter()
    stop_at = started + seconds

    async def pipeliner(lane: int) -> None:
        nonlocal count
        n = 0
        while time.perf_counter() < stop_at:
            pipe = redis.pipeline(transaction=False)
            for i in range(depth):
                pipe.evalsha(script.sha, len(keys), *keys, "pipe", 1, f"p{lane}-{n + i}", 900_000, room, sale, 10_000)
            t0 = time.perf_counter()
            replies = await pipe.execute()
            hist.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
            assert all(json.loads(r)["ok"] for r in replies)
            n += depth
            count += depth

    await asyncio.gather(*(pipeliner(lane) for lane in range(inflight)))
    elapsed = time.perf_counter() - started
    client_cpu = 100 * (time.process_time() - cpu0) / elapsed
    await redis.aclose()
    return {"attempts": count, "per_s": count / elapsed, "client_cpu": client_cpu, **_percentiles(hist)}


async def _raw_rush(redis_url: str, room: str, sale: str, users: int, window_s: float) -> dict[str, Any]:
    """The rush straight to Redis: `users` distinct users, each buying once at a random
    moment of the window; one bare unix-socket connection pipelines whatever has arrived
    since its last round trip (as liveserver's ScriptRunner does). RESP is packed and parsed
    by hand: redis-py's ~40 us a call would make this baseline measure the client, not
    Redis. Latency: arrival -> reply."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    script = LuaScript.load("buy")
    await redis.script_load(script.source)
    await redis.aclose()
    ck = CommerceKeys(room)
    keys, holds = ck.buy_keys(sale), ck.shop_holds()
    reader, writer = await asyncio.open_unix_connection(redis_url.split("://", 1)[1].split("?", 1)[0])
    arrivals = sorted(random.uniform(0, window_s) for _ in range(users))
    hist = _hist()
    codes: dict[str, int] = {}
    cpu0 = time.process_time()
    start = time.perf_counter()
    i = 0
    while i < users:
        now = time.perf_counter() - start
        if arrivals[i] > now:
            await asyncio.sleep(arrivals[i] - now)
            now = time.perf_counter() - start
        j = i
        while j < users and arrivals[j] <= now:
            j += 1
        writer.write(b"".join(_resp("EVALSHA", script.sha, len(keys) + 2, *keys, ck.claims(f"rush{k}"), holds,
                                    f"rush{k}", 1, f"k{k}", 900_000, room, sale, 10_000, "", "")
                              for k in range(i, j)))
        replies = []
        for _ in range(j - i):
            head = await reader.readuntil(b"\r\n")
            if head[:1] != b"$":
                raise RuntimeError(f"unexpected reply {head!r}")
            replies.append((await reader.readexactly(int(head[1:-2]) + 2))[:-2])
        done = time.perf_counter() - start
        for k, reply in zip(range(i, j), replies):
            hist.record_value(max(1, int((done - arrivals[k]) * 1e6)))
            r = json.loads(reply)
            code = "ok" if r["ok"] else r["code"]
            codes[code] = codes.get(code, 0) + 1
        i = j
    elapsed = time.perf_counter() - start
    client_cpu = 100 * (time.process_time() - cpu0) / elapsed
    writer.close()
    return {"attempts": users, "per_s": users / elapsed, "client_cpu": client_cpu, "codes": codes,
            **_percentiles(hist)}


# -- buyers through the server: generator processes ---------------------------------------

REPLY_AT = len(b'{"t":"reply"')  # where a reply frame goes on with `,"re":<id>,"ok":...`

class LeanWebSocket(asyncio.Protocol):
    """A minimal websocket client: the handshake, unfragmented text frames out (masked with
    a zero key: the server unmasks every frame alike whatever the key), frames in (pings
    answered). Enough for a bench buyer at a fraction of the websockets library's CPU."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiter: asyncio.Future[bytes] | None = None
        self.closed = False
        # A closed loop driven from `data_received` (`loop`): no future or task per buy, so
        # the buyers, which share a core with Redis under `--pin`, cost as little as they can.
        self.on_reply: Callable[[bytes], bytes | None] | None = None
        self.on_lost: Callable[[], None] | None = None  # `send_once`'s: the reply will never come

    @classmethod
    async def connect(cls, host: str, port: int, path: str, subprotocol: str) -> "LeanWebSocket":
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        proto.transport.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                               f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n").encode())
        await proto.ready
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.on_lost is not None:
            self.on_lost()
        err = ConnectionError("websocket closed")
        for fut in (self.ready, self.waiter):
            if fut is not None and not fut.done():
                fut.set_exception(err)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[:end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                return
            self.open = True
            self.ready.set_result(None)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            sized = frame_size(buf, pos)
            if sized is None:
                break
            size, head = sized
            if n - pos < head + size:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                # One buy in flight per connection: its reply is the one reply frame.
                if buf.startswith(b'{"t":"reply"', pos + head):
                    reply = bytes(buf[pos + head:pos + head + size])
                    waiter = self.waiter
                    if self.on_reply is not None:
                        follow = self.on_reply(reply)
                        if follow is not None:
                            self._send(0x81, follow)
                    elif waiter is not None and not waiter.done():
                        waiter.set_result(reply)
            elif opcode == 9:
                self._send(0x8A, bytes(buf[pos + head:pos + head + size]))
            elif opcode == 8:
                self.transport.close()  # type: ignore[union-attr]
            pos += head + size
        del buf[:pos]

    def _send(self, head: int, data: bytes) -> None:
        n = len(data)
        if n < 126:
            frame = bytes((head, 0x80 | n)) + b"\0\0\0\0" + data
        elif n < 65536:
            frame = bytes((head, 0x80 | 126)) + n.to_bytes(2, "big") + b"\0\0\0\0" + data
        else:
            frame = bytes((head, 0x80 | 127)) + n.to_bytes(8, "big") + b"\0\0\0\0" + data
        self.transport.write(frame)  # type: ignore[union-attr]

    async def request(self, data: bytes) -> bytes:
        """Send one text frame and wait for the next reply frame."""
        self.waiter = asyncio.get_running_loop().create_future()
        self._send(0x81, data)
        return await self.waiter

    def send_once(self, data: bytes, on_reply: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        """Send one text frame; `on_reply` gets the next reply frame, or `on_lost` is called
        if the connection ends first. No task and no future: the rush's 20,000 buyers share
        the box with the nodes, so what the buyers cost is taken from the server."""

        def step(reply: bytes) -> None:
            self.on_reply = self.on_lost = None
            on_reply(reply)

        def lost() -> None:
            self.on_reply = self.on_lost = None
            on_lost()

        self.on_reply, self.on_lost = step, lost
        self._send(0x81, data)

    async def loop(self, first: bytes, on_reply: Callable[[bytes], bytes | None]) -> None:
        """Send `first`, then answer each reply frame at once with what `on_reply` returns,
        until it returns None (that reply ends the loop)."""
        done = asyncio.get_running_loop().create_future()

        def step(reply: bytes) -> bytes | None:
            follow = on_reply(reply)
            if follow is None:
                self.on_reply = None
                done.set_result(None)
            return follow

        self.on_reply = step
        self.waiter = done  # a close fails the loop, as it fails a request
        self._send(0x81, first)
        await done

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._send(0x88, (1000).to_bytes(2, "big"))
            self.transport.close()


class LibWebSocket:
    """The same interface on the websockets library (what a Python client would use)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, host: str, port: int, path: str, subprotocol: str) -> "LibWebSocket":
        import websockets

        return cls(await websockets.connect(f"ws://{host}:{port}{path}", subprotocols=[subprotocol], max_size=None))

    async def request(self, data: bytes) -> bytes:
        await self.ws.send(data.decode())
        while True:
            frame = await self.ws.recv()
            frame = frame.encode() if isinstance(frame, str) else frame
            if frame.startswith(b'{"t":"reply"'):
                return frame

    def close(self) -> None:
        asyncio.ensure_future(self.ws.close())


@dataclass
class GenSpec:
    mode: str  # throughput | rush
    client: str
    ports: list[int]
    room: str
    sale: str
    users: list[int]  # user numbers of this generator's buyers (one connection each)
    seconds: float = 0.0
    window_s: float = 0.0
    connect_concurrency: int = 200
    cpus: list[int] | None = None  # `--pin`: the cores this generator runs on


@dataclass
class GenResult:
    hist: str = ""
    ok: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def _generator(spec: GenSpec, pipe: Any) -> None:
    _pin(set(spec.cpus) if spec.cpus else None)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_generate(spec, pipe))


async def _generate(spec: GenSpec, pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    kind = LeanWebSocket if spec.client == "lean" else LibWebSocket
    gate = asyncio.Semaphore(spec.connect_concurrency)
    result = GenResult()

    async def connect(user: int) -> Any:
        path = f"/ws/rooms/{spec.room}?token={mint(SECRET, f'ws{user}')}"
        async with gate:
            for attempt in range(5):
                try:
                    return await kind.connect("127.0.0.1", spec.ports[user % len(spec.ports)], path, "lc1.json")
                except (OSError, ConnectionError) as exc:
                    if attempt == 4:
                        raise
                    result.errors.append(f"connect retry: {exc}")
                    await asyncio.sleep(0.2 * (attempt + 1))

    conns = await asyncio.gather(*(connect(u) for u in spec.users))
    pipe.send("ready")
    start_at = pipe.recv()  # a time.time() shared by every generator
    hist = _hist()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0, t_start = time.process_time(), time.perf_counter()

    def record(reply: bytes, expect: int, t0: float) -> None:
        hist.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
        if reply.startswith(b',"re":%d,"ok":true,' % expect, REPLY_AT):  # a success, without a parse
            result.codes["ok"] = result.codes.get("ok", 0) + 1
            return
        if reply.startswith(b',"re":%d,"ok":false,"error":{"code":"sold_out",' % expect, REPLY_AT):  # the rush's usual answer
            result.codes["sold_out"] = result.codes.get("sold_out", 0) + 1
            return
        frame = json.loads(reply)
        if frame.get("re") != expect:
            result.errors.append(f"reply to {frame.get('re')} while waiting for {expect}")
        code = "ok" if frame["ok"] else frame["error"]["code"]
        result.codes[code] = result.codes.get(code, 0) + 1

    prefix = b'{"op":"buy","id":%d,"sale":"' + spec.sale.encode() + b'","qty":1,"key":"w%d-%d"}'

    async def loop_buyer(user: int, ws: Any) -> None:
        stop_at = t_start + spec.seconds
        if isinstance(ws, LeanWebSocket):
            sent = [1, time.perf_counter()]  # the buy in flight: its id, when it went

            def on_reply(reply: bytes) -> bytes | None:
                record(reply, sent[0], sent[1])
                now = time.perf_counter()
                if now >= stop_at:
                    return None
                i = sent[0] = sent[0] + 1
                sent[1] = now
                return prefix % (i, user, i)

            await ws.loop(prefix % (1, user, 1), on_reply)
            return
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            t0 = time.perf_counter()
            record(await ws.request(prefix % (i, user, i)), i, t0)

    rush_frame = b'{"op":"buy","id":1,"sale":"' + spec.sale.encode() + b'","qty":1,"key":"rush-%d"}'

    async def rush_buyer(user: int, ws: Any, at: float) -> None:
        await asyncio.sleep(at)
        t0 = time.perf_counter()
        record(await ws.request(rush_frame % user), 1, t0)

    def rush_lean() -> asyncio.Future[None]:
        """Each buyer's press is a timer callback, and its reply a callback from the socket
        (`send_once`): no task, sleep or future per buyer. Same arrivals as `rush_buyer`."""
        all_done = loop.create_future()
        left = [len(conns)]

        def answered() -> None:
            left[0] -= 1
            if left[0] == 0 and not all_done.done():
                all_done.set_result(None)

        def press(user: int, ws: LeanWebSocket) -> None:
            t0 = time.perf_counter()

            def on_reply(reply: bytes) -> None:
                record(reply, 1, t0)
                answered()

            def on_lost() -> None:
                result.errors.append(f"buyer {user}: connection closed before the reply")
                answered()

            if ws.closed:
                on_lost()
            else:
                ws.send_once(rush_frame % user, on_reply, on_lost)

        rng = random.Random(os.getpid())
        base = loop.time()
        for u, ws in zip(spec.users, conns):
            loop.call_at(base + rng.uniform(0, spec.window_s), press, u, ws)
        return all_done

    try:
        if spec.mode == "rush" and kind is LeanWebSocket:
            await asyncio.wait_for(rush_lean(), spec.window_s + 120)  # a reply that never comes fails the run
        elif spec.mode == "rush":
            rng = random.Random(os.getpid())
            await asyncio.gather(*(rush_buyer(u, ws, rng.uniform(0, spec.window_s)) for u, ws in zip(spec.users, conns)))
        else:
            await asyncio.gather(*(loop_buyer(u, ws) for u, ws in zip(spec.users, conns)))
    except Exception as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    result.wall_s = time.perf_counter() - t_start
    result.cpu_s = time.process_time() - cpu0
    result.ok = result.codes.get("ok", 0)
    result.hist = hist.encode().decode() if hist.get_total_count() else ""
    # Report first, close only when every generator has reported: a generator that is done
    # early would otherwise close its thousands of sockets while the others' buyers still
    # wait, and the nodes' work for those closes (and the online count they push to every
    # viewer left) would land in the others' latencies. Buyers stay in the room after a buy.
    pipe.send(result)
    await loop.run_in_executor(None, pipe.poll, 60)
    for ws in conns:
        ws.close()
    await asyncio.sleep(0.2)


def _profile_nodes(pids: list[int], out_dir: str | None, seconds: float) -> list[subprocess.Popen[bytes]]:
    """`--profile DIR`: py-spy samples each node for the measured window only (not the
    buyers' connecting), as collapsed stacks in DIR/node-<pid>.txt."""
    if not out_dir:
        return []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", str(max(1, math.ceil(seconds))),
                              "--rate", "250", "--format", "raw", "--output", str(Path(out_dir) / f"node-{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def _through_server(spec: GenSpec, generators: int, cpu_pids: dict[str, list[int]],
                    profile: str | None = None, count: Callable[[], int] | None = None) -> dict[str, Any]:
    """Start `generators` buyer processes, wait until all are connected, start them together.
    `count` (a node counter) is read at the start and once every buyer is answered: the
    result's `counted` is its difference."""
    ctx = mp.get_context("spawn")
    procs, pipes = [], []
    for g in range(generators):
        mine = spec.users[g::generators]
        if not mine:
            continue
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_generator, args=(GenSpec(**{**spec.__dict__, "users": mine}), child), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    try:
        for p in pipes:
            if not p.poll(600):
                raise SystemExit("a buyer generator did not connect in time")
            p.recv()
        counted = count() if count else 0
        start_at = time.time() + 0.3
        for p in pipes:
            p.send(start_at)
        spies = _profile_nodes(cpu_pids["node"], profile, spec.window_s + 1.5 if spec.mode == "rush" else spec.seconds)
        time.sleep(max(0.0, start_at - time.time()))
        with CpuMeter({**cpu_pids, "client": [proc.pid for proc in procs]}) as cpu:
            results: list[GenResult] = [p.recv() for p in pipes]
        counted = count() - counted if count else 0
        for p in pipes:
            p.send("close")
        for spy in spies:
            spy.wait(timeout=60)
    finally:
        join_generators(procs, timeout=10)
    hist = _hist()
    codes: dict[str, int] = {}
    errors: list[str] = []
    for r in results:
        if r.hist:
            hist.decode_and_add(r.hist)
        for k, v in r.codes.items():
            codes[k] = codes.get(k, 0) + v
        errors.extend(r.errors)
    wall = max(r.wall_s for r in results)
    ok = codes.get("ok", 0)
    return {"attempts": sum(codes.values()), "ok": ok, "per_s": (ok if spec.mode != "rush" else sum(codes.values())) / wall,
            "codes": codes, "errors": errors[:10], "n_errors": len(errors), "cpu": cpu.percent,
            "client_cpu": 100 * sum(r.cpu_s for r in results) / wall, "counted": counted, **_percentiles(hist)}


# -- set-up --------------------------------------------------------------------------------

class Servers:
    """A private redis-server and `nodes` liveserver nodes on it."""

    def __init__(self, nodes: int, webhooks: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="seckill-"))
        sock = self.tmp / "redis.sock"
        self.redis_url = f"unix://{sock}?db=0"
        self.redis = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                                       "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.tmp)],
                                      stdout=subprocess.DEVNULL)
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.ports = [_free_port() for _ in range(nodes)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESERVER_")}
        env.update({"LIVESERVER_SECRET": SECRET, "LIVESERVER_REDIS_URL": self.redis_url, "LIVESERVER_DEMO": "0",
                    "LIVESERVER_OP_RATE": "100000", "LIVESERVER_WEBHOOKS": "1" if webhooks else "0"})
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        for port in self.ports:
            self.nodes.append(subprocess.Popen(
                [sys.executable, "-m", "liveserver", "serve", "--port", str(port), "--log-level", "warning"],
                env=env, stdout=subprocess.DEVNULL))
        self.http = f"http://127.0.0.1:{self.ports[0]}"
        for port in self.ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline + 20:
                    raise SystemExit("liveserver did not start")
                time.sleep(0.05)
        self.admin = {"Authorization": f"Bearer {mint(SECRET, 'bench', role='admin')}"}

    def rewrites(self) -> tuple[int, bool]:
        """Redis's forks so far, and whether an AOF rewrite runs now: a rewrite forks a child
        that copies the data set on Redis's core, and a path it falls in runs slower for it
        (bench noise; the report says which paths it hit)."""
        with SyncRedis.from_url(self.redis_url) as r:
            info = r.info("all")
        return int(info["total_forks"]), bool(info["aof_rewrite_in_progress"])

    def settle_aof(self, timeout: float = 120) -> None:
        """Rewrite the AOF now and wait for it to end, so each path starts from the same
        state: a compact AOF and no rewrite running. Redis's automatic rewrite starts when
        the AOF has doubled since the last one; without this, which path it lands in (and
        how big the data set it copies is) depends on what ran before."""
        with SyncRedis.from_url(self.redis_url) as r:
            try:
                r.bgrewriteaof()
            except ResponseError:
                pass  # one runs already: waiting for it is the same
            deadline = time.monotonic() + timeout
            while True:
                info = r.info("persistence")
                if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                    return
                if time.monotonic() > deadline:
                    raise SystemExit(f"Redis's AOF rewrite did not end within {timeout:.0f} s")
                time.sleep(0.1)

    def aof_rewrite_during(self, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """`run()`'s result, after settling the AOF, with `aof_rewrite`: whether a rewrite
        ran at any time during it all the same."""
        self.settle_aof()
        forks, busy = self.rewrites()
        row = run()
        forks_after, busy_after = self.rewrites()
        return {**row, "aof_rewrite": busy or busy_after or forks_after > forks}

    def metric_total(self, name: str) -> int:
        """A counter of the nodes' /metrics, summed over the nodes."""
        total = 0
        for port in self.ports:
            for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
                if line.startswith(f"{name} "):
                    total += int(float(line.split()[1]))
        return total

    def buys_gated(self) -> int:
        """Buys the nodes answered `sold_out` by their sold-out gate, without Redis."""
        return self.metric_total("liveserver_buys_gated_total")

    def frames_pushed(self) -> int:
        """Batch frames the nodes' ticks queued to viewers (stock, sold out, counters)."""
        return self.metric_total("liveserver_frames_sent_total")

    @property
    def cpu_pids(self) -> dict[str, list[int]]:
        return {"node": [n.pid for n in self.nodes], "redis": [self.redis.pid]}

    def setup_room(self, room: str) -> None:
        httpx.put(f"{self.http}/api/v1/rooms/{room}", json={"title": "bench"}, headers=self.admin).raise_for_status()
        httpx.put(f"{self.http}/api/v1/rooms/{room}/products", json={"products": [{"id": "p", "title": "P", "price": 100}]},
                  headers=self.admin).raise_for_status()

    def new_sale(self, room: str, stock: int, per_user_limit: int) -> str:
        r = httpx.post(f"{self.http}/api/v1/rooms/{room}/sales", headers=self.admin, json={
            "product_id": "p", "price": 100, "stock": stock, "per_user_limit": per_user_limit, "duration_s": 3600,
        })
        r.raise_for_status()
        return r.json()["sale"]["id"]

    def audit(self, sale: str) -> dict[str, Any]:
        return httpx.get(f"{self.http}/api/v1/sales/{sale}/audit", headers=self.admin, timeout=300).json()

    def close(self) -> None:
        stop_servers(self.nodes, timeout=15)
        self.redis.terminate()
        self.redis.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _cpu_cell(r: dict[str, Any]) -> str:
    cpu = r.get("cpu", {})
    parts = [f"client {r['client_cpu']:.0f}"]
    if cpu:
        parts += [f"node {cpu['node']:.0f}", f"redis {cpu['redis']:.0f}"]
    return " / ".join(parts)


# `--pin` (2+ cores): Redis's client side gets core 0 to itself in every path (the raw
# callers in this process, or the node), Redis and the buyers share core 1. Unpinned, the
# scheduler moves the busy processes around and the ratio swings run to run (0.55-0.95x
# on the reference box, docs/performance.md).
CLIENT_SIDE, REDIS_SIDE = {0}, {1}


def _throughput_round(args: argparse.Namespace, servers: Servers, room: str, pin: bool) -> dict[str, Any]:
    """The four paths once, each on its own fresh sale: a sale's idempotency keys would
    make a path that ran before answer a repeated key from its cache (a far cheaper buy)."""
    pids = servers.cpu_pids
    sales = [servers.new_sale(room, 10_000_000, 1_000_000) for _ in range(4)]
    if pin:
        _pin(CLIENT_SIDE)

    def measured(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with CpuMeter(pids) as meter:
            row = servers.aof_rewrite_during(run)
        return {**row, "cpu": meter.percent}

    ceiling = measured(lambda: asyncio.run(_raw_pipelined(servers.redis_url, room, sales[0], args.seconds)))
    raw = measured(lambda: asyncio.run(_raw(servers.redis_url, room, sales[1], args.seconds, args.concurrency)))
    # For the reader, not the goal: how far Redis itself goes when its client overlaps it.
    two_in_flight = measured(lambda: asyncio.run(_raw_pipelined(servers.redis_url, room, sales[2], args.seconds,
                                                                inflight=2)))
    if pin:
        _pin(REDIS_SIDE)  # this process only waits for the buyers from here on
    spec = GenSpec("throughput", args.client, servers.ports, room, sales[3], list(range(args.buyers)), seconds=args.seconds,
                   cpus=sorted(REDIS_SIDE) if pin else None)
    through = servers.aof_rewrite_during(lambda: _through_server(spec, args.generators, pids, args.profile))
    audits = [servers.audit(sale) for sale in sales]  # every path's orders, not only the server's
    audit_ok = all(a["ok"] for a in audits)
    return {"raw_pipelined": ceiling, "raw_evalsha": raw, "raw_pipelined_2": two_in_flight, "through_server": through,
            "ratio_to_2_in_flight": through["per_s"] / two_in_flight["per_s"],
            "ratio_to_pipelined": through["per_s"] / ceiling["per_s"], "ratio_to_raw": through["per_s"] / raw["per_s"],
            "audit_ok": audit_ok, "audits": audits, "ok": audit_ok and through["attempts"] == through["ok"]}


def _print_round(args: argparse.Namespace, r: dict[str, Any]) -> None:
    ceiling, raw, through = r["raw_pipelined"], r["raw_evalsha"], r["through_server"]
    base = ceiling["per_s"]
    print("| path | attempts/s | ratio to pipelined | p50 ms | p99 ms | max ms | CPU % (of one core) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    rows = ((f"raw EVALSHA, {args.concurrency} callers", raw), ("raw EVALSHA pipelined x100 (ceiling)", ceiling),
            ("raw EVALSHA pipelined x100, 2 in flight (client and Redis overlap; not the goal's ceiling)", r["raw_pipelined_2"]),
            ("through the server (websocket `buy`)", through))
    for name, row in rows:
        print(f"| {name} | {row['per_s']:,.0f} | {row['per_s'] / base:.2f}x | {row['p50']:.2f} | {row['p99']:.2f} | "
              f"{row['max']:.2f} | {_cpu_cell(row)} |")
    n = through["per_s"]
    cpu = through["cpu"]
    print(f"\nCPU per attempt through the server: node {10_000 * cpu['node'] / n:.0f} us, redis "
          f"{10_000 * cpu['redis'] / n:.0f} us, client {10_000 * through['client_cpu'] / n:.0f} us "
          f"(ceiling: redis {10_000 * ceiling['cpu']['redis'] / base:.0f} us, client {10_000 * ceiling['client_cpu'] / base:.0f} us)")
    print(f"server/pipelined: {r['ratio_to_pipelined']:.2f}   server/raw EVALSHA: {r['ratio_to_raw']:.2f}   "
          f"server/2 in flight: {r['ratio_to_2_in_flight']:.2f}   "
          f"failures: {through['attempts'] - through['ok']}   audit ok: {r['audit_ok']}")
    if through["n_errors"]:
        print(f"client errors: {through['n_errors']}, e.g. {through['errors'][:3]}")
    forked = [name for name, row in rows if row["aof_rewrite"]]
    if forked:
        print(f"Redis rewrote its AOF (a fork copying the data set) during: {'; '.join(forked)}")


def _throughput(args: argparse.Namespace) -> int:
    pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    servers = Servers(1, args.webhooks)
    rounds: list[dict[str, Any]] = []
    try:
        room = "seckill"
        servers.setup_room(room)
        if pin:
            _pin(REDIS_SIDE, servers.redis.pid)
            for pid in servers.cpu_pids["node"]:
                _pin(CLIENT_SIDE, pid)
        for _ in range(args.rounds):
            rounds.append(_throughput_round(args, servers, room, pin))
    finally:
        servers.close()
    print(f"\nseckill throughput: {args.buyers} websocket buyers in {args.generators} generator process(es) "
          f"({args.client} client), {args.seconds:g} s per path; webhook relay {'on' if args.webhooks else 'off'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("pinned: Redis's client (raw callers, or the node) on core 0; Redis and the buyers on core 1" if pin
          else "not pinned")
    for i, r in enumerate(rounds):
        print(f"\nround {i + 1} of {len(rounds)}\n" if len(rounds) > 1 else "")
        _print_round(args, r)
    ratios = [r["ratio_to_pipelined"] for r in rounds]
    median = statistics.median(ratios)
    if len(rounds) > 1:
        print(f"\nserver/pipelined by round: {' '.join(f'{x:.2f}' for x in ratios)}; median {median:.2f}")
    if args.json:
        result = {"rounds": rounds, "median_ratio_to_pipelined": median, "args": vars(args),
                  "load_average": os.getloadavg(), "pinned": pin, **rounds[-1]}
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if all(r["ok"] for r in rounds) else 1


def _rush(args: argparse.Namespace) -> int:
    nodes = args.nodes or math.ceil(args.buyers / SOCKETS_PER_NODE)
    if args.buyers > nodes * SOCKETS_PER_NODE:
        raise SystemExit(f"{args.buyers} buyers need {math.ceil(args.buyers / SOCKETS_PER_NODE)} nodes "
                         f"({SOCKETS_PER_NODE} sockets each under a 20,000 open-files limit)")
    generators = max(args.generators, math.ceil(args.buyers / SOCKETS_PER_NODE))
    servers = Servers(nodes, args.webhooks)
    try:
        room = "seckill"
        servers.setup_room(room)
        base_sale = servers.new_sale(room, args.stock, 1)
        pids = servers.cpu_pids
        with CpuMeter(pids) as c1:
            base = asyncio.run(_raw_rush(servers.redis_url, room, base_sale, args.buyers, args.window_ms / 1000))
        base["cpu"] = c1.percent
        base_audit = servers.audit(base_sale)
        sale = servers.new_sale(room, args.stock, 1)
        spec = GenSpec("rush", args.client, servers.ports, room, sale, list(range(args.buyers)),
                       window_s=args.window_ms / 1000)
        through = _through_server(spec, generators, pids, args.profile, servers.frames_pushed)
        audit = servers.audit(sale)
        through["gated"] = servers.buys_gated()
    finally:
        servers.close()
    ok = through["codes"].get("ok", 0)
    sold_out = through["codes"].get("sold_out", 0)
    good = (audit["ok"] and base_audit["ok"] and ok == args.stock and audit["orders"] == args.stock
            and through["attempts"] == args.buyers and ok + sold_out == args.buyers)
    result = {"raw_rush": base, "through_server": through, "audit": audit, "base_audit": base_audit, "ok": good,
              "nodes": nodes, "args": vars(args), "load_average": os.getloadavg()}
    print(f"\nseckill rush: {args.buyers:,} distinct signed-in buyers (one websocket each, in {generators} generator "
          f"processes, {args.client} client) over {nodes} node(s) sharing one Redis, each pressing buy once within "
          f"{args.window_ms:g} ms; sale of {args.stock:,} units, limit 1 per user; webhook relay "
          f"{'on' if args.webhooks else 'off'}; load average {os.getloadavg()[0]:.1f}")
    if nodes > 1:
        print(f"({nodes} nodes because one process may hold {SOCKETS_PER_NODE:,} sockets under the box's 20,000 "
              f"open-files limit; each node holds ~{math.ceil(args.buyers / nodes):,} buyers)")
    print("\n| path | buys | orders | sold_out | other | p50 ms | p99 ms | ratio p99 | max ms | CPU % (of one core) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r, orders in (("raw EVALSHA, arrivals pipelined on one bare connection (baseline)", base, base_audit["orders"]),
                            ("through the server (websocket `buy`)", through, audit["orders"])):
        codes = r["codes"]
        other = sum(v for k, v in codes.items() if k not in ("ok", "sold_out"))
        print(f"| {name} | {r['attempts']:,} | {orders:,} | {codes.get('sold_out', 0):,} | {other:,} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {r['p99'] / max(base['p99'], 1e-3):.2f}x | {r['max']:.2f} | {_cpu_cell(r)} |")
    print(f"\norders == stock ({args.stock:,}): {ok == args.stock and audit['orders'] == args.stock}   "
          f"every buyer answered: {through['attempts'] == args.buyers}   audit ok: {audit['ok']}   "
          f"p99 <= 500 ms: {through['p99'] <= 500}")
    print(f"sold_out answered by the nodes' sold-out gate, without Redis: {through['gated']:,} of {sold_out:,}")
    print(f"batch frames the nodes pushed to viewers during the rush (stock, sold out, counters): "
          f"{through['counted']:,} ({through['counted'] / args.buyers:.1f} per buyer)")
    if through["n_errors"]:
        print(f"client errors: {through['n_errors']}, e.g. {through['errors'][:3]}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if good else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.seckill_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("throughput", "rush"), default="throughput")
    parser.add_argument("--seconds", type=float, default=10, help="throughput: seconds per path")
    parser.add_argument("--buyers", type=int, default=None,
                        help="websocket buyers (distinct users); default 200 (throughput), 20000 (rush)")
    parser.add_argument("--concurrency", type=int, default=200, help="throughput: raw EVALSHA coroutines")
    parser.add_argument("--generators", type=int, default=2, help="buyer processes")
    parser.add_argument("--client", choices=("lean", "websockets"), default="lean")
    parser.add_argument("--stock", type=int, default=1000, help="rush: units on sale")
    parser.add_argument("--window-ms", type=float, default=1000, help="rush: buyers press buy within this window")
    parser.add_argument("--nodes", type=int, default=0, help="rush: nodes (default: as many as the buyers need)")
    parser.add_argument("--webhooks", action="store_true", help="keep the node's webhook relay on")
    parser.add_argument("--pin", action="store_true",
                        help="throughput: Redis's client side (raw callers, or the node) on core 0, Redis and the buyers on core 1")
    parser.add_argument("--rounds", type=int, default=1,
                        help="throughput: run the paths this many times in turn (a fresh sale each) and report the median ratio")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy each node over the measured window (collapsed stacks in DIR/node-<pid>.txt)")
    args = parser.parse_args(argv)
    if args.buyers is None:
        args.buyers = 20_000 if args.mode == "rush" else 200
    return _rush(args) if args.mode == "rush" else _throughput(args)


if __name__ == "__main__":
    sys.exit(main())
