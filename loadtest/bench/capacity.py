"""`liveload bench capacity` and `liveload bench idle`.

capacity: one room, a fixed storm (D danmaku/s + L likes/s from one publisher; peers
without a like counter relay each like as a message, as their users would), and viewers
added in stages until the probes' p99 latency passes a limit or their delivery falls under
a floor. The result per peer is the viewers it HELD (the last stage that passed).

Most viewers are sinks (`sink.py`: count bytes, decode nothing); a fixed sample of probe
viewers decodes every frame and times the danmaku (publisher send -> probe receive). Each
generator reports its own event-loop lag per stage, so a run limited by the generator is
visible. Where the box has >= 2 cores, the servers are pinned to the first half and
everything else (generators, publisher, Redis) to the rest (`os.sched_setaffinity`).

idle: V sinks connect and do nothing; the servers' RSS delta / V is the memory per idle
viewer, for each peer in the same run.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import subprocess
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


from liveserver.core.auth import mint
from protocol.codec import MSGPACK

from .. import hist
from .clients import Protocol, _ts, open_client, payload
from .fanout import (ROOT, open_bench_room, SECRET, Peer, RedisProc, _recv, cpu_s, free_port, ratio, rss_kb, run_peers,
                     wait_port)
from .procs import join_generators, stop_servers
from .sink import Sink, open_sink

CAPACITY_PEERS = ["liveserver", "websockets", "socketio-node"]
LAG_PERIOD = 0.02


@dataclass
class CapacityOptions:
    start: int = 50
    step: int = 0  # viewers added per stage (0: grow by `growth` instead)
    growth: float = 1.5  # next stage = this many times the last (when step is 0)
    max_viewers: int = 3000
    stage_seconds: float = 5
    settle_seconds: float = 1
    danmaku_rate: float = 200
    like_rate: float = 2000
    size: int = 100
    publishers: int = 20
    probes: int = 10
    generators: int = 1
    servers: int = 1
    p99_limit_ms: float = 250
    delivery_floor_pct: float = 99.9
    grace_seconds: float = 1.0
    pin: bool = True
    peers: list[str] | None = None
    install: bool = False
    out: Path | None = None
    idle_viewers: int = 0  # `bench idle`: this many idle sinks, memory only


# -- cores -----------------------------------------------------------------------------------
_ALL_CPUS: list[int] = []


def split_cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server cores, client cores), or (None, None) when not pinning."""
    global _ALL_CPUS
    try:
        # Read once: after the first peer this process is pinned to the client cores, and
        # reading the affinity again would find one core and pin nothing for the next peer.
        _ALL_CPUS = _ALL_CPUS or sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    cpus = _ALL_CPUS
    if not pin or len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def _pin(cpus: set[int] | None, pid: int = 0) -> None:
    """Run process `pid` (0: this one) on `cpus`; nothing when None or not allowed."""
    if cpus:
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError:
            pass


