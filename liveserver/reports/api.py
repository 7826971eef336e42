"""Host API of the after-live: the report (JSON and CSV), reservations, the replay history."""

from __future__ import annotations

import csv
import json
import io
import re
from datetime import datetime
from typing import Any

from starlette.responses import Response

from protocol import ErrorCode

from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, require_room
from liveserver.engine.engine import decode_entry
from liveserver.engine.media_store import MediaStore
from liveserver.reports.report import build_report, live_view

RECORDING_ID = re.compile(r"^[0-9a-f]{12}$")
SERIES_COLUMNS = ("minute_ms", "online", "danmaku", "likes", "orders", "gmv_cents")


@API.add("GET", "/rooms/{room}/report", "Live data / post-live report of a room", tag="reports")
async def get_report(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    return await build_report(call.services.engine, call.services.commerce, room,
                                 call.services.settings.followup_watch_s, call.services.settings.node_ttl_ms)


@API.add("GET", "/rooms/{room}/report.csv", "The report's per-minute series as CSV (headline as comment lines)",
         tag="reports", raw=True)
async def get_report_csv(call: Call) -> Response:
    room = await require_room(call)
    report = await build_report(call.services.engine, call.services.commerce, room,
                                 call.services.settings.followup_watch_s, call.services.settings.node_ttl_ms)
    out = io.StringIO()
    for key, value in report["headline"].items():
        out.write(f"# {key},{value}\n")
    writer = csv.writer(out)
    writer.writerow(SERIES_COLUMNS)
    for row in report["series"]:
        writer.writerow([row[c] for c in SERIES_COLUMNS])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{room}-report.csv"'})


@API.add("GET", "/rooms/{room}/live", "The live cards' series: 10 s steps over the last 10 minutes (?window_s=)",
         tag="reports")
async def get_live(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    try:
        window = min(3600, max(60, int(call.request.query_params.get("window_s", "600"))))
    except ValueError:
        raise OpError(ErrorCode.BAD_REQUEST, "window_s must be an integer (60..3600)") from None
    return await live_view(call.services.engine, room, window)


def _viewer(call: Call) -> str:
    ident = call.identity
    if ident is None or ident.is_guest:
        raise OpError(ErrorCode.UNAUTHORIZED, "sign in to reserve")
    return ident.id


@API.add("POST", "/rooms/{room}/reservations", "Reserve a reminder for when the room goes live (the caller)",
         auth="any", tag="reports")
async def post_reservation(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    count = await call.services.engine.reserve(room, _viewer(call), True)
    return {"reserved": True, "count": count}


@API.add("DELETE", "/rooms/{room}/reservations", "Cancel the caller's reservation", auth="any", tag="reports")
async def delete_reservation(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    count = await call.services.engine.reserve(room, _viewer(call), False)
    return {"reserved": False, "count": count}


@API.add("GET", "/rooms/{room}/reservation", "The caller's reservation and the room's count", auth="any",
         tag="reports")
async def get_reservation(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    count, mine = await call.services.engine.reservation_count(room, _viewer(call))
    return {"reserved": mine, "count": count}


@API.add("GET", "/rooms/{room}/reservations", "Every reservation of a room (host)", tag="reports")
async def get_reservations(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    users = await call.services.engine.reservations(room)
    return {"count": len(users), "users": users}


@API.add("GET", "/rooms/{room}/history", "The room's events for a replay (archive, else the live stream), "
         "in pages: ?after=<offset>", auth="none", tag="reports")
async def get_history(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    after = call.request.query_params.get("after", "")
    rows = await call.services.engine.reports.history(room, f"({after}" if after else "-", 2000)
    events = [decode_entry(eid, f) for eid, f in rows if f.get("k") not in ("ban",)]
    meta = await call.services.engine.room_meta(room) or {}
    rec, start_ms = await _recording(call, room)
    listings = json.loads(meta.get("replay_sales") or "{}")
    return {"room": room, "title": meta.get("title", ""), "status": meta.get("status", "preview"),
            "events": events, "more": len(rows) == 2000, "recording": rec["hls"] if rec else None,
            "recording_start_ms": start_ms, "recording_poster": rec.get("poster") if rec else None,
            "recording_id": rec.get("id") if rec else None, "listings": listings}


async def _recording(call: Call, room: str) -> tuple[dict[str, Any] | None, int | None]:
    """The room's newest recording (HLS VOD, listed by the media process in the media store,
    `GET .../recordings`) and when its video starts: the first `#EXT-X-PROGRAM-DATE-TIME`
    of its playlist when this node sees the file under its data dir (a media child on the
    same machine), else the live's `started_ms` (the page refines it from the playlist it
    loads), so events line up with the video time."""
    engine = call.services.engine
    recordings = await MediaStore(engine.redis, engine.scripts).recordings(room)
    if not recordings:
        return None, None
    rec = recordings[0]
    start_ms = rec.get("started_ms")
    path = call.services.settings.data_dir / "media" / room / "rec" / str(rec.get("id", "")) / "index.m3u8"
    if RECORDING_ID.match(str(rec.get("id", ""))) and path.is_file():
        try:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                    stamp = line.split(":", 1)[1].strip().replace("Z", "+00:00")
                    start_ms = int(datetime.fromisoformat(stamp).timestamp() * 1000)
                    break
        except (OSError, ValueError):
            pass
    return rec, start_ms
