"""HTTP helpers shared by the media routes: JSON errors, bearer identities, CORS."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from liveserver.media.server_deps import AuthError, Identity, verify

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Retry-After, Accept-Post",
    "Access-Control-Max-Age": "600",
}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers={**CORS, **(headers or {})})


class Denied(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def identity(request: Request, secret: str, required: bool) -> Identity | None:
    """The caller's identity from `Authorization: Bearer`; None for a guest (when allowed)."""
    header = request.headers.get("authorization", "")
    if not header:
        if required:
            raise Denied(error(401, "unauthorized", "send Authorization: Bearer <host token of this room>",
                               {"WWW-Authenticate": "Bearer"}))
        return None
    if not header.lower().startswith("bearer "):
        raise Denied(error(401, "unauthorized", "Authorization must be Bearer <token>", {"WWW-Authenticate": "Bearer"}))
    try:
        return verify(secret, header[7:].strip())
    except AuthError as exc:
        raise Denied(error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})) from None


def host_of(request: Request, secret: str, room: str) -> Identity:
    who = identity(request, secret, required=True)
    assert who is not None
    if not who.can_host(room):
        raise Denied(error(403, "forbidden", "this needs a host token for this room (or admin)"))
    return who


def options(accept_post: bool = True) -> Response:
    headers = dict(CORS)
    if accept_post:
        headers["Accept-Post"] = "application/sdp"
    return Response(status_code=200, headers=headers)


def sdp_response(sdp: str, location: str, extra: dict[str, Any] | None = None) -> Response:
    headers = {**CORS, "Location": location, "Cache-Control": "no-store"}
    headers.update(extra or {})
    return Response(sdp, status_code=201, media_type="application/sdp", headers=headers)


def is_sdp(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/sdp"
