"""Memory of unique-viewer counting per 1M viewers: exact set vs HyperLogLog, and the
session records the report keeps (docs/afterlive.md). Runs a private embedded Redis.

    python -m loadtest.uniques_memory [--viewers 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import redis

from liveserver.engine.embedded import EmbeddedRedis


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=1_000_000)
    n = parser.parse_args().viewers
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="lc-uvmem-")))
    url = server.start()
    try:
        r = redis.Redis.from_url(url, decode_responses=True)
        pipe = r.pipeline(transaction=False)
        for start in range(0, n, 10_000):
            ids = [f"user-{i:07d}" for i in range(start, min(n, start + 10_000))]
            pipe.sadd("uv", *ids)
            pipe.pfadd("hll", *ids)
            pipe.rpush("sessions", *[f"j|n1a2b3c4-{i[5:]}|{i}|1795458224131|n1a2b3c4" for i in ids],
                       *[f"l|n1a2b3c4-{i[5:]}|1795458284131" for i in ids])
            pipe.execute()
        est = r.pfcount("hll")
        print(f"viewers {n:,} (ids of 12 chars), redis {r.info('server')['redis_version']}")
        print(f"exact set:      {r.memory_usage('uv', samples=0) / 1e6:8.1f} MB, count {r.scard('uv'):,} (exact)")
        print(f"HyperLogLog:    {r.memory_usage('hll') / 1e3:8.1f} KB, count {est:,} ({(est - n) / n:+.2%}; std error 0.81%)")
        print(f"session records:{r.memory_usage('sessions', samples=0) / 1e6:8.1f} MB (one join + one leave each)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
