"""The script runner loads a script it has not seen loaded in the same pipeline as its
first calls (engine/scripts.py), so a storm of calls on an empty script cache meets no
NOSCRIPT error at all; a cache flushed under the runner (a restart) costs one NOSCRIPT per
call of one storm, retried, and none after. On one Redis
and on a Redis Cluster (three primaries)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis

from harness import RedisClusterServers, RedisServer, async_redis
from liveserver.engine.scripts import ScriptRunner


def _primaries(backend: RedisServer | RedisClusterServers) -> list[redis.Redis]:
    if isinstance(backend, RedisClusterServers):
        cluster = backend.client()
        return [cluster.get_redis_connection(n) for n in cluster.get_primaries()]
    return [backend.client()]


def _noscript_errors(backend: RedisServer | RedisClusterServers) -> int:
    total = 0
    for r in _primaries(backend):
        stat: Any = r.info("errorstats").get("errorstat_NOSCRIPT", {})
        total += int(stat.get("count", 0)) if isinstance(stat, dict) else 0
    return total


def _flush_scripts(backend: RedisServer | RedisClusterServers) -> None:
    for r in _primaries(backend):
        r.script_flush()


async def _storm(runner: ScriptRunner, rooms: list[str], n: int) -> None:
    """`n` peak.lua calls in one loop turn, spread over rooms (so over every primary)."""
    futures = [runner.run("peak", [f"lc:{{{rooms[i % len(rooms)]}}}:meta"], [i]) for i in range(n)]
    results = await asyncio.wait_for(asyncio.gather(*futures), 20)
    for room in rooms:  # each room's peak is the largest count offered to it
        offered = [i for i in range(n) if rooms[i % len(rooms)] == room]
        assert max(results[i] for i in offered) == max(offered)


async def test_a_storm_on_an_empty_script_cache_meets_no_noscript(redis_backend: RedisServer | RedisClusterServers) -> None:
    client = async_redis(redis_backend.url)
    rooms = [f"preload-{uuid.uuid4().hex[:8]}-{i}" for i in range(12)]
    try:
        _flush_scripts(redis_backend)
        before = _noscript_errors(redis_backend)
        runner = ScriptRunner(client)
        await _storm(runner, rooms, 300)
        assert _noscript_errors(redis_backend) == before  # loaded in the storm's own pipeline(s)

        # The cache flushed under the runner (a restart): that storm is retried, all of it
        # answered, and the next one meets no NOSCRIPT.
        _flush_scripts(redis_backend)
        await _storm(runner, rooms, 300)
        after_flush = _noscript_errors(redis_backend)
        assert after_flush > before
        await _storm(runner, rooms, 300)
        assert _noscript_errors(redis_backend) == after_flush
    finally:
        await client.aclose()
