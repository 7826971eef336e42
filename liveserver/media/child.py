"""The media process as a child of a web node (the default single-command setup):
`liveserver serve` starts `liveserver media` on a free port unless LIVESERVER_MEDIA=0."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("liveserver.media")


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def media_log(port: int | str) -> Path:
    """Where the media child on `port` writes its log (appended across restarts)."""
    return Path(tempfile.gettempdir()) / f"liveserver-media-{port}.log"


class MediaChild:
    """`liveserver media` run by a web node (the default single-command setup)."""

    def __init__(self, redis_url_: str) -> None:
        host = os.environ.get("LIVESERVER_MEDIA_HOST", "127.0.0.1")
        port = int(os.environ.get("LIVESERVER_MEDIA_PORT") or 0) or _free_port(host)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.url = (os.environ.get("LIVESERVER_MEDIA_PUBLIC_URL") or f"http://{shown}:{port}").rstrip("/")
        env = dict(os.environ, LIVESERVER_REDIS_URL=redis_url_, LIVESERVER_MEDIA_PUBLIC_URL=self.url)
        self.log = media_log(port)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "liveserver", "media", "--host", host, "--port", str(port), "--log-level", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                # Its own session, as the embedded Redis: a terminal's Ctrl-C reaches only the
                # web node, which stops this child in its orderly shutdown.
                start_new_session=True,
            )

    def stop(self, timeout: float = 8) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("the media process (pid %d) did not stop within %.0f s of SIGTERM; killing it", self.proc.pid, timeout)
                self.proc.kill()
                self.proc.wait(timeout=5)


def spawn(redis_url_: str) -> MediaChild | None:
    """Start the media child unless LIVESERVER_MEDIA=0 (then LIVESERVER_MEDIA_URL, if set,
    names the media process new publishers are sent to)."""
    if os.environ.get("LIVESERVER_MEDIA", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    return MediaChild(redis_url_)


def local_url(child: MediaChild | None) -> str | None:
    return child.url if child is not None else (os.environ.get("LIVESERVER_MEDIA_URL") or None)