# -- the generator process ---------------------------------------------------------------------
async def _lag_monitor(state: dict[str, float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(LAG_PERIOD)
        lag = (loop.time() - t0 - LAG_PERIOD) * 1000
        state["max"] = max(state["max"], lag)
        state["sum"] += lag
        state["n"] += 1


async def _capacity_generator(spec: dict[str, Any], conn: Connection) -> None:
    kind, path, bases = spec["kind"], spec["path"], spec["bases"]
    subprotocol = MSGPACK.subprotocol if kind == "liveserver" else None
    sinks: list[Sink] = []
    probes: list[Any] = []
    probe_tasks: list[asyncio.Task[None]] = []
    h = hist.new()
    window = [float("inf"), float("-inf")]
    counted = 0
    lag = {"max": 0.0, "sum": 0.0, "n": 0}
    lag_task = asyncio.create_task(_lag_monitor(lag))
    made = 0  # viewers opened so far (user ids)

    def on_payload(text: Any) -> None:
        nonlocal counted
        ts = _ts(text)
        if ts is None or not (window[0] <= ts <= window[1]):
            return
        counted += 1
        hist.record_ms(h, time.time() * 1000 - ts)

    def url(i: int) -> str:
        token = mint(SECRET, f"{spec['prefix']}{i}") if kind == "liveserver" else None
        return Protocol(kind, path, token).url(bases[i % len(bases)])

    async def add_probe(i: int) -> bool:
        token = mint(SECRET, f"{spec['prefix']}{i}") if kind == "liveserver" else None
        proto = Protocol(kind, path, token)
        try:
            ws = await open_client(proto, proto.url(bases[i % len(bases)]))
        except Exception:
            return False
        probes.append(ws)

        async def read() -> None:
            try:
                await proto.messages(ws, on_payload)
            except Exception:
                pass

        probe_tasks.append(asyncio.create_task(read()))
        return True

    async def add_sink(i: int) -> bool:
        sink = await open_sink(url(i), kind, subprotocol)
        if sink is None:
            return False
        sinks.append(sink)
        return True

    loop = asyncio.get_running_loop()
    while True:
        fut = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: fut.done() or fut.set_result(conn.recv()))
        msg = await fut
        loop.remove_reader(conn.fileno())
        if msg[0] == "add":
            _, n_sinks, n_probes = msg
            sem = asyncio.Semaphore(spec.get("concurrency", 100))

            async def one(i: int, probe: bool) -> bool:
                async with sem:
                    return await (add_probe(i) if probe else add_sink(i))

            jobs = [one(made + j, j < n_probes) for j in range(n_sinks + n_probes)]
            made += len(jobs)
            results = await asyncio.gather(*jobs)
            conn.send(("added", sum(results), len(results) - sum(results)))
        elif msg[0] == "window":
            window[0], window[1] = msg[1], msg[2]
            h.reset()
            counted = 0
            lag.update(max=0.0, sum=0.0, n=0)
            for s in sinks:
                s.bytes = s.reads = 0
            conn.send(("ok",))
        elif msg[0] == "report":
            closed_probes = sum(1 for ws in probes if ws.close_code is not None)
            conn.send(("report", {
                "count": counted, "hist": hist.encode(h), "probes": len(probes) - closed_probes,
                "probes_closed": closed_probes, "sinks": sum(1 for s in sinks if not s.closed),
                "sinks_closed": sum(1 for s in sinks if s.closed), "sink_bytes": sum(s.bytes for s in sinks),
                "sink_reads": sum(s.reads for s in sinks), "lag_max_ms": round(lag["max"], 1),
                "lag_mean_ms": round(lag["sum"] / lag["n"], 2) if lag["n"] else 0.0,
            }))
        elif msg[0] == "stop":
            break
    lag_task.cancel()
    for t in probe_tasks:
        t.cancel()
    for ws in probes:
        if ws.transport:
            ws.transport.abort()
    for s in sinks:
        if s.transport is not None:
            s.transport.abort()
    conn.send(("stopped",))


def capacity_generator_main(spec: dict[str, Any], conn: Connection) -> None:
    _pin(set(spec["cpus"]) if spec.get("cpus") else None)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_capacity_generator(spec, conn))


# -- the servers -------------------------------------------------------------------------------
class Servers:
    """Redis + N server processes of one peer (servers pinned to `cpus`)."""

    def __init__(self, peer: Peer, count: int, server_cpus: set[int] | None, client_cpus: set[int] | None) -> None:
        self.peer = peer
        self.redis = RedisProc()
        if client_cpus:
            try:
                os.sched_setaffinity(self.redis.proc.pid, client_cpus)
            except OSError:
                pass
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            cmd, env = peer.command(port, self.redis.url)
            # The storm is 200 danmaku/s from one publisher: no cap drops what peers relay.
            env["LIVESERVER_DANMAKU_PER_TICK"] = "100000"
            pre = (lambda: _pin(server_cpus)) if server_cpus else None
            self.procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, preexec_fn=pre))
        for port, proc in zip(self.ports, self.procs):
            wait_port(port, proc)
        self.bases = [f"ws://127.0.0.1:{p}" for p in self.ports]

    async def ready(self) -> None:
        if self.peer.kind == "liveserver":
            await open_bench_room(self.ports)

    def rss_kb(self) -> int:
        return sum(rss_kb(p.pid) for p in self.procs)

    def cpu_s(self) -> float:
        return sum(cpu_s(p.pid) for p in self.procs)

    def stop(self) -> None:
        stop_servers(self.procs)
        self.redis.stop()


