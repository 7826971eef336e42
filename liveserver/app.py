"""The ASGI app of one node: `create_app()` (also a uvicorn factory,
`uvicorn --factory liveserver.app:create_app`)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any, AsyncIterator

from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from protocol import ErrorCode

from . import auth, commerce, pages
from .api import commerce as _commerce_api  # noqa: F401  (registers endpoints)
from .api import rooms as _rooms  # noqa: F401  (registers endpoints)
from .api.base import API, error_response
from .config import Settings
from .direct import RawSendMiddleware
from .demo import DEMO_ROOM, ensure_demo_room
from .embedded import EmbeddedRedis
from .engine import RoomEngine
from .hub import RoomHub
from .metrics import Metrics
from .scripts import ScriptRunner
from .services import Services
from .ws import viewer_endpoint

log = logging.getLogger("liveserver")

PAGES = Path(__file__).parent / "pages"
PROTOCOL_JS = Path(__file__).parent.parent / "protocol" / "js"


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "node": request.app.state.services.node_id})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        await services.redis.ping()
    except Exception as exc:
        return JSONResponse({"ready": False, "error": {"code": "internal", "message": f"redis: {exc}"}}, status_code=503)
    return JSONResponse({"ready": True, "node": services.node_id})


async def metrics(request: Request) -> Response:
    return PlainTextResponse(request.app.state.services.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return JSONResponse(API.openapi())


async def http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        code = {401: ErrorCode.UNAUTHORIZED, 403: ErrorCode.FORBIDDEN, 404: ErrorCode.NOT_FOUND}.get(exc.status_code, ErrorCode.BAD_REQUEST)
        return error_response(code, str(exc.detail), status=exc.status_code)
    log.exception("unhandled error on %s", request.url.path)
    return error_response(ErrorCode.INTERNAL, "internal error", status=500)


def banner(settings: Settings, redis_where: str, services: Services) -> str:
    base = os.environ.get("LIVESERVER_PUBLIC_URL", "").rstrip("/")
    if not base:
        return ""
    host_token = auth.mint(settings.secret, "host", role="host", name="Host", room=DEMO_ROOM)
    viewer_token = auth.mint(settings.secret, "viewer-" + secrets.token_hex(2), role="viewer", name="Viewer")
    lines = [
        f"liveserver node {services.node_id} ready",
        f"  redis:    {redis_where}",
        f"  viewer:   {base}/rooms/{DEMO_ROOM}?token={viewer_token}",
        f"  console:  {base}/console/{DEMO_ROOM}?token={host_token}",
        f"  guest:    {base}/rooms/{DEMO_ROOM}",
        f"  host token: {host_token}",
    ]
    if settings.secret_generated:
        lines.append("  (LIVESERVER_SECRET not set: a random one is in use; tokens die with this process)")
    return "\n".join(lines)


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
        # A bounded pool that waits for a free connection: a connect storm queues for a
        # moment instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(redis_url, decode_responses=True, health_check_interval=30,
                                               max_connections=settings.redis_pool, timeout=10)
        redis = Redis(connection_pool=pool)
        try:
            await redis.ping()
            node_id = secrets.token_hex(4)
            metrics_ = Metrics()
            scripts = ScriptRunner(redis, settings.redis_wait_replicas)
            engine = RoomEngine(redis, scripts, settings.stream_maxlen)
            hub = RoomHub(engine, settings, node_id, metrics_, redis_url)
            services = Services(settings, redis, redis_url, engine, hub, metrics_, node_id)
            app.state.services = services
            app.state.commerce, scheduler = commerce.install(services, settings.scheduler)
            if settings.demo_room:
                await ensure_demo_room(engine)
            hub.start()
            if scheduler is not None:
                scheduler.start()
            text = banner(settings, where, services)
            if text:
                print(text, flush=True)
            yield
            if scheduler is not None:
                await scheduler.stop()
            await hub.stop()
        finally:
            await redis.aclose()
            if embedded is not None:
                embedded.stop()

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/v1/openapi.json", openapi),
        WebSocketRoute("/ws/rooms/{room}", viewer_endpoint),
        *API.routes(),
        *pages.routes(),
    ]
    if PROTOCOL_JS.is_dir():
        routes.append(Mount("/protocol/js", StaticFiles(directory=PROTOCOL_JS), name="protocol-js"))
    if (PAGES / "static").is_dir():
        routes.append(Mount("/static", StaticFiles(directory=PAGES / "static"), name="static"))
    return Starlette(
        routes=routes,
        middleware=[Middleware(RawSendMiddleware)],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )

