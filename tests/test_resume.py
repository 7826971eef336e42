"""Resume: a viewer that reconnects with `since` + `epoch` gets exactly the events it
missed, in order, before anything new (`recovered: true`); a wrong epoch, an offset
from the future or history trimmed away gives `recovered: false` and fresh state."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from harness import Client, Node, RedisServer, admin_headers, create_room, free_port, node_env
from liveserver.engine.keys import RoomKeys
from protocol.offsets import offset_key

MISSED = 50


@pytest.fixture(scope="module")
def redis_server(redis_backend: RedisServer) -> RedisServer:
    """This suite runs twice: on one Redis and on a Redis Cluster (conftest.redis_backend)."""
    return redis_backend


@pytest.fixture(scope="module")
def resume_node(redis_server: RedisServer) -> Iterator[Node]:
    # The writer sends half of the missed events as danmaku: let its burst cover them, and
    # let one batch carry them all (the storm cap, 20 a tick, keeps the oldest and drops the
    # rest of a live batch; on a loaded box the events after the welcome can be one batch).
    env = node_env(redis_server.url, LIVESERVER_DANMAKU_BURST="60", LIVESERVER_DANMAKU_RATE="60",
                   LIVESERVER_DANMAKU_PER_TICK="1000")
    node = Node(port=free_port(), env=env).start()
    yield node
    node.kill()


def notice(node: Node, room: str, text: str, http: httpx.Client | None = None) -> str:
    r = (http or httpx).post(f"{node.http}/api/v1/rooms/{room}/notices", json={"text": text}, headers=admin_headers(), timeout=5)
    assert r.status_code == 201, r.text
    return r.json()["offset"]


def batches(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("t") == "batch"]


async def collect_until(c: Client, offset: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Every frame up to and including the batch that ends at `offset`."""
    seen: list[dict[str, Any]] = []

    def done(frame: dict[str, Any]) -> bool:
        seen.append(frame)
        return frame.get("t") == "batch" and frame["offset"] == offset

    await c.wait_for(done, timeout)
    return seen


def assert_chain(start: str, frames: list[dict[str, Any]]) -> None:
    """Each batch follows the previous one: no gap, no overlap."""
    prev = start
    for f in batches(frames):
        assert f["prev"] == prev, (f["prev"], prev)
        prev = f["offset"]


async def test_resume_replays_exactly_the_missed_events(resume_node: Node, room_name: str) -> None:
    node = resume_node
    create_room(node, room_name)
    writer = await Client.connect(node, room_name, user="writer")
    viewer = await Client.connect(node, room_name, user="viewer")
    start = notice(node, room_name, "before")
    await viewer.wait_event("notice", lambda e: e["offset"] == start)
    since, epoch = viewer.offset, viewer.welcome["epoch"]
    assert since == start
    await viewer.close()

    # 50 events while it is away: host notices and another viewer's danmaku, interleaved.
    missed: list[str] = []
    with httpx.Client() as http:
        for i in range(MISSED):
            if i % 2:
                reply = await writer.request("danmaku", text=f"d{i}")
                assert reply["ok"], reply
                missed.append(reply["data"]["offset"])
            else:
                missed.append(notice(node, room_name, f"n{i}", http))

    back = await Client.connect(node, room_name, user="viewer", since=since, epoch=epoch)
    assert back.welcome["recovered"] is True
    assert back.welcome["epoch"] == epoch
    replay = await collect_until(back, missed[-1])
    got = [e for f in batches(replay) for e in f["events"]]
    assert [e["offset"] for e in got] == missed, "exactly the missed events, in order"
    assert [e.get("text") for e in got] == [f"n{i}" if i % 2 == 0 else f"d{i}" for i in range(MISSED)]
    assert_chain(since, replay)

    # Then new events, continuing the chain.
    new = notice(node, room_name, "after")
    live = await collect_until(back, new)
    assert [e["offset"] for f in batches(live) for e in f["events"]] == [new]
    assert_chain(missed[-1], live)
    await back.close()
    await writer.close()


async def test_resume_with_nothing_missed(resume_node: Node, room_name: str) -> None:
    create_room(resume_node, room_name)
    viewer = await Client.connect(resume_node, room_name, user="v")
    last = notice(resume_node, room_name, "only")
    await viewer.wait_event("notice", lambda e: e["offset"] == last)
    await viewer.close()
    back = await Client.connect(resume_node, room_name, user="v", since=last, epoch=viewer.welcome["epoch"])
    assert back.welcome["recovered"] is True
    new = notice(resume_node, room_name, "next")
    frames = await collect_until(back, new)
    assert [e["offset"] for f in batches(frames) for e in f["events"]] == [new]
    assert_chain(last, frames)
    await back.close()


