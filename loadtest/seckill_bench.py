"""Seckill benchmark: `buy` attempts/s through liveserver next to raw EVALSHA of the
same buy.lua against the same Redis, measured in one run (the ratio is the figure).

    python -m loadtest.seckill_bench --seconds 10 --buyers 200

It starts its own private redis-server (unix socket) and one liveserver node on
127.0.0.1, and stops both at the end. Every attempt succeeds (stock and per-user limit
are large), so both sides measure the full write path of the script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from hdrh.histogram import HdrHistogram
from redis.asyncio import Redis

from liveserver.core.auth import mint
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.embedded import redis_binary
from liveserver.engine.scripts import LuaScript
from protocol.codec import JSON

SECRET = "seckill-bench-secret-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(h: HdrHistogram) -> dict[str, float]:
    return {f"p{q:g}": h.get_value_at_percentile(q) / 1000 for q in (50, 99)} | {"max": h.get_max_value() / 1000}


async def _raw(redis_url: str, room: str, sale: str, seconds: float, concurrency: int) -> dict[str, object]:
    """Baseline: redis-py, `concurrency` coroutines each looping EVALSHA buy.lua."""
    redis = Redis.from_url(redis_url, decode_responses=True, max_connections=concurrency)
    script = LuaScript.load("buy")
    await redis.script_load(script.source)
    keys = CommerceKeys(room).buy_keys(sale)
    hist = HdrHistogram(1, 60_000_000, 3)
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

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return {"attempts": count, "per_s": count / elapsed, **_percentiles(hist)}


async def _raw_pipelined(redis_url: str, room: str, sale: str, seconds: float, depth: int = 100) -> dict[str, object]:
    """Redis's own ceiling for this script: one connection, `depth` EVALSHA per pipeline."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    script = LuaScript.load("buy")
    await redis.script_load(script.source)
    keys = CommerceKeys(room).buy_keys(sale)
    hist = HdrHistogram(1, 60_000_000, 3)
    count = 0
    started = time.perf_counter()
    stop_at = started + seconds
    while time.perf_counter() < stop_at:
        pipe = redis.pipeline(transaction=False)
        for i in range(depth):
            pipe.evalsha(script.sha, len(keys), *keys, "pipe", 1, f"p{count + i}", 900_000, room, sale, 10_000)
        t0 = time.perf_counter()
        replies = await pipe.execute()
        hist.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
        assert all(json.loads(r)["ok"] for r in replies)
        count += depth
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return {"attempts": count, "per_s": count / elapsed, **_percentiles(hist)}


async def _server(ws_base: str, room: str, sale: str, seconds: float, buyers: int) -> dict[str, object]:
    """Through the server: `buyers` websocket viewers each looping `buy` and awaiting its reply."""
    hist = HdrHistogram(1, 60_000_000, 3)
    count = 0
    failures = 0
    stop_at = time.perf_counter() + seconds

    async def buyer(b: int) -> None:
        nonlocal count, failures
        url = f"{ws_base}/ws/rooms/{room}?token={mint(SECRET, f'ws{b}')}"
        async with websockets.connect(url, subprotocols=[JSON.subprotocol], max_size=None) as ws:
            i = 0
            while time.perf_counter() < stop_at:
                i += 1
                t0 = time.perf_counter()
                await ws.send(JSON.encode({"op": "buy", "id": i, "sale": sale, "qty": 1, "key": f"w{b}-{i}"}))
                while True:  # skip batches until our reply
                    frame = JSON.decode(await ws.recv())
                    if frame.get("t") == "reply" and frame.get("re") == i:
                        break
                hist.record_value(max(1, int((time.perf_counter() - t0) * 1e6)))
                if frame["ok"]:
                    count += 1
                else:
                    failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(buyer(b) for b in range(buyers)))
    elapsed = time.perf_counter() - started
    return {"attempts": count, "failures": failures, "per_s": count / elapsed, **_percentiles(hist)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.seckill_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--buyers", type=int, default=200, help="websocket buyers through the server")
    parser.add_argument("--concurrency", type=int, default=200, help="raw EVALSHA coroutines")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="seckill-"))
    sock = tmp / "redis.sock"
    redis_proc = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                                   "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(tmp)],
                                  stdout=subprocess.DEVNULL)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESERVER_")}
    env.update({"LIVESERVER_SECRET": SECRET, "LIVESERVER_REDIS_URL": f"unix://{sock}?db=0", "LIVESERVER_DEMO": "0",
                "LIVESERVER_OP_RATE": "100000"})
    node = None
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        node = subprocess.Popen([sys.executable, "-m", "liveserver", "serve", "--port", str(port), "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL)
        http = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(http + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline + 10:
                raise SystemExit("liveserver did not start")
            time.sleep(0.05)
        admin = {"Authorization": f"Bearer {mint(SECRET, 'bench', role='admin')}"}
        room = "seckill"
        httpx.put(f"{http}/api/v1/rooms/{room}", json={"title": "bench"}, headers=admin).raise_for_status()
        httpx.put(f"{http}/api/v1/rooms/{room}/products", json={"products": [{"id": "p", "title": "P", "price": 100}]},
                  headers=admin).raise_for_status()
        sale = httpx.post(f"{http}/api/v1/rooms/{room}/sales", headers=admin, json={
            "product_id": "p", "price": 100, "stock": 10_000_000, "per_user_limit": 1_000_000, "duration_s": 3600,
        }).json()["sale"]["id"]
        ceiling = asyncio.run(_raw_pipelined(env["LIVESERVER_REDIS_URL"], room, sale, args.seconds))
        raw = asyncio.run(_raw(env["LIVESERVER_REDIS_URL"], room, sale, args.seconds, args.concurrency))
        through = asyncio.run(_server(f"ws://127.0.0.1:{port}", room, sale, args.seconds, args.buyers))
        audit = httpx.get(f"{http}/api/v1/sales/{sale}/audit", headers=admin, timeout=120).json()
        result = {"raw_evalsha": raw, "raw_pipelined": ceiling, "through_server": through,
                  "ratio": through["per_s"] / raw["per_s"], "ratio_to_pipelined": through["per_s"] / ceiling["per_s"],
                  "audit_ok": audit["ok"], "args": vars(args)}
        print(f"{'path':<22}{'attempts/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        rows = (("raw EVALSHA", raw), ("raw EVALSHA pipelined", ceiling), ("through server", through))
        for name, r in rows:
            print(f"{name:<22}{r['per_s']:>12,.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['max']:>10.2f}")
        print(f"ratio server/raw EVALSHA: {result['ratio']:.2f}   server/pipelined: {result['ratio_to_pipelined']:.2f}"
              f"   audit ok: {audit['ok']}")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return 0 if audit["ok"] else 1
    finally:
        if node is not None:
            node.terminate()
            node.wait(timeout=15)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