class Generators:
    def __init__(self, peer: Peer, servers: Servers, count: int, client_cpus: set[int] | None) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for g in range(count):
            spec = {"kind": peer.kind, "path": peer.path, "bases": servers.bases, "prefix": f"g{g}v",
                    "cpus": sorted(client_cpus) if client_cpus else None}
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=capacity_generator_main, args=(spec, child), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    async def ask(self, msgs: list[tuple[Any, ...]], timeout: float = 180) -> list[Any]:
        for conn, msg in zip(self.conns, msgs):
            conn.send(msg)
        return [await _recv(conn, timeout) for conn in self.conns]

    async def add(self, sinks: int, probes: int) -> tuple[int, int]:
        n = len(self.conns)
        split = lambda total, g: total // n + (1 if g < total % n else 0)  # noqa: E731
        replies = await self.ask([("add", split(sinks, g), split(probes, g)) for g in range(n)])
        return sum(r[1] for r in replies), sum(r[2] for r in replies)

    async def stop(self) -> None:
        try:
            await self.ask([("stop",)] * len(self.conns), timeout=20)
        except Exception:
            pass
        join_generators(self.procs)


# -- the storm ---------------------------------------------------------------------------------
class Storm:
    """D danmaku/s (timed payloads) + L likes/s, round-robin over P publisher connections
    (users send from their own connections: a peer that makes one Redis round trip per
    message in each connection's read loop is not limited by one connection's RTT)."""

    def __init__(self, peer: Peer, opts: CapacityOptions) -> None:
        self.peer = peer
        self.opts = opts
        self.sent: list[float] = []  # send ms of every danmaku
        self.likes = 0
        self.behind_ms = 0.0  # worst lateness of the publisher's schedule
        self._task: asyncio.Task[None] | None = None
        self._ws: list[Any] = []
        self._drains: list[asyncio.Task[None]] = []

    async def start(self, bases: list[str]) -> None:
        for i in range(self.opts.publishers):
            proto = Protocol(self.peer.kind, self.peer.path, mint(SECRET, f"publisher{i}") if self.peer.kind == "liveserver" else None)
            ws = await open_client(proto, proto.url(bases[i % len(bases)]))
            self._ws.append(ws)
            self._drains.append(asyncio.create_task(self._read(ws)))
        self._task = asyncio.create_task(self._run(proto))

    @staticmethod
    async def _read(ws: Any) -> None:
        try:
            async for msg in ws:
                if msg == "2":
                    await ws.send("3")
        except Exception:
            pass

    async def _run(self, proto: Protocol) -> None:
        like = MSGPACK.encode({"op": "like", "n": 1}) if self.peer.kind == "liveserver" else proto.publish_frame("L")
        loop = asyncio.get_running_loop()
        started = loop.time()
        danmaku = likes = 0
        n = len(self._ws)
        while True:
            elapsed = loop.time() - started
            due_d = int(elapsed * self.opts.danmaku_rate) + 1 - danmaku
            due_l = int(elapsed * self.opts.like_rate) + 1 - likes
            for _ in range(max(0, due_d)):
                text = payload(self.opts.size)
                self.sent.append(float(text.partition("|")[0]))
                await self._ws[danmaku % n].send(proto.publish_frame(text))
                danmaku += 1
            for _ in range(max(0, due_l)):
                await self._ws[likes % n].send(like)
                likes += 1
            self.likes = likes
            await asyncio.sleep(0.005)
            self.behind_ms = max(self.behind_ms, (loop.time() - started - elapsed - 0.005) * 1000)

    def sent_between(self, start_ms: float, end_ms: float) -> int:
        return sum(1 for t in self.sent if start_ms <= t <= end_ms)

    async def stop(self) -> None:
        for t in [self._task, *self._drains]:
            if t is not None:
                t.cancel()
        for ws in self._ws:
            ws.transport.abort()


