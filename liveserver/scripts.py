"""Lua scripts (one file each in `liveserver/lua/`) and the runner that calls them.

The runner auto-pipelines: every script call made during one event-loop turn goes to
Redis in one pipeline on one connection, so 5,000 concurrent `buy`s cost a handful of
round trips, not 5,000. EVALSHA that meets NOSCRIPT (Redis restarted, failover) loads
the script and retries only those calls; a NOSCRIPT call never ran, so retrying is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

MAX_PIPELINE = 1000
log = logging.getLogger("liveserver.scripts")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> "LuaScript":
        source = resources.files("liveserver").joinpath("lua", f"{name}.lua").read_text()
        return cls(name=name, source=source, sha=hashlib.sha1(source.encode()).hexdigest())


@dataclass(slots=True)
class Call:
    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Any]
    future: "asyncio.Future[Any]"
    durable: bool


def _is_noscript(value: object) -> bool:
    return isinstance(value, NoScriptError) or (isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT"))


class ScriptRunner:
    def __init__(self, redis: Redis, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> None:
        self._redis = redis
        # With replicas, a pipeline holding a durable call (a buy) ends with WAIT, so the
        # reply goes out only once N replicas have the reservation (see docs/commerce.md).
        self._wait = (wait_replicas, wait_timeout_ms)
        self._scripts: dict[str, LuaScript] = {}
        self._queue: list[Call] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def script(self, name: str) -> LuaScript:
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = LuaScript.load(name)
        return found

    async def load_all(self, names: Sequence[str]) -> None:
        for name in names:
            s = self.script(name)
            await self._redis.script_load(s.source)

    def run(self, name: str, keys: Sequence[str], args: Sequence[Any], durable: bool = False) -> "asyncio.Future[Any]":
        """Queue one call; the result (or the Redis error) arrives on the returned future."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append(Call(self.script(name), keys, args, fut, durable))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_PIPELINE):
            task = asyncio.ensure_future(self._send(queue[start : start + MAX_PIPELINE]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, calls: list[Call]) -> None:
        pending = calls
        for _attempt in range(3):
            try:
                results = await self._execute(pending)
            except Exception as exc:  # connection lost etc.: every caller gets the error
                for call in pending:
                    if not call.future.done():
                        call.future.set_exception(exc)
                return
            retry = []
            for call, result in zip(pending, results):
                fut = call.future
                if fut.done():
                    continue
                if _is_noscript(result):
                    retry.append(call)
                elif isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
            if not retry:
                return
            for script in {c.script.name: c.script for c in retry}.values():
                await self._redis.script_load(script.source)
            pending = retry
        for call in pending:
            if not call.future.done():
                call.future.set_exception(RuntimeError("script could not be loaded"))

    async def _execute(self, calls: list[Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        replicas, timeout_ms = self._wait
        durable = replicas > 0 and any(c.durable for c in calls)
        if durable:
            pipe.execute_command("WAIT", replicas, timeout_ms)
        results = await pipe.execute(raise_on_error=False)
        if durable:
            acked = results.pop()
            if isinstance(acked, int) and acked < replicas:
                log.warning("WAIT: %d of %d replicas acknowledged within %d ms", acked, replicas, timeout_ms)
        return results
