"""Host API plumbing: one registry of endpoints that gives both the Starlette routes and
the OpenAPI document, JSON-Schema validation of bodies, bearer auth, JSON errors.

It lives in `core` because every layer that serves routes (the edge's room endpoints,
each commerce kind) registers here; it reads the node's services from the app state."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from protocol import ErrorCode

from liveserver.core.auth import AuthError, Identity, verify
from liveserver.core.errors import OpError
from liveserver.core.names import valid_room

MAX_BODY = 256 * 1024

STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.TOO_LONG: 400,
    ErrorCode.BLOCKED_WORD: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.MUTED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_STARTED: 409,
    ErrorCode.ENDED: 409,
    ErrorCode.SOLD_OUT: 409,
    ErrorCode.LIMIT_REACHED: 409,
    ErrorCode.ALREADY_CLAIMED: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
}


def error_response(code: ErrorCode | str, message: str, status: int | None = None, **extra: Any) -> JSONResponse:
    code = ErrorCode(code)
    body: dict[str, Any] = {"code": str(code), "message": message}
    body.update(extra)
    return JSONResponse({"error": body}, status_code=status or STATUS.get(code, 400))


@dataclass
class Call:
    """What a handler gets: the request, the node's services, the caller, the body."""

    request: Request
    services: Any  # liveserver.edge.services.Services
    identity: Identity | None
    body: Any
    params: dict[str, str]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass
class Endpoint:
    method: str
    path: str  # under /api/v1
    handler: Handler
    summary: str
    body: dict[str, Any] | None = None
    auth: str = "host"  # host: host of {room} (or admin) | admin | any: any valid token | none
    status: int = 200
    tag: str = "rooms"
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    raw: bool = False  # handler returns a Response itself

    def route(self) -> Route:
        validator: Any = None

        async def endpoint(request: Request) -> Response:
            nonlocal validator
            services = request.app.state.services
            params = dict(request.path_params)
            room = params.get("room")
            if room is not None and not valid_room(room):
                return error_response(ErrorCode.BAD_REQUEST, "room names are 1..64 of A-Z a-z 0-9 _ -")
            identity: Identity | None = None
            if self.auth != "none":
                header = request.headers.get("authorization", "")
                if not header.lower().startswith("bearer "):
                    return error_response(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <host token>")
                try:
                    identity = verify(services.settings.secret, header[7:].strip())
                except AuthError as exc:
                    return error_response(ErrorCode.UNAUTHORIZED, str(exc))
                allowed = self.auth == "any" or identity.role == "admin" or (
                    self.auth == "host" and (identity.can_host(room) if room else identity.role == "host")
                )
                if not allowed:
                    return error_response(ErrorCode.FORBIDDEN, "this needs a host token for this room (or admin)")
            body: Any = None
            if self.body is not None:
                if validator is None:
                    # Built at the first call: jsonschema is a tenth of a node's start-up.
                    from jsonschema import Draft202012Validator

                    validator = Draft202012Validator(self.body)
                raw = await request.body()
                if len(raw) > MAX_BODY:
                    return error_response(ErrorCode.TOO_LONG, f"body is over {MAX_BODY} bytes")
                try:
                    body = json.loads(raw or b"null")
                except ValueError as exc:
                    return error_response(ErrorCode.BAD_REQUEST, f"body is not valid JSON: {exc}")
                errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
                if errors:
                    first = errors[0]
                    where = "/".join(str(p) for p in first.absolute_path) or "body"
                    return error_response(ErrorCode.BAD_REQUEST, f"{where}: {first.message}")
            try:
                result = await self.handler(Call(request, services, identity, body, params))
            except OpError as exc:
                return error_response(exc.code, exc.message, **exc.extra)
            if self.raw:
                return result
            return JSONResponse(result, status_code=self.status)

        return Route("/api/v1" + self.path, endpoint, methods=[self.method], name=f"{self.method} {self.path}")


class Registry:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def add(self, method: str, path: str, summary: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, path, handler, summary, **kwargs))
            return handler

        return register

    def routes(self) -> list[Route]:
        return [e.route() for e in self.endpoints]

    def openapi(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        error_schema = {"$ref": "#/components/schemas/Error"}
        for e in self.endpoints:
            op: dict[str, Any] = {
                "summary": e.summary,
                "tags": [e.tag],
                "operationId": e.handler.__name__,
                "responses": {
                    str(e.status): {"description": "OK", "content": {"application/json": {"schema": e.response}}},
                    "400": {"description": "Bad request", "content": {"application/json": {"schema": error_schema}}},
                    "401": {"description": "No or bad token", "content": {"application/json": {"schema": error_schema}}},
                    "403": {"description": "Not a host of this room", "content": {"application/json": {"schema": error_schema}}},
                    "404": {"description": "Not found", "content": {"application/json": {"schema": error_schema}}},
                },
            }
            if e.auth == "none":
                op["security"] = []
            if e.body is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": e.body}}}
            params = [seg[1:-1] for seg in e.path.split("/") if seg.startswith("{")]
            if params:
                op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
            paths.setdefault("/api/v1" + e.path, {})[e.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": "liveserver host API", "version": "1"},
            "paths": paths,
            "security": [{"bearer": []}],
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
                "schemas": {
                    "Error": {
                        "type": "object",
                        "required": ["error"],
                        "properties": {
                            "error": {
                                "type": "object",
                                "required": ["code", "message"],
                                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                            }
                        },
                    }
                },
            },
        }


API = Registry()


async def require_room(call: Call) -> str:
    """The `{room}` of the path, or not_found when no such room exists."""
    room = call.params["room"]
    if not await call.services.engine.room_exists(room):
        raise OpError(ErrorCode.NOT_FOUND, f"no room {room!r}; create it with PUT /api/v1/rooms/{room}")
    return room


# -- JSON Schema building blocks shared by every body schema --------------------------
ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
CENTS = {"type": "integer", "minimum": 0, "maximum": 10**12}
TEXT = {"type": "string", "minLength": 1, "maxLength": 500}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}
