"""Second-wave commerce scripts, pipelined EVALSHA against one private Redis, in one run:
the plain `buy.lua` (the baseline) next to a buy with a room coupon, a group-buy join, and
a shop-wide coupon checkout (hold + buy + commit: three scripts over two slots).

    python -m loadtest.commerce2_bench --seconds 5

Every attempt succeeds and runs the full write path; each attempt is a distinct user
(wallets are filled before each timed pipeline, outside the timing). The figure is attempts/s
and its ratio to the plain buy measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from redis.asyncio import Redis

from liveserver.engine.commerce_keys import CommerceKeys, MerchantKeys
from liveserver.engine.embedded import redis_binary
from liveserver.engine.scripts import LuaScript

ROOM, SALE, GROUP, MERCHANT = "bench", "bench.s1", "bench.g1", "m1"
FAR = 4_000_000_000_000  # ms: far in the future


async def _setup(redis: Redis) -> dict[str, str]:
    keys = CommerceKeys(ROOM)
    await redis.hset(keys.sale(SALE), mapping={"id": SALE, "room": ROOM, "price": 5000, "initial": 10**9,
                                               "stock": 10**9, "reserved": 0, "paid": 0, "expired": 0,
                                               "per_user_limit": 10**6, "start_ms": 0, "end_ms": FAR})
    await redis.hset(keys.group(GROUP), mapping={"id": GROUP, "room": ROOM, "price": 3000, "size": 3, "initial": 10**9,
                                                 "stock": 10**9, "open_units": 0, "sold": 0, "failed": 0,
                                                 "teams_open": 0, "per_user_limit": 1, "team_window_ms": 60_000,
                                                 "start_ms": 0, "end_ms": FAR, "tseq": 0})
    shas = {}
    for name in ("buy", "group_join", "shop_hold", "shop_settle"):
        script = LuaScript.load(name)
        shas[name] = await redis.script_load(script.source)
    return shas


def _wallet(coupon: str, **extra: Any) -> str:
    return json.dumps({"coupon_id": coupon, "room": ROOM, "title": "t", "amount": 500, "min_spend": 0,
                       "expires_ms": FAR, "count": 1, "used": 0, "orders": {}, "claimed_ms": 0, **extra})


Path_ = tuple[Callable[[Any, int], None], list[Callable[[Any, int], None]]]


async def _measure(redis: Redis, seconds: float, depth: int, paths: dict[str, Path_]) -> dict[str, dict[str, float]]:
    """Round-robin over the paths, one pipeline of `depth` attempts each per round (so a busy
    moment of this shared machine hits every path alike): an untimed `prepare` pipeline, then
    each step's pipeline timed. Runs `seconds` of timed work per path."""
    done = {name: 0 for name in paths}
    busy = {name: 0.0 for name in paths}
    while min(busy.values()) < seconds:
        for name, (prepare, steps) in paths.items():
            n = done[name]
            pipe = redis.pipeline(transaction=False)
            for i in range(depth):
                prepare(pipe, n + i)
            await pipe.execute()
            t0 = time.perf_counter()
            for step in steps:
                pipe = redis.pipeline(transaction=False)
                for i in range(depth):
                    step(pipe, n + i)
                for reply in await pipe.execute():
                    ok = json.loads(reply).get("ok", True) if isinstance(reply, str) else int(reply) >= 0
                    assert ok, reply
            busy[name] += time.perf_counter() - t0
            done[name] += depth
    return {name: {"attempts": done[name], "per_s": done[name] / busy[name]} for name in paths}


async def run(seconds: float, depth: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="commerce2-"))
    sock = tmp / "redis.sock"
    proc = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            await asyncio.sleep(0.05)
        redis = Redis(unix_socket_path=str(sock), decode_responses=True)
        shas = await _setup(redis)
        k = CommerceKeys(ROOM)
        m = MerchantKeys(MERCHANT)

        def buy_args(user: str, key: str, coupon: str = "", shop: str = "") -> list[Any]:
            return [*k.buy_keys(SALE), k.claims(user), k.shop_holds(),
                    user, 1, key, 900_000, ROOM, SALE, 100_000, coupon, shop]

        def plain(pipe: Any, i: int) -> None:
            pipe.evalsha(shas["buy"], 11, *buy_args(f"p{i}", "k"))

        def with_coupon_prepare(pipe: Any, i: int) -> None:
            pipe.hset(k.claims(f"c{i}"), f"{ROOM}.c1", _wallet(f"{ROOM}.c1"))

        def with_coupon(pipe: Any, i: int) -> None:
            pipe.evalsha(shas["buy"], 11, *buy_args(f"c{i}", "k", f"{ROOM}.c1"))

        def join(pipe: Any, i: int) -> None:  # three users per team: open, join, join (completes)
            team = "" if i % 3 == 0 else f"{GROUP}.t{i // 3 + 1}"
            pipe.evalsha(shas["group_join"], 10, *k.group_join_keys(GROUP), f"g{i}", f"G{i}", "k", team, ROOM, GROUP,
                         100_000)

        coupon = f"shop:{MERCHANT}.c1"

        def shop_prepare(pipe: Any, i: int) -> None:
            pipe.hset(m.wallet(f"s{i}"), coupon, _wallet(coupon, merchant=MERCHANT, holds={}))

        def hold(pipe: Any, i: int) -> None:
            pipe.evalsha(shas["shop_hold"], 2, m.wallet(f"s{i}"), m.holds(), f"s{i}", coupon, f"{ROOM}|{SALE}|s{i}|k",
                         30_000)

        def shop_buy(pipe: Any, i: int) -> None:
            shop = json.dumps({"coupon_id": coupon, "merchant": MERCHANT, "hold": f"{ROOM}|{SALE}|s{i}|k",
                               "amount": 500, "min_spend": 0})
            pipe.evalsha(shas["buy"], 11, *buy_args(f"s{i}", "k", "", shop))

        def commit(pipe: Any, i: int) -> None:
            pipe.evalsha(shas["shop_settle"], 2, m.wallet(f"s{i}"), m.holds(), "commit", f"s{i}", coupon,
                         f"{ROOM}|{SALE}|s{i}|k", f"{ROOM}.o?", ROOM)

        # the group join path needs its teams in order: a pipeline of `depth` (a multiple of 3) runs in order
        depth -= depth % 3
        def nothing(pipe: Any, i: int) -> None:
            return None

        rows = await _measure(redis, seconds, depth, {
            "buy (baseline)": (nothing, [plain]),
            "buy with a room coupon": (with_coupon_prepare, [with_coupon]),
            "group_join (open, join, join)": (nothing, [join]),
            "shop coupon: hold + buy + commit": (shop_prepare, [hold, shop_buy, commit]),
        })
        base = rows["buy (baseline)"]["per_s"]
        for row in rows.values():
            row["ratio"] = row["per_s"] / base
        group = await redis.hmget(k.group(GROUP), "stock", "open_units", "sold", "initial")
        await redis.aclose()
        return {"rows": rows, "group_invariant_ok": int(group[0]) + int(group[1]) + int(group[2]) == int(group[3])}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.commerce2_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per path")
    parser.add_argument("--depth", type=int, default=99, help="attempts per pipeline")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.seconds, args.depth))
    print(f"{'path':<36}{'attempts/s':>12}{'ratio':>8}")
    for name, row in result["rows"].items():
        print(f"{name:<36}{row['per_s']:>12,.0f}{row['ratio']:>7.2f}x")
    print(f"group invariant ok: {result['group_invariant_ok']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["group_invariant_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
