"""A background loop that polls Redis stops when the node stops. The node's stops
(archiver, scheduler, webhooks, the stream readers) go through `cancel_and_wait`.
redis-py 8's asyncio client swallows about one task cancellation in twenty during a
command: the loop goes on to its next command, and a stop that cancelled once hung for
its whole 10 s bound (seen in the suite). `cancel_and_wait` repeats its cancel until the
task is done; with a single cancel this test fails on redis-py 8.0-8.2."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import BlockingConnectionPool, Redis

from harness import RedisServer
from liveserver.core.tasks import cancel_and_wait

ROUNDS = 150


async def test_cancel_and_wait_ends_a_loop_over_redis_commands(redis_server: RedisServer, room_name: str) -> None:
    # The pool and commands of the node's loops (engine/connect.py, the webhook fan-out's
    # reads): a claim, then a blocking group read, over and over.
    pool = BlockingConnectionPool.from_url(redis_server.url, decode_responses=True, health_check_interval=30,
                                           max_connections=64, timeout=10)
    redis = Redis(connection_pool=pool)
    stream = f"cancel-test:{room_name}"
    await redis.xgroup_create(stream, "g", mkstream=True)

    async def poller() -> None:
        while True:
            await redis.xautoclaim(stream, "g", "c", 1000, "0-0", count=100)
            await redis.xreadgroup("g", "c", {stream: ">"}, count=100, block=50)

    async def writer() -> None:
        while True:
            await redis.xadd(stream, {"n": "1"}, maxlen=1000)
            await asyncio.sleep(random.random() * 0.01)

    feeding = asyncio.ensure_future(writer())
    rng = random.Random(7)
    hung = 0
    try:
        for _ in range(ROUNDS):
            task = asyncio.ensure_future(poller())
            await asyncio.sleep(rng.random() * 0.02)
            stop = asyncio.ensure_future(cancel_and_wait(task))
            done, _ = await asyncio.wait([stop], timeout=2)
            if not done:
                hung += 1
                stop.cancel()
                while not task.done():  # clean up, then count it
                    task.cancel()
                    await asyncio.wait([task], timeout=0.1)
    finally:
        await cancel_and_wait(feeding)
        await redis.delete(stream)
        await redis.aclose()
    assert hung == 0, f"{hung} of {ROUNDS} stops did not end their task within 2 s"


async def test_cancel_and_wait_returns_for_done_and_failed_tasks() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.ensure_future(fails())
    finished = asyncio.ensure_future(asyncio.sleep(0))
    await asyncio.wait([failed, finished])
    await asyncio.wait_for(cancel_and_wait(failed, finished, None), 2)  # no raise, no wait
