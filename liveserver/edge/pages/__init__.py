"""The viewer page `/rooms/{room}` and the host console `/console/{room}`.

Both are plain HTML files that load JS modules from /static and /protocol/js; the room
and the token are read by the page itself from its URL, so the HTML is served as is.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveserver.core.names import valid_room

HERE = Path(__file__).parent
VIEWER_HTML = HERE / "viewer.html"
CONSOLE_HTML = HERE / "console.html"
REPORT_HTML = HERE / "report.html"
TRAILER_HTML = HERE / "trailer.html"
REPLAY_HTML = HERE / "replay.html"

# The pages change with the server: never let a browser keep a stale copy.
NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _page(path: Path):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        room = request.path_params["room"]
        if not valid_room(room):
            return PlainTextResponse("room names are 1..64 of A-Z a-z 0-9 _ -", status_code=404)
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=NO_CACHE)

    endpoint.__name__ = path.stem + "_page"
    return endpoint


def _viewer_page():  # type: ignore[no-untyped-def]
    """The viewer page; a room whose status is `preview` sends viewers to its trailer
    (`?preview=1` opens the room page anyway, e.g. for the host)."""
    page = _page(VIEWER_HTML)

    async def endpoint(request: Request) -> Response:
        room = request.path_params["room"]
        if valid_room(room) and request.query_params.get("preview") != "1":
            try:
                meta = await request.app.state.services.engine.room_meta(room) or {}
            except Exception:
                meta = {}
            if meta.get("status") == "preview":
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(f"/rooms/{room}/trailer{query}", status_code=307, headers=NO_CACHE)
        return await page(request)

    endpoint.__name__ = "viewer_page"
    return endpoint


def routes() -> list[BaseRoute]:
    return [
        Route("/rooms/{room}", _viewer_page(), methods=["GET", "HEAD"], name="viewer-page"),
        Route("/console/{room}", _page(CONSOLE_HTML), methods=["GET", "HEAD"], name="console-page"),
        Route("/rooms/{room}/report", _page(REPORT_HTML), methods=["GET", "HEAD"], name="report-page"),
        Route("/rooms/{room}/trailer", _page(TRAILER_HTML), methods=["GET", "HEAD"], name="trailer-page"),
        Route("/rooms/{room}/replay", _page(REPLAY_HTML), methods=["GET", "HEAD"], name="replay-page"),
    ]
