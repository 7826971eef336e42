"""The stall watch: a loop blocked past its limit leaves every thread's stack in the
log (that is how a hang in CI can be read afterwards); a stopped watch leaves none."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, sys, time
from liveserver.core.stallwatch import StallWatch

def blocking_call_in_the_loop():
    time.sleep(1.5)

def blocking_after_stop():
    time.sleep(1.5)

async def main():
    watch = StallWatch(0.5)
    watch.start()
    await asyncio.sleep(0.3)
    if sys.argv[1] == "block":
        blocking_call_in_the_loop()
    await watch.stop()
    blocking_after_stop()

asyncio.run(main())
"""


def run(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_blocked_loop_dumps_every_stack() -> None:
    err = run("block")
    assert "Timeout" in err and "blocking_call_in_the_loop" in err
    assert "blocking_after_stop" not in err


def test_a_stopped_watch_dumps_nothing() -> None:
    assert run("idle") == ""
