"""The ASGI app of one node: `create_app()` (also a uvicorn factory,
`uvicorn --factory liveserver.edge.app:create_app`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from protocol import ErrorCode

from liveserver.commerce import Commerce
from liveserver.commerce.sales import Sales
from liveserver.core import auth
from liveserver.core.config import Settings
from liveserver.core.http_api import API, error_response
from liveserver.core.metrics import Metrics
from liveserver.core.gcpolicy import GcPolicy
from liveserver.core.stallwatch import StallWatch
from liveserver.core.tasks import cancel_and_wait, within
from liveserver.edge import pages
from liveserver.edge.api import rooms as _rooms  # noqa: F401  (registers endpoints)
from liveserver.edge.demo import DEMO_ROOM, ensure_demo_room
from liveserver.edge.services import Services
from liveserver.edge.ws import ViewerRouteMiddleware, serve_viewer, viewer_endpoint
from liveserver.engine.connect import connect
from liveserver.engine.embedded import EmbeddedRedis
from liveserver.engine.errors import is_unavailable
from liveserver.hub.hub import RoomHub
from liveserver.media import web as media
from liveserver.reports import api as _reports_api  # noqa: F401  (registers endpoints)
from liveserver.reports.archive import Archiver
from liveserver.reports.lifecycle import REMINDER_JOB, reminder_action
from liveserver.webhooks import api as _webhooks_api  # noqa: F401  (registers endpoints)
from liveserver.webhooks.worker import WebhookWorker

log = logging.getLogger("liveserver")

PAGES = Path(__file__).parent / "pages"
READY_TIMEOUT_S = 1.0
PROTOCOL_JS = Path(__file__).resolve().parents[2] / "protocol" / "js"


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "node": request.app.state.services.node_id})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        # Bounded: a stalled Redis (no answer, socket still open) makes the node unready
        # within READY_TIMEOUT_S instead of hanging the probe.
        await asyncio.wait_for(services.engine.ping(), READY_TIMEOUT_S)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        return JSONResponse({"ready": False, "error": {"code": "internal", "message": f"redis: {reason}"}}, status_code=503)
    return JSONResponse({"ready": True, "node": services.node_id})


async def metrics(request: Request) -> Response:
    return PlainTextResponse(request.app.state.services.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return JSONResponse(API.openapi())


async def http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        code = {401: ErrorCode.UNAUTHORIZED, 403: ErrorCode.FORBIDDEN, 404: ErrorCode.NOT_FOUND}.get(exc.status_code, ErrorCode.BAD_REQUEST)
        return error_response(code, str(exc.detail), status=exc.status_code)
    if is_unavailable(exc):  # Redis unreachable or failing over: retryable, not a fault
        log.warning("%s: storage unavailable (%s)", request.url.path, exc)
        return error_response(ErrorCode.INTERNAL, "storage unavailable; retry", status=503, retry=True)
    log.exception("unhandled error on %s", request.url.path)
    return error_response(ErrorCode.INTERNAL, "internal error", status=500)


def without_password(url: str) -> str:
    """`url` with the password of its userinfo (`redis://user:pw@host`) masked, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{parts.netloc.rpartition('@')[2]}"))


def banner(settings: Settings, redis_where: str, services: Services) -> str:
    """What `liveserver serve` prints once ready. Tokens only with the demo room (the
    quick start's; its host token is limited to that room): a production node's log,
    which others may read, carries no token and no Redis password."""
    base = os.environ.get("LIVESERVER_PUBLIC_URL", "").rstrip("/")
    if not base:
        return ""
    lines = [
        f"liveserver node {services.node_id} ready",
        f"  redis:    {without_password(redis_where)}",
    ]
    if not settings.demo_room:
        lines.append("  (no demo room: mint tokens with `liveserver token`)")
        return "\n".join(lines)
    host_token = auth.mint(settings.secret, "host", role="host", name="Host", room=DEMO_ROOM)
    viewer_token = auth.mint(settings.secret, "viewer-" + secrets.token_hex(2), role="viewer", name="Viewer")
    lines += [
        f"  viewer:   {base}/rooms/{DEMO_ROOM}?token={viewer_token}",
        f"  console:  {base}/console/{DEMO_ROOM}?token={host_token}",
        f"  guest:    {base}/rooms/{DEMO_ROOM}",
        f"  host token: {host_token}",
    ]
    if settings.secret_generated:
        lines.append("  (LIVESERVER_SECRET not set: a random one is in use; tokens die with this process)")
    return "\n".join(lines)