# -- one peer ------------------------------------------------------------------------------------
async def capacity_peer(peer: Peer, opts: CapacityOptions, log: Any) -> dict[str, Any]:
    server_cpus, client_cpus = split_cpus(opts.pin)
    _pin(client_cpus)
    servers = Servers(peer, opts.servers, server_cpus, client_cpus)
    gens: Generators | None = None
    storm: Storm | None = None
    stages: list[dict[str, Any]] = []
    held = 0
    stop_reason = "reached --max-viewers"
    try:
        await servers.ready()
        gens = Generators(peer, servers, opts.generators, client_cpus)
        storm = Storm(peer, opts)
        await storm.start(servers.bases)
        viewers = 0
        target = max(opts.start, opts.probes)
        while target <= opts.max_viewers:
            want = target - viewers
            probes = opts.probes if viewers == 0 else 0
            ok, failed = await gens.add(want - probes, probes)
            viewers += ok
            await asyncio.sleep(opts.settle_seconds)
            now_ms = time.time() * 1000
            start_ms, end_ms = now_ms, now_ms + opts.stage_seconds * 1000
            await gens.ask([("window", start_ms, end_ms)] * len(gens.conns))
            cpu0, wall0 = servers.cpu_s(), time.time()
            await asyncio.sleep(opts.stage_seconds)
            cpu_pct = 100 * (servers.cpu_s() - cpu0) / (time.time() - wall0)
            await asyncio.sleep(opts.grace_seconds)  # late deliveries of the window still count
            reports = [r[1] for r in await gens.ask([("report",)] * len(gens.conns))]
            h = hist.merge([r["hist"] for r in reports])
            s = hist.summary_ms(h)
            alive_probes = sum(r["probes"] for r in reports)
            expected = storm.sent_between(start_ms, end_ms) * alive_probes
            got = sum(r["count"] for r in reports)
            closed = sum(r["sinks_closed"] + r["probes_closed"] for r in reports)
            sink_count = sum(r["sinks"] for r in reports)
            stage = {
                "viewers": viewers, "connect_failures": failed, "closed": closed,
                "delivered_pct": round(100 * got / expected, 3) if expected else 0.0,
                "p50_ms": s["p50"], "p99_ms": s["p99"], "max_ms": s["max"],
                "server_cpu_pct": round(cpu_pct, 1), "server_rss_mb": round(servers.rss_kb() / 1024, 1),
                "sink_kib_per_s": round(sum(r["sink_bytes"] for r in reports) / 1024 / max(sink_count, 1) / opts.stage_seconds, 1),
                "gen_lag_max_ms": max(r["lag_max_ms"] for r in reports),
                "gen_lag_mean_ms": max(r["lag_mean_ms"] for r in reports),
                "publisher_behind_ms": round(storm.behind_ms, 1),
            }
            stages.append(stage)
            log(f"  {peer.name}: {viewers} viewers: p99 {s['p99']:.1f} ms, delivered {stage['delivered_pct']}%, "
                f"server CPU {stage['server_cpu_pct']}%, generator lag max {stage['gen_lag_max_ms']} ms, closed {closed}")
            if s["p99"] > opts.p99_limit_ms:
                stop_reason = f"p99 {s['p99']:.0f} ms > {opts.p99_limit_ms:g}"
                break
            if stage["delivered_pct"] < opts.delivery_floor_pct:
                stop_reason = f"delivered {stage['delivered_pct']}% < {opts.delivery_floor_pct:g}%"
                break
            if closed > 0.001 * viewers or failed > 0.001 * max(want, 1):
                stop_reason = f"{closed} viewers closed, {failed} connects failed"
                break
            held = viewers
            target = target + opts.step if opts.step else max(target + 1, int(target * opts.growth))
        return {"peer": peer.name, "describe": peer.describe, "held": held, "stop": stop_reason, "stages": stages,
                "pinned": {"servers": sorted(server_cpus) if server_cpus else None,
                           "clients": sorted(client_cpus) if client_cpus else None}}
    finally:
        if storm is not None:
            await storm.stop()
        if gens is not None:
            await gens.stop()
        servers.stop()


