"""Ending the processes a benchmark started: server processes (Popen) and client
generator processes (multiprocessing), each given a moment to stop before it is forced."""

from __future__ import annotations

import subprocess
from typing import Any, Iterable


def stop_servers(procs: Iterable["subprocess.Popen[bytes]"], timeout: float = 10) -> None:
    """SIGTERM every one still running, then wait for each; SIGKILL one that outlives `timeout`."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def join_generators(procs: Iterable[Any], timeout: float = 5) -> None:
    """Wait for generator processes told to stop; terminate one still alive after `timeout`."""
    for proc in procs:
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