class LiveApp(Starlette):
    """Starlette, with viewer sockets served before its middleware stack: the coroutines
    of each layer stay suspended for the life of a socket (memory per idle viewer,
    docs/performance.md). Everything else goes through Starlette as usual, behind
    uvicorn's proxy-headers middleware (`X-Forwarded-For`/`-Proto` from the addresses
    in FORWARDED_ALLOW_IPS, as uvicorn would): `liveserver serve` turns uvicorn's own
    off, so a viewer socket, which reads neither, does not pay for that layer either."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        self._behind_proxy_headers = ProxyHeadersMiddleware(super().__call__, trusted_hosts=trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["app"] = self
            if await serve_viewer(scope, receive, send):
                return
        await self._behind_proxy_headers(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            redis_url = embedded.start()
        where = f"embedded, {embedded.socket} (AOF on)" if embedded else redis_url
        engine = None
        try:
            engine = await connect(redis_url, settings)
            node_id = secrets.token_hex(4)
            metrics_ = Metrics()
            hub = RoomHub(engine, settings, node_id, metrics_, redis_url)
            commerce = Commerce(engine, settings.order_ttl_s)
            gate = commerce.kind(Sales).gate
            gate.on_refuse = metrics_.buys_gated.inc
            metrics_.sales_gated.set_function(gate.closed)
            hub.sources.append(commerce.state)
            services = Services(settings, redis_url, engine, hub, commerce, metrics_, node_id,
                                op_handlers=commerce.ops(), danmaku_listeners=commerce.danmaku_listeners(),
                                leave_listeners=commerce.leave_listeners())
            app.state.services = services
            scheduler = commerce.scheduler() if settings.scheduler else None
            media_glue = media.install(app, services, redis_url)
            if scheduler is not None:
                scheduler.actions[REMINDER_JOB] = reminder_action(engine)
            if settings.demo_room:
                await ensure_demo_room(engine)
            hub.start()
            if scheduler is not None:
                scheduler.start()
            webhooks = (WebhookWorker(engine.webhooks, settings, entry_handlers=commerce.order_entry_handlers())
                        if settings.webhooks else None)
            if webhooks is not None:
                webhooks.start()
            archiver = Archiver(engine.reports) if settings.archive else None
            if archiver is not None:
                archiver.start()
            # Many long-lived sockets: full GC collections must not walk them all (core/gcpolicy.py).
            # Its sweep (one long pause) waits while viewers race for a sale's stock.
            gc_policy = GcPolicy(settings.gc_sweep_s, busy=metrics_.rushing) if settings.gc_freeze else None
            gc_sweeps = None
            if gc_policy is not None:
                gc_policy.install()
                gc_sweeps = asyncio.create_task(gc_policy.run(), name="gc-sweep")
            stall_watch = StallWatch(settings.stall_dump_s)
            stall_watch.start()
            text = banner(settings, where, services)
            if text:
                print(text, flush=True)
            yield
            # Together and bounded: a stop that hangs must not keep Ctrl-C from ending the
            # node (Redis, closed below, goes last).
            await within(10, "stopping the node", *(w.stop() for w in (webhooks, archiver, scheduler) if w is not None),
                         hub.stop(), media_glue.aclose(), cancel_and_wait(gc_sweeps))
            await stall_watch.stop()  # last: a stop that blocks the loop is caught too
            if gc_policy is not None:
                gc_policy.uninstall()
        finally:
            if engine is not None:
                await engine.close()
            if embedded is not None:
                embedded.stop()

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/v1/openapi.json", openapi),
        WebSocketRoute("/ws/rooms/{room}", viewer_endpoint),
        *API.routes(),
        *media.web_routes(),
        *pages.routes(),
    ]
    if PROTOCOL_JS.is_dir():
        routes.append(Mount("/protocol/js", StaticFiles(directory=PROTOCOL_JS), name="protocol-js"))
    if (PAGES / "static").is_dir():
        routes.append(Mount("/static", StaticFiles(directory=PAGES / "static"), name="static"))
    return LiveApp(
        routes=routes,
        # the viewer socket's short path (and the raw send for hub/direct.py)
        middleware=[Middleware(ViewerRouteMiddleware)],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )

