"""Offline commands: `liveserver audit`, `liveserver verify-lottery`, `liveserver worker`.

They talk to the same Redis as the nodes (LIVESERVER_REDIS_URL, or the embedded Redis
socket in LIVESERVER_DATA_DIR when a local server runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from liveserver.commerce import Commerce, lottery_verify
from liveserver.commerce.groups import Groups
from liveserver.commerce.sales import Sales
from liveserver.core.config import Settings
from liveserver.core.errors import OpError
from liveserver.core.tasks import within
from liveserver.engine.connect import connect
from liveserver.engine.engine import RoomEngine
from liveserver.reports.archive import Archiver
from liveserver.reports.lifecycle import REMINDER_JOB, reminder_action
from liveserver.webhooks.worker import WebhookWorker


def _redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    socket = (settings.data_dir / "redis.sock").resolve()
    if not socket.exists():
        raise SystemExit("no LIVESERVER_REDIS_URL and no running embedded Redis in LIVESERVER_DATA_DIR")
    return f"unix://{socket}?db=0"


async def _commerce(settings: Settings) -> tuple[RoomEngine, Commerce]:
    engine = await connect(_redis_url(settings), settings)
    return engine, Commerce(engine, settings.order_ttl_s)


def audit(args: argparse.Namespace) -> int:
    async def run() -> int:
        engine, commerce = await _commerce(Settings.from_env())
        try:
            # `<room>.g<N>` is a group deal; anything else a sale (whose audit covers coupons at checkout)
            if args.sale.rpartition(".")[2].startswith("g"):
                result = await commerce.kind(Groups).audit(args.sale)
            else:
                result = await commerce.kind(Sales).audit(args.sale)
        except OpError as exc:
            print(json.dumps({"ok": False, "error": {"code": str(exc.code), "message": exc.message}}))
            return 2
        finally:
            await engine.close()
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
    """Run the scheduler, the order sweeper and webhook delivery (no HTTP): the Procfile `worker`."""

    async def run() -> None:
        settings = Settings.from_env()
        engine, commerce = await _commerce(settings)
        scheduler = commerce.scheduler()
        scheduler.actions[REMINDER_JOB] = reminder_action(engine)
        scheduler.start()
        webhooks = WebhookWorker(engine.webhooks, settings, entry_handlers=commerce.order_entry_handlers())
        webhooks.start()
        archiver = Archiver(engine.reports)
        archiver.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("liveserver worker: running scheduled jobs, the order sweeper and webhook delivery, the archiver", flush=True)
        await stop.wait()
        done = await within(5, "stopping the worker", webhooks.stop(), archiver.stop(), scheduler.stop())
        done = done and await within(2, "closing Redis", engine.close())
        if done:  # asyncio.run cancels what is left and waits for it, unbounded: bound it here
            left = asyncio.all_tasks() - {asyncio.current_task()}
            for task in left:
                task.cancel()
            done = await within(2, "leftover tasks", *left)
        if not done:
            # A task that does not end on cancel would also hang asyncio.run's own clean-up:
            # every effect of the worker is idempotent and in Redis, so leave now.
            print("liveserver worker: background loops did not stop in time; exiting anyway", flush=True)
            os._exit(0)

    asyncio.run(run())
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("audit", help="check a sale's (with its coupons at checkout) or a group deal's invariants "
                                     "(exit 1 on any breach)")
    p.add_argument("sale", help="sale id, e.g. demo.s1, or group deal id, e.g. demo.g1")
    p.set_defaults(func=audit)

    p = sub.add_parser("verify-lottery", help="re-check a lottery draw from its published data")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="GET /api/v1/rooms/{room}/lotteries/{id} of a server")
    src.add_argument("--file", help="that endpoint's JSON saved to a file")
    p.set_defaults(func=verify_lottery)

    p = sub.add_parser("worker", help="run scheduled jobs, order expiry and webhook delivery without serving HTTP")
    p.set_defaults(func=worker)
