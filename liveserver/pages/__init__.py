"""The viewer page `/rooms/{room}` and the host console `/console/{room}`.

Both are plain HTML files that load JS modules from /static and /protocol/js; the room
and the token are read by the page itself from its URL, so the HTML is served as is.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..keys import valid_room

HERE = Path(__file__).parent
VIEWER_HTML = HERE / "viewer.html"
CONSOLE_HTML = HERE / "console.html"

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


def routes() -> list[BaseRoute]:
    return [
        Route("/rooms/{room}", _page(VIEWER_HTML), methods=["GET", "HEAD"], name="viewer-page"),
        Route("/console/{room}", _page(CONSOLE_HTML), methods=["GET", "HEAD"], name="console-page"),
    ]
