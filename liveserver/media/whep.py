"""WHEP playback on the media process: a viewer (token or guest) POSTs an offer and
gets the packets of the one shared encode; 409 + Retry-After while the room is not live."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from liveserver.media.http import CORS, Denied, error, identity, is_sdp, options, sdp_response
from liveserver.media.live import Busy, MediaRooms, NotLive
from liveserver.media.sdp import OfferError, parse_offer
from liveserver.media.server_deps import valid_room

from liveserver.media.web import RETRY_AFTER_S


async def whep_options(request: Request) -> Response:
    return options()


async def whep_post(request: Request) -> Response:
    room = request.path_params["room"]
    if not valid_room(room):
        return error(400, "bad_request", "room names are 1..64 of A-Z a-z 0-9 _ -")
    rooms: MediaRooms = request.app.state.rooms
    try:
        identity(request, request.app.state.secret, required=False)  # a bad token is refused, none is a guest
    except Denied as denied:
        return denied.response
    if not is_sdp(request):
        return error(415, "bad_request", "Content-Type must be application/sdp", {"Accept-Post": "application/sdp"})
    try:
        offer, _kinds = parse_offer(await request.body(), ("recvonly", "sendrecv"))
        viewer, answer = await rooms.add_viewer(room, offer)
    except OfferError as exc:
        return error(exc.status, "bad_request", exc.message)
    except NotLive:
        return error(409, "not_started", "this room is not live", {"Retry-After": str(RETRY_AFTER_S)})
    except Busy as exc:
        return error(503, "overloaded", str(exc), {"Retry-After": str(RETRY_AFTER_S)})
    return sdp_response(answer, f"{rooms.url}/api/v1/rooms/{room}/whep/{viewer.id}")


async def whep_delete(request: Request) -> Response:
    rooms: MediaRooms = request.app.state.rooms
    if not await rooms.remove_viewer(request.path_params["room"], request.path_params["session"]):
        return error(404, "not_found", "no such WHEP session")
    return Response(status_code=200, headers=CORS)


async def whep_patch(request: Request) -> Response:
    return error(405, "bad_request", "trickle ICE and ICE restart are not supported", {"Allow": "DELETE, OPTIONS"})
