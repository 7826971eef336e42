"""MULTI/EXEC on one slot that works the same on one Redis and on a Redis Cluster.

Why not redis-py's own transaction pipeline on a Cluster: in redis-py 8 the asyncio
`ClusterPipeline(transaction=True)` runs every queued command in a new thread with its
own event loop (`asyncio.run` + `Thread.join`). That blocks the server's event loop for
each command, and when the client must re-read the slot map (after a failover) it does
so in that other loop, binding the client's internal `asyncio.Lock`s to a loop that then
dies: from then on every slot-map refresh in the real loop fails with "is bound to a
different event loop" and the node keeps talking to the dead primary.

So on a Cluster a transaction here is queued with redis-py's command methods (same
arguments and reply parsing as everywhere else), then sent as MULTI, the commands and
EXEC on one connection of the slot's primary, in the server's own loop. A MOVED/ASK or
CLUSTERDOWN inside the MULTI aborts the EXEC (nothing ran), so it is retried after the
slot map is refreshed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncCoreCommands
from redis.exceptions import ClusterDownError, ExecAbortError, MovedError, ResponseError, TryAgainError

from liveserver.engine.scripts import discard, refresh_slots

ATTEMPTS = 4
PARSER_ONLY = ("keys", EMPTY_RESPONSE, NEVER_DECODE)  # options redis-py's callbacks do not take


class ClusterTransaction(AsyncCoreCommands):  # type: ignore[misc]
    """Queue commands (pipe.hset(...), pipe.zadd(...)); `execute()` runs them atomically
    on the primary that owns their slot and returns the parsed replies, like redis-py's
    `Pipeline(transaction=True).execute()`. Every key must be in one slot ({tag})."""

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._queue: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> "ClusterTransaction":
        self._queue.append((args, options))
        return self

    async def execute(self) -> list[Any]:
        if not self._queue:
            return []
        key = next((args[1] for args, _ in self._queue if len(args) > 1), None)
        if key is None:
            raise ValueError("a cluster transaction needs a keyed command")
        await self._cluster.initialize()  # a no-op once the slot map is known
        for attempt in range(ATTEMPTS):
            node = self._cluster.get_node_from_key(key)
            try:
                return await _multi_exec(node, self._queue)
            except (MovedError, ExecAbortError, ClusterDownError, TryAgainError):
                if attempt == ATTEMPTS - 1:
                    raise
                await refresh_slots(self._cluster)
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")


def transaction(redis: Redis | RedisCluster) -> Any:
    """A transaction pipeline for `redis`: redis-py's own on one Redis, ours on a Cluster."""
    if isinstance(redis, RedisCluster):
        return ClusterTransaction(redis)
    return redis.pipeline(transaction=True)


async def _multi_exec(node: ClusterNode, queue: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    conn = node.acquire_connection()
    try:
        if not conn.is_connected:
            await conn.connect()
        packed = conn.pack_commands([("MULTI",), *(args for args, _ in queue), ("EXEC",)])
        await conn.send_packed_command(packed, check_health=False)
        await conn.read_response()  # +OK to MULTI
        queued_error: Exception | None = None
        for _ in queue:
            try:
                await conn.read_response()  # +QUEUED, or the reason the EXEC will abort
            except ResponseError as exc:
                queued_error = queued_error or exc
        try:
            replies = await conn.read_response()
        except ExecAbortError:
            if queued_error is not None:  # MOVED / CLUSTERDOWN: report that, it says why
                raise queued_error from None
            raise
        if replies is None:  # WATCH is never used here, so a nil EXEC is not expected
            raise ExecAbortError("EXEC returned nil")
        out = []
        for (args, options), reply in zip(queue, replies):
            if isinstance(reply, ResponseError):
                raise reply
            name = str(args[0]).upper()
            options = {k: v for k, v in options.items() if k not in PARSER_ONLY}
            callback = node.response_callbacks.get(name)
            out.append(callback(reply, **options) if callback else reply)
        return out
    except BaseException:
        await discard(conn)  # a half-read reply must never reach the next user
        raise
    finally:
        node.release(conn)
