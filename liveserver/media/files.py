"""HLS files of the lives and recordings of this media process, with the right types and
cache headers: playlists are re-read (no-cache), segments never change (immutable)."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from liveserver.media.hls import PLAYLIST_TYPE, SEGMENT_TYPE
from liveserver.media.http import CORS, error
from liveserver.media.live import MediaRooms
from liveserver.media.server_deps import valid_room

LIVE_SEGMENT = re.compile(r"^([0-9a-f]{12})-seg\d+\.ts$")
REC_FILE = re.compile(r"^(index\.m3u8|rec\d+\.ts|poster\.jpg)$")
LIVE_ID = re.compile(r"^[0-9a-f]{12}$")
TYPES = {".m3u8": PLAYLIST_TYPE, ".ts": SEGMENT_TYPE, ".jpg": "image/jpeg"}


def _send(path: Path, cache: str) -> Response:
    headers = {**CORS, "Cache-Control": cache}
    if path.suffix == ".m3u8":
        # FFmpeg replaces a live playlist (write + rename) every segment: read it whole, so
        # the length sent is the length of the bytes sent (FileResponse stats, then reads).
        try:
            return Response(path.read_bytes(), media_type=TYPES[path.suffix], headers=headers)
        except FileNotFoundError:
            return error(404, "not_found", "no such media file")
    if not path.is_file():
        return error(404, "not_found", "no such media file")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=headers)


async def live_file(request: Request) -> Response:
    room, name = request.path_params["room"], request.path_params["name"]
    rooms: MediaRooms = request.app.state.rooms
    if not valid_room(room):
        return error(404, "not_found", "no such room")
    live = rooms.lives.get(room)
    if name == "live.m3u8":
        if live is None or live.ending:
            return error(404, "not_found", "this room is not live")
        return _send(rooms.live_dir(room, live.id) / name, "no-cache, max-age=0")
    if name == "poster.jpg":
        if live is None:
            return error(404, "not_found", "this room is not live")
        return _send(rooms.live_dir(room, live.id) / name, "public, max-age=60")
    match = LIVE_SEGMENT.match(name)
    if match is None:
        return error(404, "not_found", "no such media file")
    return _send(rooms.live_dir(room, match.group(1)) / name, "public, max-age=31536000, immutable")


async def recording_file(request: Request) -> Response:
    room, live_id, name = (request.path_params[k] for k in ("room", "live", "name"))
    rooms: MediaRooms = request.app.state.rooms
    if not valid_room(room) or not LIVE_ID.match(live_id) or not REC_FILE.match(name):
        return error(404, "not_found", "no such recording file")
    live = rooms.lives.get(room)
    recording_now = live is not None and live.id == live_id
    cache = "no-cache, max-age=0" if name.endswith(".m3u8") and recording_now else "public, max-age=31536000, immutable"
    if name.endswith(".m3u8") and not recording_now:
        cache = "public, max-age=3600"
    return _send(rooms.rec_dir(room, live_id) / name, cache)
