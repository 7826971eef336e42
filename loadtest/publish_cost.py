"""Redis time per room event: `publish.lua` (what every writer of a room stream runs) and
the archiver's `archive_copy.lua`, from Redis's own counters (`INFO commandstats`).

    python -m loadtest.publish_cost [--events 20000] [--maxlen 1000] [--archive-every 100]

Starts a private redis-server, appends `--events` notices to one room through the
engine (no node, no network but the Redis socket), 100 in flight at a time, and runs
one archive pass after every `--archive-every` events (0: none), as a node's archiver
does about every 100 ms. Prints µs of Redis time per publish and per archived event.
Redis time is measured inside Redis, so the client's own speed does not count; it still
varies from run to run on a busy box: compare code by alternating runs (a `git worktree`
of the other commit, `PYTHONPATH=<worktree>`).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from liveserver.engine.embedded import redis_binary
from liveserver.engine.engine import RoomEngine
from liveserver.engine.scripts import ScriptRunner

ROOM = "publish-cost"


async def _usec(redis: Any) -> tuple[float, float]:
    """Redis time so far: (EVALSHA, every command; commands a script calls count in both)."""
    stats = await redis.info("commandstats")
    evalsha = float(stats.get("cmdstat_evalsha", {}).get("usec", 0))
    inner = sum(float(v["usec"]) for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_info"))
    return evalsha, inner


async def _archive_pass(engine: RoomEngine) -> int:
    try:
        copied, _more = await engine.reports.archive_pass([ROOM], 500)
    except TypeError:  # before archive_copy.lua: a consumer group, (rooms, consumer, count, idle ms)
        copied = await engine.reports.archive_pass([ROOM], "bench", 500, 30_000)  # type: ignore[call-arg]
    return int(copied)


async def measure(sock: str, events: int, maxlen: int, archive_every: int) -> dict[str, float]:
    redis = Redis(unix_socket_path=sock, decode_responses=True)
    engine = RoomEngine(redis, ScriptRunner(redis), maxlen)
    await redis.config_resetstat()
    archive_usec, archive_evalsha, archived, passes = 0.0, 0.0, 0, 0
    for start in range(0, events, 100):
        n = min(100, events - start)
        await asyncio.gather(*(engine.publish(ROOM, "notice", {"text": f"n{i}"}) for i in range(start, start + n)))
        if archive_every and (start + n) % archive_every == 0:
            e0, i0 = await _usec(redis)
            archived += await _archive_pass(engine)
            e1, i1 = await _usec(redis)
            archive_evalsha += e1 - e0
            # a script's time, or the commands' when the pass sends them itself
            archive_usec += (e1 - e0) or (i1 - i0)
            passes += 1
    evalsha, _inner = await _usec(redis)
    result = {"events": events, "publish_us": (evalsha - archive_evalsha) / events,
              "archive_us_per_event": archive_usec / max(archived, 1), "archive_passes": passes,
              "stream_len": await redis.xlen(f"lc:{{{ROOM}}}:ev")}
    await redis.aclose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--maxlen", type=int, default=1000, help="LIVESERVER_STREAM_MAXLEN of the engine")
    parser.add_argument("--archive-every", type=int, default=100, help="one archive pass per this many events (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pubcost-") as tmp:
        sock = str(Path(tmp) / "redis.sock")
        server = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
                                   "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not Path(sock).exists():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.02)
            r = asyncio.run(measure(sock, args.events, args.maxlen, args.archive_every))
        finally:
            server.terminate()
            server.wait(10)
    print(f"{r['events']:,} events at MAXLEN {args.maxlen}: publish.lua {r['publish_us']:.2f} µs of Redis time each; "
          f"archiving {r['archive_us_per_event']:.2f} µs per event archived ({r['archive_passes']:,} passes); "
          f"stream holds {r['stream_len']:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
