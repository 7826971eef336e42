"""Lua scripts (one file each in `liveserver/lua/`) and the runner that calls them.

The runner auto-pipelines: the script calls made during one event-loop turn go to Redis
in one pipeline on one connection, so 5,000 concurrent `buy`s cost a handful of round
trips, not 5,000. While few pipelines are in flight, a turn's calls go out in pipelines
of EARLY_FLUSH as they come, not all at the turn's end: Redis then runs the first buys
of a burst while the node still parses the rest, where it used to wait for the whole
turn and the node then waited for Redis (the seckill bench: ~20 % more buys/s, see
docs/performance.md). A script the runner has not yet seen loaded on that Redis (or
Cluster primary) is loaded by a SCRIPT LOAD at the head of the same pipeline: without
it, the first pipeline of each script after a start, a Redis restart or a failover met
NOSCRIPT once per call (9,000 error replies for the leaves of one stream's end). EVALSHA
that meets NOSCRIPT anyway (Redis restarted under a pipeline) loads the script and
retries only those calls; a NOSCRIPT call never ran, so retrying is safe, and the
runner forgets what it had seen loaded anywhere (so that retry carries a SCRIPT LOAD
again, after the explicit one: a second load once per restart, left as it is).

On a Redis Cluster the calls of one turn are split by the primary that owns each call's
slot: one pipeline per primary, each on one connection of that primary, so the WAIT that
ends a durable pipeline covers exactly the writes sent before it on that connection.
A MOVED / ASK / TRYAGAIN / CLUSTERDOWN reply means the call did not run: the runner
refreshes the slot map and retries it (ASK: once on the named node, after ASKING). A lost
connection fails the calls in flight (they may or may not have run: callers retry with
their idempotency key) and refreshes the slot map for the next calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any, Sequence

from redis._parsers.encoders import Encoder
from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import (AskError, ClusterDownError, MovedError, NoScriptError, ResponseError,
                              SlotNotCoveredError, TryAgainError)

from liveserver.engine.errors import NotReplicated

MAX_PIPELINE = 1000
# A turn's calls go out in pipelines of this many as they come, while fewer than
# EARLY_PIPELINES pipelines are in flight; past that Redis is the one behind, and the
# rest of the turn waits to go out together in the fewest pipelines.
EARLY_FLUSH = 32
EARLY_PIPELINES = 8
INCLUDE = "--! include "
log = logging.getLogger("liveserver.scripts")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> "LuaScript":
        source = _with_includes(_read(name))
        return cls(name=name, source=source, sha=hashlib.sha1(source.encode()).hexdigest())


def _read(name: str) -> str:
    return resources.files("liveserver").joinpath("lua", f"{name}.lua").read_text()


def _with_includes(source: str) -> str:
    """Paste each `--! include <fragment>` line's fragment (e.g. `_append_event`) in its
    place: EVALSHA scripts cannot share code, so shared Lua is shared at load time."""
    lines = []
    for line in source.splitlines(keepends=True):
        if line.startswith(INCLUDE):
            lines.append(_read(line[len(INCLUDE):].strip()))
        else:
            lines.append(line)
    return "".join(lines)


@dataclass(slots=True)
class Call:
    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Any]
    future: "asyncio.Future[Any]"
    durable: bool
    ask: tuple[str, int] | None = None  # cluster: the node an ASK redirect named


def _is_redirect(value: object) -> bool:
    return isinstance(value, (MovedError, AskError, TryAgainError, ClusterDownError, SlotNotCoveredError))


def _is_noscript(value: object) -> bool:
    return isinstance(value, NoScriptError) or (isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT"))


class ScriptRunner:
    def __init__(self, redis: Redis | RedisCluster, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> None:
        self._redis = redis
        self._cluster = isinstance(redis, RedisCluster)
        self._refreshing: asyncio.Task[None] | None = None
        # With replicas, a pipeline holding a durable call (a buy) ends with WAIT, so the
        # reply goes out only once N replicas have the reservation (see docs/commerce.md).
        self._wait = (wait_replicas, wait_timeout_ms)
        self._scripts: dict[str, LuaScript] = {}
        # Scripts seen loaded, per Redis ("" for one Redis, else the primary's name).
        self._loaded: dict[str, set[str]] = {}
        self._queue: list[Call] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()  # pipelines in flight
        self.pipelines_sent = 0

    def script(self, name: str) -> LuaScript:
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = LuaScript.load(name)
        return found

    def run(self, name: str, keys: Sequence[str], args: Sequence[Any], durable: bool = False) -> "asyncio.Future[Any]":
        """Queue one call; the result (or the Redis error) arrives on the returned future."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        queue = self._queue
        queue.append(Call(self.script(name), keys, args, fut, durable))
        if len(queue) >= EARLY_FLUSH and len(self._tasks) < EARLY_PIPELINES:
            self._send_queued()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._send_queued()

    def _send_queued(self) -> None:
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_PIPELINE):
            task = asyncio.ensure_future(self._send(queue[start : start + MAX_PIPELINE]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self.pipelines_sent += 1

    async def _send(self, calls: list[Call]) -> None:
        pending = calls
        attempts = 6 if self._cluster else 3
        for attempt in range(attempts):
            try:
                results = await (self._execute_cluster(pending) if self._cluster else self._execute(pending))
            except Exception as exc:  # connection lost etc.: every caller gets the error
                for call in pending:
                    if not call.future.done():
                        call.future.set_exception(exc)
                return
            retry = []
            missing: dict[str, LuaScript] = {}
            redirected = False
            for call, result in zip(pending, results):
                fut = call.future
                if fut.done():
                    continue
                if _is_noscript(result):
                    retry.append(call)
                    missing[call.script.name] = call.script
                elif self._cluster and _is_redirect(result) and attempt < attempts - 1:
                    ask = isinstance(result, AskError) and not isinstance(result, MovedError)
                    call.ask = (result.host, int(result.port)) if ask else None
                    retry.append(call)
                    redirected = True
                elif isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
            if not retry:
                return
            if missing:
                self._loaded.clear()  # a Redis lost its scripts: load them again ahead of use
            if redirected:
                await self._refresh_slots()
                await asyncio.sleep(0.05 * attempt)
            try:
                for script in missing.values():  # on a Cluster: loaded on every primary
                    await self._redis.script_load(script.source)
            except Exception as exc:
                for call in retry:
                    if not call.future.done():
                        call.future.set_exception(exc)
                return
            pending = retry
        for call in pending:
            if not call.future.done():
                call.future.set_exception(RuntimeError("script could not be loaded"))

    async def _refresh_slots(self) -> None:
        """Re-read the cluster's slot map (one refresh at a time, shared by every caller)."""
        assert isinstance(self._redis, RedisCluster)
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(refresh_slots(self._redis))
        try:
            await asyncio.shield(self._refreshing)
        except Exception as exc:
            log.warning("cluster slot map refresh failed: %s", exc)

    async def _execute_cluster(self, calls: list[Call]) -> list[Any]:
        """One pipeline per primary, concurrently; results in the order of `calls`."""
        assert isinstance(self._redis, RedisCluster)
        cluster = self._redis
        results: list[Any] = [None] * len(calls)
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, call in enumerate(calls):
            try:
                if call.ask is not None:
                    host, port = call.ask
                    node = cluster.get_node(host, port) or ClusterNode(host, port, **cluster.get_connection_kwargs())
                    name = f"ask:{node.name}"
                else:
                    node = cluster.get_node_from_key(call.keys[0])
                    name = node.name
            except SlotNotCoveredError as exc:
                results[i] = exc
                continue
            groups.setdefault(name, (node, []))[1].append(i)
        replicas, timeout_ms = self._wait

        async def on_node(node: ClusterNode, idxs: list[int]) -> None:
            loaded = self._loaded.setdefault(node.name, set())
            loads = {calls[i].script.sha: calls[i].script for i in idxs if calls[i].script.sha not in loaded}
            commands = [PipelineCommand(n, "SCRIPT", "LOAD", script.source) for n, script in enumerate(loads.values())]
            for i in idxs:
                call = calls[i]
                if call.ask is not None:
                    commands.append(PipelineCommand(len(commands), "ASKING"))
                commands.append(PipelineCommand(len(commands), "EVALSHA", call.script.sha, len(call.keys),
                                                *call.keys, *call.args))
            durable = replicas > 0 and any(calls[i].durable for i in idxs)
            if durable:
                commands.append(PipelineCommand(len(commands), "WAIT", replicas, timeout_ms))
            try:
                await node_pipeline(node, commands)
            except Exception as exc:  # connection lost: these calls may or may not have run
                for i in idxs:
                    results[i] = exc
                asyncio.ensure_future(self._refresh_slots())
                raise
            _note_loaded(loaded, loads, [c.result for c in commands[:len(loads)]])
            replies = [c.result for c in commands[len(loads):] if c.args[0] != "ASKING"]
            short = None
            if durable:
                acked = replies.pop()
                if not isinstance(acked, int) or acked < replicas:
                    log.warning("WAIT on %s: %s of %d replicas acknowledged within %d ms", node.name, acked,
                                replicas, timeout_ms)
                    short = NotReplicated(f"{acked} of {replicas} replicas took the write in {timeout_ms} ms; retry")
            for i, reply in zip(idxs, replies):
                results[i] = short if short is not None and calls[i].durable and not isinstance(reply, Exception) else reply

        # A failed node's calls carry its exception and fail alone; the other nodes' results stand.
        await asyncio.gather(*(on_node(node, idxs) for node, idxs in groups.values()), return_exceptions=True)
        return results

    async def _execute(self, calls: list[Call]) -> list[Any]:
        replicas, timeout_ms = self._wait
        durable = replicas > 0 and any(c.durable for c in calls)
        loaded = self._loaded.setdefault("", set())
        loads = {c.script.sha: c.script for c in calls if c.script.sha not in loaded}
        packed = [pack_command(("SCRIPT", "LOAD", script.source)) for script in loads.values()]
        packed += [pack_evalsha(c.script, c.keys, c.args) for c in calls]
        if durable:
            packed.append(pack_command(("WAIT", replicas, timeout_ms)))
        results = await pool_pipeline(self._redis.connection_pool, b"".join(packed), len(packed))
        _note_loaded(loaded, loads, results[:len(loads)])
        del results[:len(loads)]
        if durable:
            acked = results.pop()
            if not isinstance(acked, int) or acked < replicas:
                # Not acknowledged: a failover now could lose these writes (docs/commerce.md).
                log.warning("WAIT: %s of %d replicas acknowledged within %d ms", acked, replicas, timeout_ms)
                short = NotReplicated(f"{acked} of {replicas} replicas took the write in {timeout_ms} ms; retry")
                results = [short if c.durable and not isinstance(r, Exception) else r for c, r in zip(calls, results)]
        return results


def _note_loaded(loaded: set[str], loads: dict[str, LuaScript], replies: list[Any]) -> None:
    """Remember the scripts whose SCRIPT LOAD succeeded (the reply is the sha)."""
    for sha, reply in zip(loads, replies):
        if not isinstance(reply, Exception):
            loaded.add(sha)


_encoder = Encoder("utf-8", "strict", False)  # redis-py's own, for types the fast path leaves out


_KEY_CACHE: dict[str, bytes] = {}  # key names: the same few are sent with every call
_KEY_CACHE_SIZE = 4096


def _key_bulk(key: Any) -> bytes:
    found = _KEY_CACHE.get(key)
    if found is None:
        found = _bulk(key)
        if type(key) is str:
            if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
                _KEY_CACHE.clear()
            _KEY_CACHE[key] = found
    return found


def _bulk(value: Any) -> bytes:
    """One RESP bulk string, as redis-py's Encoder would encode `value`."""
    cls = type(value)
    if cls is str:
        data = value.encode()
    elif cls is int:
        data = b"%d" % value
    elif cls is bytes:
        data = value
    else:  # floats, memoryviews, and the types redis-py refuses (bool, None, ...): its rules
        data = _encoder.encode(value)
        if isinstance(data, memoryview):
            data = data.tobytes()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack_command(args: Sequence[Any]) -> bytes:
    return b"".join([b"*%d\r\n" % len(args), *map(_bulk, args)])


_EVALSHA_HEADS: dict[tuple[str, int, int], bytes] = {}  # (sha, keys, args) -> packed head


def pack_evalsha(script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """EVALSHA of `script` in RESP, packed here rather than by redis-py's pipeline: one
    buy is ~20 arguments, and redis-py's per-argument packing was a tenth of the node's
    CPU in the seckill bench (loadtest/seckill_bench.py). The head (command, sha, key
    count) is packed once per shape."""
    shape = (script.sha, len(keys), len(args))
    head = _EVALSHA_HEADS.get(shape)
    if head is None:
        head = _EVALSHA_HEADS[shape] = b"".join([
            b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n" % (3 + len(keys) + len(args), script.sha.encode()),
            _bulk(len(keys))])
    return b"".join([head, *map(_key_bulk, keys), *map(_bulk, args)])


async def pool_pipeline(pool: ConnectionPool, payload: bytes, count: int) -> list[Any]:
    """Send packed commands on one pooled connection and read `count` replies (a reply
    that is a Redis error comes back as its exception). As redis-py's own pipeline does:
    a connection or timeout error closes the connection and the whole payload is sent
    again on a fresh one, within the connection's retry policy; the pool gets the
    connection back even if the caller is cancelled."""
    conn = await pool.get_connection()

    async def attempt() -> list[Any]:
        await conn.send_packed_command(payload)
        return await read_replies(conn, count)

    async def failed(error: Exception) -> None:
        await conn.disconnect()

    try:
        return await conn.retry.call_with_retry(attempt, failed)
    except BaseException:
        await discard(conn)
        raise
    finally:
        await asyncio.shield(pool.release(conn))


async def read_replies(conn: Any, count: int) -> list[Any]:
    """`count` replies from `conn` (a Redis error comes back as its exception), under ONE
    timeout of the connection's `socket_timeout` for them all. redis-py's
    `read_response` sets up a timeout context per reply: in a seckill that was ~8 % of a
    node's CPU (docs/performance.md, tenth pass). Its error handling is kept: a timeout
    or socket error closes the connection and raises redis-py's TimeoutError or
    ConnectionError (which the retry policy retries); anything else closes it too.
    `_read_response_from_parser` is redis-py's own (8.x, pinned in pyproject)."""
    read = conn._read_response_from_parser
    replies: list[Any] = []
    try:
        async with asyncio.timeout(conn.socket_timeout):
            for _ in range(count):
                replies.append(await read())
    except asyncio.TimeoutError:
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError(f"Timeout reading from {conn._host_error()}") from None
    except OSError as exc:
        await conn.disconnect(nowait=True)
        raise RedisConnectionError(f"Error while reading from {conn._host_error()} : {exc.args}") from exc
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    if conn.health_check_interval:
        conn.next_health_check = asyncio.get_running_loop().time() + conn.health_check_interval
    return replies


async def discard(conn: Any) -> None:
    """Close a connection whose replies may be half read, before it goes back to its pool,
    so no later caller reads its leftovers or writes to its dead socket. Shielded: it
    happens even when the caller is being cancelled; an error closing it is moot."""
    try:
        await asyncio.shield(conn.disconnect())
    except BaseException:
        pass


async def refresh_slots(cluster: RedisCluster) -> None:
    """Re-read which primary owns which slot (after MOVED, a lost node, a failover)."""
    await cluster.nodes_manager.initialize()


async def node_pipeline(node: ClusterNode, commands: list[PipelineCommand]) -> None:
    """Send `commands` to one cluster node on one connection; each command's `result` is
    its reply or its error. A connection that failed or was interrupted (a cancelled
    caller) is closed before it goes back to the node's pool, so no later caller reads
    its leftovers or writes to its dead socket. A socket found dead before anything
    was written is replaced once; any other failure raises."""
    for attempt in range(2):
        conn = node.acquire_connection()
        sent = False
        try:
            if not conn.is_connected:
                await conn.connect()
            await conn.send_packed_command(conn.pack_commands(c.args for c in commands), check_health=False)
            sent = True
            for c in commands:
                try:
                    c.result = await node.parse_response(conn, c.args[0], **c.kwargs)
                except ResponseError as exc:
                    c.result = exc
            return
        except BaseException as exc:
            await discard(conn)
            if not sent and isinstance(exc, (RuntimeError, AttributeError)):
                # The socket was closed under the connection (uvloop's RuntimeError, or
                # redis-py's writer already None after a failover): nothing was sent.
                if attempt == 0:
                    continue
                raise RedisConnectionError(f"connection to {node.name} lost before sending") from exc
            raise
        finally:
            node.release(conn)
