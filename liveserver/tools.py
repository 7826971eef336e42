"""Offline commands: `liveserver audit`, `liveserver verify-lottery`, `liveserver worker`.

They talk to the same Redis as the nodes (LIVESERVER_REDIS_URL, or the embedded Redis
socket in LIVESERVER_DATA_DIR when a local server runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from .commerce import lottery_verify
from .commerce.scheduler import Scheduler
from .commerce.store import CommerceEngine
from .config import Settings
from .engine import RoomEngine
from .errors import OpError
from .scripts import ScriptRunner


def _redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    socket = (settings.data_dir / "redis.sock").resolve()
    if not socket.exists():
        raise SystemExit("no LIVESERVER_REDIS_URL and no running embedded Redis in LIVESERVER_DATA_DIR")
    return f"unix://{socket}?db=0"


async def _store(settings: Settings) -> tuple[Redis, CommerceEngine]:
    redis = Redis.from_url(_redis_url(settings), decode_responses=True)
    engine = RoomEngine(redis, ScriptRunner(redis, settings.redis_wait_replicas), settings.stream_maxlen)
    return redis, CommerceEngine(engine, settings.order_ttl_s)


def audit(args: argparse.Namespace) -> int:
    async def run() -> int:
        redis, store = await _store(Settings.from_env())
        try:
            result = await store.audit(args.sale)
        except OpError as exc:
            print(json.dumps({"ok": False, "error": {"code": str(exc.code), "message": exc.message}}))
            return 2
        finally:
            await redis.aclose()
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1

    return asyncio.run(run())


def verify_lottery(args: argparse.Namespace) -> int:
    """Re-check a draw from published data: a JSON file or the public lottery endpoint."""
    if args.file:
        data: dict[str, Any] = json.loads(Path(args.file).read_text())
    else:
        import httpx

        data = httpx.get(args.url, timeout=10).json()
    lottery, result = data.get("lottery", {}), data.get("result")
    if not result:
        print("the lottery has not been drawn yet", file=sys.stderr)
        return 2
    problems = lottery_verify.verify(result["seed"], lottery["commit"], data["entrants_list"], int(lottery["winners"]),
                                     result["winners"])
    print(json.dumps({"ok": not problems, "winners": result["winners"], "entrants": len(data["entrants_list"]),
                      "problems": problems}, indent=2))
    return 0 if not problems else 1


def worker(args: argparse.Namespace) -> int:
    """Run only the scheduler and the order sweeper (no HTTP): the Procfile `worker`."""

    async def run() -> None:
        redis, store = await _store(Settings.from_env())
        scheduler = Scheduler(store)
        scheduler.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("liveserver worker: running scheduled jobs and the order sweeper", flush=True)
        await stop.wait()
        await scheduler.stop()
        await redis.aclose()

    asyncio.run(run())
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("audit", help="check a sale's stock invariant (exit 1 on any breach)")
    p.add_argument("sale", help="sale id, e.g. demo.s1")
    p.set_defaults(func=audit)

    p = sub.add_parser("verify-lottery", help="re-check a lottery draw from its published data")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="GET /api/v1/rooms/{room}/lotteries/{id} of a server")
    src.add_argument("--file", help="that endpoint's JSON saved to a file")
    p.set_defaults(func=verify_lottery)

    p = sub.add_parser("worker", help="run scheduled jobs and order expiry without serving HTTP")
    p.set_defaults(func=worker)
