"""In-process units of the hub and of the commerce kinds (no Redis, no sockets): the
danmaku storm cap, the flush decision, the adaptive flush and each kind's state projection."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol.codec import MSGPACK

from liveserver.commerce import Commerce
from liveserver.commerce.coupons import Coupons
from liveserver.commerce.lotteries import Lotteries
from liveserver.commerce.polls import Polls
from liveserver.commerce.sales import Sales
from liveserver.engine.engine import RoomSnapshot
from liveserver.engine.keys import Layout
from liveserver.hub.chat import apply_bans, banned_users, cap_danmaku, visible
from liveserver.core.auth import Identity
from liveserver.core.config import Settings
from liveserver.core.metrics import Metrics
from liveserver.hub.direct import ws_frame
from liveserver.hub.flush import counters_period, may_flush_early, plan_flush
from liveserver.hub.hub import RoomHub
from liveserver.hub.room import LocalRoom
from liveserver.hub.viewer import Viewer
from waiting import wait_until


def ev(n: int, kind: str = "danmaku", **body: Any) -> dict[str, Any]:
    return {"k": kind, "offset": f"{n}-0", "ts": n, **body}


# -- storm cap ------------------------------------------------------------------------------
def test_cap_keeps_priority_danmaku_first_then_by_offset() -> None:
    events = [ev(1), ev(2, role="host"), ev(3), ev(4, badge="vip"), ev(5), ev(6, "notice", text="hi")]
    kept, dropped = cap_danmaku(events, 3)
    assert [e["offset"] for e in kept] == ["1-0", "2-0", "4-0", "6-0"]  # host, badge, then the oldest
    assert dropped == 2


def test_cap_under_the_limit_keeps_everything() -> None:
    events = [ev(1), ev(2)]
    assert cap_danmaku(events, 2) == (events, 0)


def test_ban_events_are_never_visible() -> None:
    assert visible([ev(1, "ban", user="u"), ev(2)]) == [ev(2)]


def test_ban_events_keep_a_rooms_copy_of_its_bans_in_order() -> None:
    events = [ev(1, "ban", user="a", banned=True), ev(2, "ban", user="b"), ev(3, "ban", user="a", banned=False),
              ev(4), ev(5, "ban", user="c", banned=False)]
    bans = {"c", "old"}
    apply_bans(bans, events)
    assert bans == {"b", "old"}  # an event without `banned` (older streams) is a ban
    assert banned_users(events) == ["a", "b"]  # whose connections close: the bans only


# -- flush decision ---------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def apply(self, room: LocalRoom, event: dict[str, Any]) -> None:
        self.seen.append(event["offset"])


def room_with(*events: dict[str, Any]) -> LocalRoom:
    room = LocalRoom(name="r", epoch="e", flushed="0-0")
    room.state = {"likes": 0, "online": 1, "danmaku_dropped": 0}
    room.sent_state = dict(room.state)
    room.pending = list(events)
    return room


def test_quiet_room_sends_nothing() -> None:
    room = room_with()
    assert plan_flush(room, [], 20).frame is None


def test_state_change_alone_sends_a_batch_with_only_the_change() -> None:
    room = room_with()
    room.state["likes"] = 7
    plan = plan_flush(room, [], 20)
    assert plan.frame is not None and plan.frame["state"] == {"likes": 7} and plan.frame["events"] == []
    assert plan_flush(room, [], 20).frame is None  # sent: nothing changed since


def test_counters_alone_go_out_at_most_once_per_interval_but_ride_along_any_batch() -> None:
    room = room_with()
    room.state["online"] = 7
    assert plan_flush(room, [], 20, now=10.0, counters_every_s=1.0).frame["state"] == {"online": 7}
    room.state["online"] = 2  # a join storm: the count changes every tick
    assert plan_flush(room, [], 20, now=10.1, counters_every_s=1.0).frame is None
    room.state["likes"] = 5
    assert plan_flush(room, [], 20, now=10.9, counters_every_s=1.0).frame is None
    # An event goes out at once, and carries the counters as they are now.
    room.pending.append(ev(1))
    plan = plan_flush(room, [], 20, now=10.95, counters_every_s=1.0)
    assert plan.frame["state"] == {"online": 2, "likes": 5} and len(plan.frame["events"]) == 1
    room.state["online"] = 3
    assert plan_flush(room, [], 20, now=11.5, counters_every_s=1.0).frame is None
    assert plan_flush(room, [], 20, now=11.96, counters_every_s=1.0).frame["state"] == {"online": 3}
    # Any other state change is not held back.
    room.state["card"] = {"id": "mug"}
    room.state["online"] = 4
    assert plan_flush(room, [], 20, now=12.0, counters_every_s=1.0).frame["state"] == {"card": {"id": "mug"}, "online": 4}


def test_stock_moving_is_a_counter_but_sold_out_and_phase_go_at_once() -> None:
    room = room_with()
    sale = {"phase": "live", "stock": 100, "price": 999}
    room.state["sales"] = {"s1": dict(sale)}
    assert plan_flush(room, [], 20, now=1.0, counters_every_s=1.0).frame is not None  # a new sale: at once
    room.state["sales"] = {"s1": {**sale, "stock": 60}}  # a rush: stock moves every tick
    assert plan_flush(room, [], 20, now=1.1, counters_every_s=1.0).frame is None
    room.state["sales"] = {"s1": {**sale, "stock": 20}}
    assert plan_flush(room, [], 20, now=1.5, counters_every_s=1.0).frame is None
    assert plan_flush(room, [], 20, now=2.0, counters_every_s=1.0).frame["state"]["sales"]["s1"]["stock"] == 20
    room.state["sales"] = {"s1": {**sale, "stock": 0}}  # sold out: at once
    assert plan_flush(room, [], 20, now=2.1, counters_every_s=1.0).frame["state"]["sales"]["s1"]["stock"] == 0
    room.state["sales"] = {"s1": {**sale, "stock": 0, "phase": "ended"}}  # a phase change: at once
    assert plan_flush(room, [], 20, now=2.2, counters_every_s=1.0).frame is not None
    room.state["coupons"] = {"c1": {"left": 5, "phase": "live"}}
    assert plan_flush(room, [], 20, now=2.3, counters_every_s=1.0).frame is not None  # a new drop
    room.state["coupons"] = {"c1": {"left": 4, "phase": "live"}}
    assert plan_flush(room, [], 20, now=2.4, counters_every_s=1.0).frame is None


def test_events_chain_from_the_last_flush_and_reach_every_source() -> None:
    source = Recorder()
    room = room_with(ev(1), ev(2, "ban", user="bad"), ev(3))
    plan = plan_flush(room, [source], 1)
    assert source.seen == ["1-0", "2-0", "3-0"]
    assert plan.banned == ["bad"]
    assert plan.frame is not None
    assert (plan.frame["prev"], plan.frame["offset"]) == ("0-0", "3-0")  # the ban's offset still counts
    assert [e["offset"] for e in plan.frame["events"]] == ["1-0"]  # cap 1: one danmaku, no ban
    assert plan.dropped == 1 and room.state["danmaku_dropped"] == 1 and plan.frame["state"] == {"danmaku_dropped": 1}


def test_only_internal_events_still_advance_the_chain() -> None:
    room = room_with(ev(9, "ban", user="x"))
    plan = plan_flush(room, [], 20)
    assert plan.frame is not None and plan.frame["events"] == [] and plan.frame["offset"] == "9-0"


# -- commerce kinds' state projection ----------------------------------------------------------
class NoEngine:
    """Projection never touches Redis: an engine with nothing behind it proves it."""

    redis = scripts = None
    stream_maxlen = 0


def commerce() -> Commerce:
    return Commerce(NoEngine(), 900)  # type: ignore[arg-type]


def snapshot(**objects: list[tuple[str, dict[str, str], list[Any]]]) -> RoomSnapshot:
    return RoomSnapshot(meta={"card": '{"id": "p1"}'}, first=None, last=None, likes=0, online=0, objects=objects)


FAR = str(2**42)


def test_open_snapshot_projects_every_kind() -> None:
    c = commerce()
    state = c.state.loaded("r", snapshot(
        sales=[("r.s1", {"id": "r.s1", "room": "r", "product_id": "p1", "title": "Mug", "price": "100", "initial": "5",
                         "stock": "3", "per_user_limit": "1", "start_ms": "0", "end_ms": FAR}, [])],
        coupons=[("r.c1", {"id": "r.c1", "room": "r", "title": "5 off", "amount": "500", "quantity": "10", "left": "4",
                           "start_ms": "0", "end_ms": FAR, "ev_drop": "1"}, []),
                 ("r.c2", {"id": "r.c2", "room": "r", "title": "later", "amount": "1", "quantity": "1", "left": "1",
                           "start_ms": FAR, "end_ms": FAR}, [])],
        lotteries=[("r.l1", {"id": "r.l1", "room": "r", "prize": "TV", "winners": "1", "keyword": "go", "commit": "c",
                             "seed": "SECRET", "phase": "live", "start_ms": "0", "end_ms": FAR}, [12])],
        polls=[("r.p1", {"id": "r.p1", "room": "r", "question": "?", "options": "2", "labels": '["a","b"]',
                         "start_ms": "0", "end_ms": FAR}, [{"1": "4"}])],
    ))
    assert state["card"] == {"id": "p1"}
    assert state["sales"]["r.s1"]["stock"] == 3 and state["sales"]["r.s1"]["phase"] == "live"
    assert set(state["coupons"]) == {"r.c1"}  # a drop that has not fired stays a surprise
    assert state["lotteries"]["r.l1"]["entrants"] == 12
    assert "SECRET" not in repr(state)  # the seed is never shown before the draw
    assert state["polls"]["r.p1"]["tallies"] == [0, 4]


async def test_events_update_each_kind() -> None:  # a sold-out event starts the gate's read (a task)
    c = commerce()
    c.state.loaded("r", snapshot())
    room = LocalRoom(name="r", epoch="e", flushed="0-0")
    c.state.apply(room, {"k": "sale", "sale": {"id": "r.s1", "phase": "sold_out", "stock": 0, "start_ms": 0, "end_ms": 1}})
    c.state.apply(room, {"k": "lottery", "lottery": {"id": "r.l1", "phase": "live", "end_ms": 5, "prize": "TV"}})
    c.state.apply(room, {"k": "lottery_result", "lottery_id": "r.l1", "entrants": 3})
    c.state.apply(room, {"k": "card", "product": {"id": "p2"}})
    assert room.state["sales"]["r.s1"]["stock"] == 0
    assert room.state["lotteries"]["r.l1"] == {**room.state["lotteries"]["r.l1"], "phase": "drawn", "entrants": 3}
    assert room.state["card"] == {"id": "p2"}


def test_tick_reads_only_open_objects() -> None:
    c = commerce()
    sales, lotteries, polls, coupons = c.kind(Sales), c.kind(Lotteries), c.kind(Polls), c.kind(Coupons)
    now = 10_000
    assert sales.reads("r", "r.s1", {"end_ms": now - 5_000}, now) == []  # ended long ago
    assert sales.reads("r", "r.s1", {"end_ms": now + 1}, now)[0].field == "stock"
    assert lotteries.reads("r", "r.l1", {"phase": "drawn"}, now) == []
    assert polls.reads("r", "r.p1", {"end_ms": now}, now)[0].op == "hgetall"
    assert coupons.reads("r", "r.c1", {"end_ms": now}, now)[0].field == "left"


# -- adaptive flush ------------------------------------------------------------------------------
def test_counts_alone_go_out_less_often_in_a_big_room() -> None:
    assert counters_period(1000, 50, 2000) == 1.0  # a small room: LIVESERVER_COUNTERS_MS
    assert counters_period(1000, 10_000, 2000) == 5.0  # 10,000 writes at most 2,000 a second
    assert counters_period(0, 0, 2000) == 0.0  # 0: every tick, as documented


def test_quiet_room_may_flush_early_busy_room_may_not() -> None:
    room = room_with()
    tick, coalesce = 0.1, 0.002
    assert may_flush_early(room, 10.0, tick, 10.05, coalesce)  # nothing sent for ages
    room.last_flush_at = 9.97
    assert not may_flush_early(room, 10.0, tick, 10.05, coalesce)  # last batch under half a tick ago
    room.last_flush_at = 9.9
    room.events_last_tick = 1  # 10-20 msgs/s: a batch went out at the last tick, still quiet
    assert may_flush_early(room, 10.0, tick, 10.05, coalesce)
    room.events_last_tick = 3  # a storm: the tick sends
    assert not may_flush_early(room, 10.0, tick, 10.05, coalesce)
    room.events_last_tick, room.events_this_tick = 0, 3  # a storm starting now
    assert not may_flush_early(room, 10.0, tick, 10.05, coalesce)
    room.events_this_tick = 1
    assert not may_flush_early(room, 10.0, tick, 10.001, coalesce)  # the tick is due sooner anyway
    room.early = object()
    assert not may_flush_early(room, 10.0, tick, 10.05, coalesce)  # one is already scheduled


def test_thirteen_messages_a_second_each_go_out_at_once() -> None:
    """The rate that broke the old rule ("no batch since the last tick"): with a 100 ms tick
    and a message every 77 ms, one message landed in a tick's batch, and from then on every
    message waited for a tick (p50 66 ms against bare websockets' 17 in the fan-out bench)."""
    room = room_with()
    tick, coalesce = 0.1, 0.002
    arrivals = [i * (1 / 13) + 0.005 for i in range(40)]
    next_tick, early = 0.1, 0
    for t in arrivals:
        while next_tick <= t:  # the ticks in between
            room.events_last_tick, room.events_this_tick = room.events_this_tick, 0
            next_tick += tick
        room.events_this_tick += 1
        if may_flush_early(room, t, tick, next_tick, coalesce):
            early += 1
            room.last_flush_at = t + coalesce
    assert early >= len(arrivals) - 1


class TickEngine:
    """What `RoomHub.tick` needs of an engine, in memory: the counters script."""

    redis = None
    layout = Layout()  # one Redis: the hub's stream reader is the single-connection one

    def __init__(self) -> None:
        self.likes = 0
        self.added: dict[tuple[str, str], int] = {}  # what tick.lua keeps in lc:{room}:likes-by-node

    async def report_counters(self, room: str, node: str, likes_taken: int, online: int, ttl_ms: int) -> tuple[int, int]:
        added = self.added.get((room, node), 0)
        if likes_taken > added:
            self.likes += likes_taken - added
            self.added[room, node] = likes_taken
        return self.likes, online


def hub_with_viewer(tick_ms: int = 1000, **settings: Any) -> tuple[RoomHub, LocalRoom, Viewer]:
    hub = RoomHub(TickEngine(), Settings(secret="s" * 32, tick_ms=tick_ms, **settings), "n1", Metrics(), "redis://unused")  # type: ignore[arg-type]
    room = room_with()
    hub.rooms[room.name] = room
    viewer = Viewer("c1", Identity(id="u1", name="u1", role="viewer"), MSGPACK, 1 << 20)
    viewer.paused = False
    viewer.room = room
    room.viewers.add(viewer)
    return hub, room, viewer


def batches(viewer: Viewer) -> list[dict[str, Any]]:
    """What the viewer's writer would write now (and marks it written)."""
    out = viewer.take_frames() or []
    for data in out:
        viewer.sent(data)
    return [MSGPACK.decode(data) for data in out]


async def test_quiet_room_flushes_within_the_coalescing_window() -> None:
    hub, room, viewer = hub_with_viewer(tick_ms=1000, flush_coalesce_ms=2)
    loop = asyncio.get_running_loop()
    hub._next_tick = loop.time() + 1.0
    started = loop.time()
    hub._on_events("r", [ev(1)])
    hub._on_events("r", [ev(2)])  # within the window: coalesced into the same batch
    await wait_until(lambda: viewer.queued_bytes, timeout=0.5, interval=0.001, what="the early batch")
    assert loop.time() - started < 0.5  # long before the 1 s tick
    [frame] = batches(viewer)
    assert (frame["prev"], frame["offset"]) == ("0-0", "2-0")
    assert [e["offset"] for e in frame["events"]] == ["1-0", "2-0"]
    assert room.flushed == "2-0" and room.early is None


async def test_within_half_a_tick_of_an_early_batch_events_wait_for_the_tick_and_chain_on() -> None:
    hub, room, viewer = hub_with_viewer(tick_ms=1000)
    loop = asyncio.get_running_loop()
    hub._next_tick = loop.time() + 1.0
    hub._on_events("r", [ev(1)])
    await wait_until(lambda: viewer.queued_bytes, timeout=0.5, interval=0.001, what="the early batch")
    batches(viewer)
    hub._on_events("r", [ev(2)])  # under half a tick after the early batch
    assert room.early is None and room.pending and not viewer.queued_bytes
    hub.like(viewer, 3)
    await hub.tick()  # the tick sends it, with the counters refreshed per tick
    [frame] = batches(viewer)
    assert (frame["prev"], frame["offset"]) == ("1-0", "2-0") and frame["state"] == {"likes": 3}


async def test_busy_room_sends_one_batch_per_tick() -> None:
    hub, room, viewer = hub_with_viewer(tick_ms=1000)
    loop = asyncio.get_running_loop()
    hub._next_tick = loop.time() + 1.0
    room.events_last_tick = 40  # the last tick interval was a storm: the room is busy
    for n in range(1, 50):
        hub._on_events("r", [ev(n)])
    assert room.early is None and not viewer.queued_bytes
    await hub.tick()
    [frame] = batches(viewer)
    assert frame["offset"] == "49-0" and len(frame["events"]) == 20  # one batch, storm cap as before


async def test_adaptive_flush_off_waits_for_the_tick() -> None:
    hub, room, viewer = hub_with_viewer(tick_ms=1000, adaptive_flush=False)
    hub._next_tick = asyncio.get_running_loop().time() + 1.0
    hub._on_events("r", [ev(1)])
    assert room.early is None and room.pending == [ev(1)]


def test_ws_frame_is_what_websockets_would_send() -> None:
    """The hub frames a batch once for every viewer: byte for byte websockets' own frame."""
    from websockets.frames import Frame as WsFrame, Opcode

    for n in (0, 125, 126, 65535, 65536):
        for text in (True, False):
            data = b"x" * n
            expected = WsFrame(Opcode.TEXT if text else Opcode.BINARY, data).serialize(mask=False, extensions=[])
            assert ws_frame(data, text) == expected, (n, text)
