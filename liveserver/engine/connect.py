"""How a process connects to Redis: one bounded pool, the engine and its script runner.

`redis://`, `rediss://` and `unix://` URLs name one Redis. `redis+cluster://host:port`
(`rediss+cluster://` for TLS) names any one node of a Redis Cluster; the client discovers
the others (redis-py's asyncio `RedisCluster`) and the engine switches to the cluster key
layout (`keys.Layout`).
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from liveserver.core.config import Settings
from liveserver.engine.engine import RoomEngine
from liveserver.engine.keys import Layout
from liveserver.engine.scripts import ScriptRunner

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(redis_url: str) -> str | None:
    """The plain `redis://` / `rediss://` URL of a `redis+cluster://` one; None for one Redis."""
    scheme, sep, rest = redis_url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return f"{plain}://{rest}" if plain else None


def cluster_client(url: str, max_connections: int = 64) -> RedisCluster:
    """A RedisCluster for a plain URL of any one node (see `cluster_url`)."""
    return RedisCluster.from_url(url, decode_responses=True, max_connections=max_connections,
                                 health_check_interval=30, socket_connect_timeout=2)


async def connect(redis_url: str, settings: Settings) -> RoomEngine:
    """A RoomEngine on `redis_url`, checked with PING; close it with `engine.close()`."""
    plain = cluster_url(redis_url)
    if plain is not None:
        # The cluster client never queues for a connection (it raises when out of them):
        # a generous per-node bound instead of the blocking pool of one Redis.
        cluster = cluster_client(plain, max(512, settings.redis_pool))
        try:
            await cluster.initialize()
            await cluster.ping()
        except BaseException:
            await cluster.aclose()
            raise
        return RoomEngine(cluster, ScriptRunner(cluster, settings.redis_wait_replicas), settings.stream_maxlen,  # type: ignore[arg-type]
                          Layout.for_cluster())
    # A bounded pool that waits for a free connection: a connect storm queues for a
    # moment instead of failing with "Too many connections".
    pool = BlockingConnectionPool.from_url(redis_url, decode_responses=True, health_check_interval=30,
                                           max_connections=settings.redis_pool, timeout=10)
    redis = Redis(connection_pool=pool)
    try:
        await redis.ping()
    except BaseException:
        await redis.aclose()
        raise
    return RoomEngine(redis, ScriptRunner(redis, settings.redis_wait_replicas), settings.stream_maxlen)
