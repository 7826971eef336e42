"""The one way tests wait for a condition: poll a predicate until it holds, bounded.

`wait_until` (async) and `wait_until_sync` call `predicate()` at once and then every
`interval` seconds; they return its first truthy value, or raise
`AssertionError("timed out after {timeout}s waiting for {what}")` once `timeout` seconds
have passed without one. The predicate is always tried one last time at the deadline.
An exception raised by the predicate propagates at once (so a predicate can also fail
fast, e.g. when a process it waits on has exited).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable, TypeVar, Union

T = TypeVar("T")


async def wait_until(predicate: Callable[[], Union[T, Awaitable[T]]], timeout: float = 10, interval: float = 0.02,
                     what: str = "the condition") -> T:
    """Await until `predicate()` (plain or coroutine function) returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result: Any = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(min(interval, left))


def wait_until_sync(predicate: Callable[[], T], timeout: float = 10, interval: float = 0.02,
                    what: str = "the condition") -> T:
    """Block until `predicate()` returns something truthy (for sync tests and fixtures)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, left))
