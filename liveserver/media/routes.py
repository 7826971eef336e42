"""Starlette routes of the media process (WHIP, WHEP, HLS files, health, recordings)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from liveserver.media import files, whep, whip
from liveserver.media.http import CORS, Denied, host_of
from liveserver.media.live import MediaRooms
from liveserver.media.web import API, _secret, recordings


# -- the media process ---------------------------------------------------------------------------
async def health(request: Request) -> Response:
    room = request.path_params["room"]
    try:
        host_of(request, _secret(request), room)
    except Denied as denied:
        return denied.response
    rooms: MediaRooms = request.app.state.rooms
    live = rooms.lives.get(room)
    body: dict[str, Any] = {"live": live is not None, "sources": []}
    if live is not None:
        body["sources"] = [live.health.snapshot()]
        body["whep_viewers"] = len(live.viewers)
        body["guests"] = [{"user": g.user, "name": g.name} for g in live.guests.values()]
        if live.pipeline is not None and live.pipeline.composed_frames:
            p = live.pipeline
            body["composed_frames"] = p.composed_frames
            body["compose_ms_per_frame"] = round(1000 * p.compose_seconds / p.composed_frames, 2)
    return JSONResponse(body, headers=CORS)


def media_routes() -> list[Route]:
    return [
        Route(API + "/whip", whip.whip_post, methods=["POST"]),
        Route(API + "/whip", whip.whip_options, methods=["OPTIONS"]),
        Route(API + "/whip/{session}", whip.whip_delete, methods=["DELETE"]),
        Route(API + "/whip/{session}", whip.whip_patch, methods=["PATCH"]),
        Route(API + "/whip/{session}", whip.whip_options, methods=["OPTIONS"]),
        Route(API + "/whep", whep.whep_post, methods=["POST"]),
        Route(API + "/whep", whep.whep_options, methods=["OPTIONS"]),
        Route(API + "/whep/{session}", whep.whep_delete, methods=["DELETE"]),
        Route(API + "/whep/{session}", whep.whep_patch, methods=["PATCH"]),
        Route(API + "/whep/{session}", whep.whep_options, methods=["OPTIONS"]),
        Route(API + "/media/health", health, methods=["GET"]),
        Route(API + "/recordings", recordings, methods=["GET"]),
        Route("/media/{room}/rec/{live}/{name}", files.recording_file, methods=["GET", "HEAD"]),
        Route("/media/{room}/{name}", files.live_file, methods=["GET", "HEAD"]),
    ]


