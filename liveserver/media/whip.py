"""WHIP ingest (RFC 9725) on the media process.

POST offer (host token of the room) -> 201 + answer with every candidate + Location;
DELETE the session -> 200; OPTIONS -> Accept-Post; PATCH -> 405 (no trickle, no ICE
restart: RFC 9725 lets a server support neither; OBS sends no PATCH)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from liveserver.media.http import CORS, Denied, error, host_of, is_sdp, options, sdp_response
from liveserver.media.live import Busy, MediaRooms, NotLive, Refused
from liveserver.media.sdp import OfferError, parse_offer
from liveserver.media.server_deps import AuthError, is_cohost_token, valid_room, verify_cohost


DELETE_WAIT_S = 5.0


def _rooms(request: Request) -> MediaRooms:
    return request.app.state.rooms


async def whip_options(request: Request) -> Response:
    return options()


async def whip_post(request: Request) -> Response:
    room = request.path_params["room"]
    if not valid_room(room):
        return error(400, "bad_request", "room names are 1..64 of A-Z a-z 0-9 _ -")
    rooms = _rooms(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and is_cohost_token(header[7:].strip()):
        return await _guest_post(request, rooms, room, header[7:].strip())
    try:
        host_of(request, request.app.state.secret, room)
    except Denied as denied:
        return denied.response
    if not is_sdp(request):
        return error(415, "bad_request", "Content-Type must be application/sdp", {"Accept-Post": "application/sdp"})
    try:
        offer, _kinds = parse_offer(await request.body(), ("sendonly", "sendrecv"))
        live, answer = await rooms.start_whip(room, offer)
    except OfferError as exc:
        return error(exc.status, "bad_request", exc.message)
    except Busy as exc:
        return error(409, "conflict", str(exc))
    location = f"{rooms.url}/api/v1/rooms/{room}/whip/{live.session}"
    return sdp_response(answer, location)


async def _guest_post(request: Request, rooms: MediaRooms, room: str, token: str) -> Response:
    """A link-mic guest: its co-host token must be for this room, unexpired, unused."""
    try:
        cohost = verify_cohost(request.app.state.secret, token, room)
    except AuthError as exc:
        status = 403 if "another room" in str(exc) else 401
        return error(status, "forbidden" if status == 403 else "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
    if not is_sdp(request):
        return error(415, "bad_request", "Content-Type must be application/sdp", {"Accept-Post": "application/sdp"})
    try:
        offer, _kinds = parse_offer(await request.body(), ("sendonly", "sendrecv"))
        guest, answer = await rooms.add_guest(room, cohost, offer)
    except OfferError as exc:
        return error(exc.status, "bad_request", exc.message)
    except NotLive:
        return error(409, "not_started", "this room is not live: a guest joins a live host", {"Retry-After": "5"})
    except Busy as exc:
        return error(409, "limit_reached", str(exc))
    except Refused as exc:
        return error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
    return sdp_response(answer, f"{rooms.url}/api/v1/rooms/{room}/whip/{guest.id}")


async def whip_delete(request: Request) -> Response:
    rooms = _rooms(request)
    guest = rooms.guest_sessions.get(request.path_params["session"])
    if guest is not None and guest.room == request.path_params["room"]:
        await rooms.remove_guest(guest, "left", announce=True)
        return Response(status_code=200, headers=CORS)
    live = rooms.sessions.get(request.path_params["session"])
    if live is None or live.room != request.path_params["room"]:
        return error(404, "not_found", "no such WHIP session")
    # The answer waits for the teardown (the recording stored, the room offline) at most
    # DELETE_WAIT_S; a slower one goes on, and a new publish of the room waits for it.
    await rooms.end_within(live.room, "deleted by the publisher", DELETE_WAIT_S)
    return Response(status_code=200, headers=CORS)


async def whip_patch(request: Request) -> Response:
    rooms = _rooms(request)
    live = rooms.sessions.get(request.path_params["session"])
    if live is None or live.room != request.path_params["room"]:
        return error(404, "not_found", "no such WHIP session")
    # Trickle ICE and ICE restarts are optional in RFC 9725; the answer already holds
    # every server candidate.
    return error(405, "bad_request", "trickle ICE and ICE restart are not supported", {"Allow": "DELETE, OPTIONS"})