async def test_resume_from_an_empty_room(resume_node: Node, room_name: str) -> None:
    """Joined while the room had no events yet (offset "0-0"): every event since is missed."""
    create_room(resume_node, room_name)
    viewer = await Client.connect(resume_node, room_name, user="v")
    since, epoch = viewer.offset, viewer.welcome["epoch"]
    assert since == "0-0"
    await viewer.close()
    missed = [notice(resume_node, room_name, f"n{i}") for i in range(5)]
    back = await Client.connect(resume_node, room_name, user="v", since=since, epoch=epoch)
    assert back.welcome["recovered"] is True
    frames = await collect_until(back, missed[-1])
    assert [e["offset"] for f in batches(frames) for e in f["events"]] == missed
    await back.close()


@pytest.mark.parametrize("how", ["wrong-epoch", "future-offset", "malformed-offset", "no-epoch"])
async def test_not_recovered_gets_fresh_state_only(resume_node: Node, room_name: str, how: str) -> None:
    create_room(resume_node, room_name)
    viewer = await Client.connect(resume_node, room_name, user="v")
    first = notice(resume_node, room_name, "seen")
    await viewer.wait_event("notice", lambda e: e["offset"] == first)
    epoch = viewer.welcome["epoch"]
    await viewer.close()
    missed = [notice(resume_node, room_name, f"missed {i}") for i in range(3)]
    since, ep = {
        "wrong-epoch": (first, "0badc0ffee00"),
        "future-offset": ("99999999999999-0", epoch),
        "malformed-offset": ("yesterday", epoch),
        "no-epoch": (first, None),
    }[how]
    back = await Client.connect(resume_node, room_name, user="v", since=since, epoch=ep)
    assert back.welcome["recovered"] is False
    assert back.welcome["epoch"] == epoch
    assert "likes" in back.welcome["state"] and "online" in back.welcome["state"]
    # No replay: batches follow the welcome's offset (the state is as of that offset), so
    # only events after it come, e.g. a missed notice not yet flushed when it joined.
    new = notice(resume_node, room_name, "fresh")
    frames = await collect_until(back, new)
    got = [e["offset"] for f in batches(frames) for e in f["events"]]
    after_welcome = [o for o in [*missed, new] if offset_key(o) > offset_key(back.welcome["offset"])]
    assert got == after_welcome and first not in got
    assert_chain(back.welcome["offset"], frames)
    await back.close()


async def test_history_trimmed_away_is_not_recovered(redis_server: RedisServer, room_name: str) -> None:
    node = Node(port=free_port(), env=node_env(redis_server.url, LIVESERVER_STREAM_MAXLEN="10")).start()
    try:
        create_room(node, room_name)
        viewer = await Client.connect(node, room_name, user="v")
        first = notice(node, room_name, "seen")
        await viewer.wait_event("notice", lambda e: e["offset"] == first)
        epoch = viewer.welcome["epoch"]
        await viewer.close()
        # MAXLEN ~ trims whole stream nodes (100 entries each): publish until `first` is gone.
        r = redis_server.client()
        key = RoomKeys(room_name).events
        last = first
        with httpx.Client() as http:
            for i in range(1000):
                last = notice(node, room_name, f"n{i}", http)
                if i % 50 == 49 and r.xrange(key, count=1)[0][0] != first:
                    break
        oldest = r.xrange(key, count=1)[0][0]
        assert oldest != first, "history was not trimmed"
        assert r.xlen(key) < 1000
        back = await Client.connect(node, room_name, user="v", since=first, epoch=epoch)
        assert back.welcome["recovered"] is False
        new = notice(node, room_name, "fresh")
        frames = await collect_until(back, new)
        got = [e["offset"] for f in batches(frames) for e in f["events"]]
        # Only what follows the welcome's offset, none of the trimmed history. Read from the
        # archive and the live stream together: the node's archiver may trim the stream (to
        # MAXLEN ~ 10, atomically after copying) between the delivery and this read.
        after = {"min": "(" + back.welcome["offset"], "max": new}
        expected = sorted({eid for k in (RoomKeys(room_name).archive, key) for eid, _ in r.xrange(k, **after)},
                          key=offset_key)
        assert got == expected and got[-1] == new and first not in got
        assert_chain(back.welcome["offset"], frames)
        # Resuming from an offset still kept works on the same trimmed stream. Not `oldest`:
        # the archiver trims after it has copied the newest events (archive_copy.lua), which
        # may drop `oldest` by now; `MAXLEN ~ 10` never drops one of the last 10 entries.
        kept_offset = r.xrevrange(key, count=2)[1][0]
        kept = await Client.connect(node, room_name, user="v2", since=kept_offset, epoch=epoch)
        assert kept.welcome["recovered"] is True
        await back.close()
        await kept.close()
    finally:
        node.kill()
