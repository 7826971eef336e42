"""What a web node serves for media. WHIP/WHEP signalling (small SDP bodies) is proxied to
the media process that owns the room (or, for a new WHIP publisher, to this node's own
media process): a 307 would do, but clients drop the `Authorization` header when a
redirect changes host or port (curl, hence OBS; fetch; httpx), so the token would be
lost. HLS files (no token) get a 307 to the owner. Also: CORS preflights, the recordings
list (from Redis), and `state.media` in the room state. Imports no aiortc/PyAV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from liveserver.engine.linkmic_store import LinkmicStore
from liveserver.engine.media_store import MediaStore

from liveserver.media import child as child_
from liveserver.media.linkmic import Linkmic, LinkmicState
from liveserver.media.http import CORS, Denied, error, host_of, options
from liveserver.media.server_deps import valid_room
from liveserver.media.state import MediaState

if TYPE_CHECKING:
    import httpx  # imported when the first request is proxied: a node starts sooner without it

API = "/api/v1/rooms/{room}"
RETRY_AFTER_S = 5


# -- both: answered from Redis or from this process -----------------------------------------
async def recordings(request: Request) -> Response:
    room = request.path_params["room"]
    if not valid_room(room):
        return error(400, "bad_request", "room names are 1..64 of A-Z a-z 0-9 _ -")
    try:
        host_of(request, _secret(request), room)
    except Denied as denied:
        return denied.response
    store: MediaStore = _store(request)
    return JSONResponse({"recordings": await store.recordings(room)}, headers=CORS)


def _secret(request: Request) -> str:
    state = request.app.state
    return state.secret if hasattr(state, "secret") else state.services.settings.secret


def _store(request: Request) -> MediaStore:
    state = request.app.state
    if hasattr(state, "media_store"):
        return state.media_store
    services = state.services
    state.media_store = MediaStore(services.engine.redis, services.engine.scripts, services.engine)
    return state.media_store


# -- web nodes ---------------------------------------------------------------------------------
def _redirect(base: str, request: Request) -> Response:
    target = base.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Response(status_code=307, headers={**CORS, "Location": target})


PROXIED_REQUEST = ("authorization", "content-type", "if-match", "accept")
PROXIED_RESPONSE = ("content-type", "location", "etag", "link", "retry-after", "accept-post", "www-authenticate",
                    "allow", "cache-control")


async def _proxy(base: str, request: Request) -> Response:
    import httpx

    client: httpx.AsyncClient | None = getattr(request.app.state, "media_http", None)
    if client is None:
        client = request.app.state.media_http = httpx.AsyncClient(timeout=30)
    target = base.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k in PROXIED_REQUEST}
    try:
        r = await client.request(request.method, target, content=await request.body(), headers=headers)
    except httpx.HTTPError as exc:
        return error(502, "internal", f"media process unreachable: {exc}", {"Retry-After": "5"})
    out = {k: v for k, v in r.headers.items() if k in PROXIED_RESPONSE}
    return Response(r.content, status_code=r.status_code, headers={**CORS, **out})


async def _owner(request: Request) -> str | None:
    room = request.path_params["room"]
    if not valid_room(room):
        return None
    return await _store(request).owner(room)


async def web_whip(request: Request) -> Response:
    if not valid_room(request.path_params["room"]):
        return error(400, "bad_request", "room names are 1..64 of A-Z a-z 0-9 _ -")
    target = await _owner(request) or getattr(request.app.state, "media_url", None)
    if not target:
        return error(503, "internal", "no media process is configured (LIVESERVER_MEDIA_URL)", {"Retry-After": "5"})
    return await _proxy(target, request)


async def web_whep(request: Request) -> Response:
    owner = await _owner(request)
    if owner is None:
        return error(409, "not_started", "this room is not live", {"Retry-After": str(RETRY_AFTER_S)})
    return await _proxy(owner, request)


async def web_owned(request: Request) -> Response:
    """Sessions, health and live files exist only on the owner: signalling and health
    (with a token) are proxied, files (no token) redirected."""
    owner = await _owner(request)
    if owner is None:
        if request.url.path.endswith("/media/health"):
            try:
                host_of(request, _secret(request), request.path_params["room"])
            except Denied as denied:
                return denied.response
            return JSONResponse({"live": False, "sources": []}, headers=CORS)
        return error(404, "not_found", "this room is not live")
    if request.url.path.startswith("/media/"):
        return _redirect(owner, request)
    return await _proxy(owner, request)


async def web_options(request: Request) -> Response:
    return options()


def web_routes() -> list[Route]:
    return [
        Route(API + "/whip", web_whip, methods=["POST"]),
        Route(API + "/whep", web_whep, methods=["POST"]),
        Route(API + "/whip", web_options, methods=["OPTIONS"]),
        Route(API + "/whep", web_options, methods=["OPTIONS"]),
        Route(API + "/whip/{session}", web_owned, methods=["DELETE", "PATCH"]),
        Route(API + "/whep/{session}", web_owned, methods=["DELETE", "PATCH"]),
        Route(API + "/whip/{session}", web_options, methods=["OPTIONS"]),
        Route(API + "/whep/{session}", web_options, methods=["OPTIONS"]),
        Route(API + "/media/health", web_owned, methods=["GET"]),
        Route(API + "/recordings", recordings, methods=["GET"]),
        Route("/media/{room}/{path:path}", web_owned, methods=["GET", "HEAD"]),
    ]


class MediaGlue:
    """What `install` set up on a web node, to undo at shutdown."""

    def __init__(self, app: Any, child: child_.MediaChild | None) -> None:
        self.app = app
        self.child = child

    async def aclose(self) -> None:
        client: "httpx.AsyncClient | None" = getattr(self.app.state, "media_http", None)
        if client is not None:
            await client.aclose()
        if self.child is not None:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, self.child.stop)


def install(app: Any, services: Any, redis_url: str) -> MediaGlue:
    """Wire media into a web node: `state.media` source, the media store, and the media
    child process (unless LIVESERVER_MEDIA=0). `await glue.aclose()` at shutdown."""
    store = MediaStore(services.engine.redis, services.engine.scripts, services.engine)
    app.state.media_store = store
    services.hub.sources.append(MediaState(store))
    # Link-mic: state.linkmic, the `linkmic` op, the host API (registered at import).
    linkmic = Linkmic(LinkmicStore(services.engine.redis, services.engine.scripts), services.engine,
                      services.settings.secret)
    app.state.linkmic = linkmic
    services.hub.sources.append(LinkmicState())
    services.op_handlers.update(linkmic.ops())
    child = child_.spawn(redis_url)
    app.state.media_url = child_.local_url(child)
    return MediaGlue(app, child)
