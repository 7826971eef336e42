"""`liveserver media`: the subcommand (aiortc and PyAV are imported only when it runs)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from liveserver.media.process import main

    return main(args)


def add_command(sub: Any) -> None:
    parser = sub.add_parser("media", help="run the media process (WHIP/RTMP in, WHEP/HLS out)")
    parser.add_argument("--host", default=os.environ.get("LIVESERVER_MEDIA_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("LIVESERVER_MEDIA_PORT") or 8001))
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=_run)
