"""core/pacer.py: a background loop polls fast while it finds work, backs off (doubling)
to a slow rate while it finds none, and a wake or a known due time cuts the wait short."""

from __future__ import annotations

import asyncio

from liveserver.core.pacer import Every, Pacer


def test_the_wait_doubles_while_passes_find_nothing_and_resets_on_work() -> None:
    pacer = Pacer(0.1, 1.0)
    assert [pacer.next_delay(False) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert pacer.next_delay(True) == 0.1
    assert pacer.next_delay(False) == 0.2


async def test_wake_ends_a_wait_at_once() -> None:
    pacer = Pacer(0.1, 30.0)
    for _ in range(10):
        pacer.next_delay(False)  # backed off to 30 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.ensure_future(pacer.wait(False))
    await asyncio.sleep(0)  # it is waiting now
    assert not waiting.done()
    pacer.wake()
    await asyncio.wait_for(waiting, 5)
    assert loop.time() - started < 1.0
    assert pacer.next_delay(False) == 0.2, "a wake resets the back-off"


async def test_a_wake_during_a_pass_makes_the_next_wait_return_at_once() -> None:
    pacer = Pacer(5.0, 30.0)
    pacer.wake()  # work arrived while the loop was busy with a pass
    await asyncio.wait_for(pacer.wait(False), 1)
    waiting = asyncio.ensure_future(pacer.wait(False))  # the next wait waits again
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()


async def test_a_known_due_time_caps_the_wait() -> None:
    pacer = Pacer(0.1, 30.0)
    for _ in range(10):
        pacer.next_delay(False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    pacer.due_in(0.05)
    await asyncio.wait_for(pacer.wait(False), 5)
    assert loop.time() - started < 1.0
    pacer.due_in(-3)
    await asyncio.wait_for(pacer.wait(False), 1)  # overdue: no wait at all


async def test_a_due_time_is_used_by_the_next_wait_only() -> None:
    pacer = Pacer(5.0, 30.0)
    pacer.due_in(0.01)
    await asyncio.wait_for(pacer.wait(False), 1)
    waiting = asyncio.ensure_future(pacer.wait(False))  # no due time now: the back-off holds
    await asyncio.sleep(0.1)
    assert not waiting.done()
    waiting.cancel()


def test_every_is_due_on_the_first_call_and_then_once_per_interval() -> None:
    every = Every(3600)
    assert every.due()
    assert not every.due()
    assert Every(0).due() and Every(0).due()
