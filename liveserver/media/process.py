"""The media process: `liveserver media` (Procfile `media:`), also started as a child of
`liveserver serve` unless LIVESERVER_MEDIA=0. Its own event loop and threads, so encoding
never delays a web node's tick."""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from liveserver.engine.linkmic_store import LinkmicStore
from liveserver.engine.media_store import MediaStore

from liveserver.media import metrics
from liveserver.media.live import MediaRooms
from liveserver.media.routes import media_routes
from liveserver.media.server_deps import RoomEngine, ScriptRunner, Settings, StallWatch
from liveserver.media.settings import MediaSettings

log = logging.getLogger("liveserver.media")


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    sock = settings.data_dir.resolve() / "redis.sock"
    if sock.exists():  # the embedded Redis of a web node on the same data dir
        return f"unix://{sock}?db=0"
    raise SystemExit("liveserver media needs LIVESERVER_REDIS_URL (or a web node's embedded Redis in LIVESERVER_DATA_DIR)")


def create_media_app(media: MediaSettings | None = None) -> Starlette:
    media = media or MediaSettings.from_env()
    settings = Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = Redis.from_url(redis_url(settings), decode_responses=True)
        await redis.ping()
        scripts = ScriptRunner(redis)
        store = MediaStore(redis, scripts, RoomEngine(redis, scripts, settings.stream_maxlen))
        rooms = MediaRooms(media, store, LinkmicStore(redis, scripts))
        app.state.secret = settings.secret
        app.state.media_store = store
        app.state.rooms = rooms
        app.state.registry = metrics.registry(rooms)
        rooms.start()
        stall_watch = StallWatch(settings.stall_dump_s)
        stall_watch.start()
        rtmp = None
        if media.rtmp_port:
            from liveserver.media.rtmp import RtmpServer

            rtmp = RtmpServer(media, rooms, settings.secret)
            await rtmp.start()
        try:
            yield
        finally:
            if rtmp is not None:
                await rtmp.stop()
            await rooms.stop()
            await stall_watch.stop()
            await redis.aclose()

    async def healthz(request: Request) -> Response:
        rooms: MediaRooms = request.app.state.rooms
        return JSONResponse({"ok": True, "media": rooms.url, "lives": len(rooms.lives), "whep_viewers": rooms.viewer_count()})

    async def metrics_(request: Request) -> Response:
        return PlainTextResponse(metrics.render(request.app.state.registry), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics_), *media_routes()], lifespan=lifespan)


def run(host: str, port: int, log_level: str = "info") -> int:
    import uvicorn

    media = MediaSettings.from_env(port=port, host=host)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s media %(levelname)s %(message)s")
    config = uvicorn.Config(create_media_app(media), host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        return 130
    return 0


def main(args: argparse.Namespace) -> int:
    return run(args.host, args.port, args.log_level)
