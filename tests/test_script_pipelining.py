"""How the script runner cuts one loop turn's calls into pipelines (engine/scripts.py):
pipelines of EARLY_FLUSH go out as the calls come while fewer than EARLY_PIPELINES are in
flight, and the rest of the turn goes out at its end in one. Every caller gets its own
reply whichever pipeline carried it. On one Redis and on a Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from harness import RedisClusterServers, RedisServer, async_redis
from liveserver.engine import scripts
from liveserver.engine.scripts import EARLY_FLUSH, EARLY_PIPELINES, ScriptRunner


async def _turn(runner: ScriptRunner, n: int) -> list[Any]:
    """`n` calls in one loop turn, each on its own room; each offers the room its index."""
    tag = uuid.uuid4().hex[:8]
    futures = [runner.run("peak", [f"lc:{{pipe-{tag}-{i}}}:meta"], [i]) for i in range(n)]
    return await asyncio.wait_for(asyncio.gather(*futures), 20)


async def test_a_turn_goes_out_in_early_pipelines_then_the_rest_at_once(redis_backend: RedisServer | RedisClusterServers) -> None:
    client = async_redis(redis_backend.url)
    try:
        runner = ScriptRunner(client)
        n = EARLY_FLUSH * 3 + 4  # three full pipelines as the calls come, the 4 left at the turn's end
        assert await _turn(runner, n) == list(range(n))
        assert runner.pipelines_sent == 4

        runner = ScriptRunner(client)
        n = EARLY_FLUSH * (EARLY_PIPELINES + 4)  # past the bound the turn waits for its end
        assert await _turn(runner, n) == list(range(n))
        assert runner.pipelines_sent == EARLY_PIPELINES + 1
    finally:
        await client.aclose()


async def test_without_early_pipelines_a_turn_is_one_pipeline(redis_single: RedisServer, monkeypatch: Any) -> None:
    """The counter counts what it says: with early flushing off, one turn is one pipeline."""
    monkeypatch.setattr(scripts, "EARLY_FLUSH", 10**9)
    client = async_redis(redis_single.url)
    try:
        runner = ScriptRunner(client)
        assert await _turn(runner, 300) == list(range(300))
        assert runner.pipelines_sent == 1
    finally:
        await client.aclose()