async def idle_peer(peer: Peer, opts: CapacityOptions, log: Any) -> dict[str, Any]:
    server_cpus, client_cpus = split_cpus(opts.pin)
    _pin(client_cpus)
    servers = Servers(peer, opts.servers, server_cpus, client_cpus)
    gens: Generators | None = None
    try:
        await servers.ready()
        gens = Generators(peer, servers, opts.generators, client_cpus)
        # Warm-up viewers first: the room opening, lazy imports and first-connection
        # buffers are a fixed cost, not a per-viewer one.
        warm = max(1, min(100, opts.idle_viewers // 20))
        await gens.add(warm, 0)
        await asyncio.sleep(1.0)
        before = servers.rss_kb()
        ok, failed = await gens.add(opts.idle_viewers, 0)
        await asyncio.sleep(1.5)  # a few ticks: the room's counters settle
        after = servers.rss_kb()
        reports = [r[1] for r in await gens.ask([("report",)] * len(gens.conns))]
        closed = sum(r["sinks_closed"] for r in reports)  # a viewer the server dropped holds no memory
        log(f"  {peer.name}: {ok} idle viewers ({failed} failed, {closed} closed) after {warm} warm-up: "
            f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB")
        if closed:
            raise RuntimeError(f"{closed} idle viewers were closed by the server: memory per viewer would be wrong")
        return {"peer": peer.name, "describe": peer.describe, "viewers": ok, "connect_failures": failed, "warm_up": warm,
                "rss_before_mb": round(before / 1024, 1), "rss_after_mb": round(after / 1024, 1),
                "kib_per_viewer": round((after - before) / max(ok, 1), 2)}
    finally:
        if gens is not None:
            await gens.stop()
        servers.stop()


# -- tables --------------------------------------------------------------------------------------
def capacity_markdown(results: list[dict[str, Any]], opts: CapacityOptions, command: str) -> str:
    base = next((r for r in results if r.get("peer") == "liveserver" and "error" not in r), None)
    pinned = next((r["pinned"] for r in results if "pinned" in r), None)
    lines = [
        f"`{command}` — one room, storm {opts.danmaku_rate:g} danmaku/s + {opts.like_rate:g} likes/s "
        f"(peers relay likes as messages, {opts.publishers} publisher connections), viewers from {max(opts.start, opts.probes)} "
        + (f"in steps of {opts.step}" if opts.step else f"growing x{opts.growth:g} per stage")
        + f" (max {opts.max_viewers}), {opts.stage_seconds:g} s per stage, {opts.probes} probe viewers; limit p99 > "
        f"{opts.p99_limit_ms:g} ms or delivery < {opts.delivery_floor_pct:g}%; {opts.servers} server process(es) per peer"
        + (f", servers pinned to CPU {pinned['servers']}, clients + Redis to {pinned['clients']}." if pinned and pinned["servers"] else ", not pinned."),
        "",
        "| peer | viewers held | liveserver / peer | stopped by | at the last stage held: p50 ms | p99 ms | server CPU % | generator lag max ms |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['peer']} | not run: {r['error']} |  |  |  |  |  |  |")
            continue
        last = next((s for s in reversed(r["stages"]) if s["viewers"] <= r["held"]), None) if r["held"] else None
        cells = (f"{last['p50_ms']:.1f} | {last['p99_ms']:.1f} | {last['server_cpu_pct']} | {last['gen_lag_max_ms']}"
                 if last else " |  |  | ")
        held_ratio = ratio(base["held"], r["held"]) if base and r["held"] else "-"
        lines.append(f"| {r['peer']} | {r['held']} | {held_ratio} | {r['stop']} | {cells} |")
    lines += ["", "Stages:", "", "| peer | viewers | delivered | p50 ms | p99 ms | max ms | server CPU % | server RSS MiB | sink KiB/s | gen lag max / mean ms | closed |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        for s in r.get("stages", []):
            lines.append(f"| {r['peer']} | {s['viewers']} | {s['delivered_pct']}% | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} "
                         f"| {s['server_cpu_pct']} | {s['server_rss_mb']} | {s['sink_kib_per_s']} | {s['gen_lag_max_ms']} / {s['gen_lag_mean_ms']} | {s['closed']} |")
    return "\n".join(lines)


def idle_markdown(results: list[dict[str, Any]], opts: CapacityOptions, command: str) -> str:
    base = next((r for r in results if r.get("peer") == "websockets" and "error" not in r), None)
    lines = [
        f"`{command}` — {opts.idle_viewers} idle viewers in one room, {opts.servers} server process(es) per peer; "
        "RSS delta of the server processes / viewers, measured after a few warm-up viewers (5%, at most 100).",
        "",
        "| peer | viewers | RSS before MiB | RSS after MiB | KiB per idle viewer | vs bare websockets |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['peer']} | not run: {r['error']} |  |  |  |  |")
            continue
        lines.append(f"| {r['peer']} | {r['viewers']} | {r['rss_before_mb']} | {r['rss_after_mb']} | {r['kib_per_viewer']} "
                     f"| {ratio(r['kib_per_viewer'], base['kib_per_viewer']) if base else '-'} |")
    return "\n".join(lines)


def run_capacity(opts: CapacityOptions, kind: str = "capacity") -> int:
    if kind == "idle":
        return run_peers(kind, opts.peers or CAPACITY_PEERS, opts, idle_peer, idle_markdown)
    return run_peers(kind, opts.peers or CAPACITY_PEERS, opts, capacity_peer, capacity_markdown)
