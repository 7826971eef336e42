"""A live's end runs as a task of its own (media/live.py): the WHIP DELETE answers within
its bound while a slow teardown goes on, a caller that goes away cannot cut the teardown
half way, and a publisher that starts again at once waits for the old live's end instead
of meeting 409. The slow step is a real one: an RTMP live's remux stop (run on a thread),
held here until the test lets it go."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import AsyncIterator

import pytest
from redis.asyncio import Redis

from harness import RedisServer
from liveserver.engine.engine import RoomEngine
from liveserver.engine.media_store import MediaStore
from liveserver.engine.scripts import ScriptRunner
from liveserver.media.live import Busy, MediaRooms
from liveserver.media.settings import MediaSettings

pytestmark = pytest.mark.timeout(60)
URL = "http://127.0.0.1:1"  # this media process's public URL: the owner it writes in Redis


class SlowStop:
    """A remux stop that blocks its thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.called = threading.Event()

    def __call__(self) -> None:
        self.called.set()
        self.release.wait(20)


@pytest.fixture
async def rooms(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[MediaRooms]:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    scripts = ScriptRunner(redis)
    store = MediaStore(redis, scripts, RoomEngine(redis, scripts, 100))
    media = MediaRooms(MediaSettings(public_url=URL, data_dir=tmp_path), store)
    yield media
    await redis.aclose()


async def test_a_slow_end_answers_in_time_and_a_new_publish_waits_for_it(rooms: MediaRooms, room_name: str) -> None:
    slow = SlowStop()
    old = await rooms.start_rtmp(room_name, slow)
    started = time.monotonic()
    assert await rooms.end_within(room_name, "deleted by the publisher", 0.3) is False
    assert time.monotonic() - started < 2.0
    assert slow.called.is_set() and old.ended is not None and not old.ended.done()

    # The same publisher starts again: it waits for the old live's teardown.
    again = asyncio.ensure_future(rooms.start_rtmp(room_name, SlowStop()))
    done, _ = await asyncio.wait([again], timeout=0.5)
    assert not done, "the new live took the room while the old one was still ending"
    slow.release.set()
    new = await asyncio.wait_for(again, 10)
    assert new is not old and rooms.lives[room_name] is new
    assert old.ended.done() and old.ended.exception() is None
    assert await rooms.store.owner(room_name) == URL
    new.stopper.release.set()  # type: ignore[union-attr]
    assert await rooms.end(room_name, "done") is True
    assert room_name not in rooms.lives and await rooms.store.owner(room_name) is None


async def test_a_caller_that_goes_away_does_not_cut_the_end(rooms: MediaRooms, room_name: str) -> None:
    slow = SlowStop()
    live = await rooms.start_rtmp(room_name, slow)
    caller = asyncio.ensure_future(rooms.end(room_name, "deleted by the publisher"))
    await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, slow.called.wait, 10), 15)
    caller.cancel()  # e.g. the DELETE's client hung up
    await asyncio.gather(caller, return_exceptions=True)
    slow.release.set()
    assert live.ended is not None
    await asyncio.wait_for(asyncio.shield(live.ended), 10)
    # The teardown went to its end: the room is free here and in Redis.
    assert room_name not in rooms.lives and live.session not in rooms.sessions
    assert await rooms.store.owner(room_name) is None
    await rooms.start_rtmp(room_name, SlowStop())  # and can be taken again


async def test_a_second_live_while_one_runs_is_refused(rooms: MediaRooms, room_name: str) -> None:
    first = SlowStop()
    first.release.set()
    await rooms.start_rtmp(room_name, first)
    with pytest.raises(Busy):
        await rooms.start_rtmp(room_name, SlowStop())
    assert await rooms.end(room_name, "done") is True
