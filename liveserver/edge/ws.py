"""The viewer websocket `/ws/rooms/{room}`: authentication, then frames in -> session
(through the connection's `FrameInbox`, edge/inbox.py; or a reader loop over ASGI when the
server is not ours) and a writer task (viewer queue -> socket) when a write must wait.

`run_viewer` is the viewer's life, whatever carries its socket: `liveserver serve` serves
viewer sockets on its own protocol (edge/viewer_socket.py), and through ASGI (`AsgiLink`,
`viewer_endpoint`) any request that protocol does not take, or under another server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any, Protocol

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import CloseCode, choose_codec, parse_offset

from liveserver.core.auth import AuthError, guest, verify
from liveserver.hub.direct import RAW_SEND, DirectWriter, FrameWriter, raw_protocol
from liveserver.engine.engine import Admission
from liveserver.core.names import valid_room
from liveserver.core.quietlog import QuietLog
from liveserver.edge.inbox import FrameInbox, received_data
from liveserver.edge.services import Services
from liveserver.edge.session import ViewerSession
from liveserver.core.tasks import cancel_and_wait
from liveserver.hub.viewer import Viewer

log = logging.getLogger("liveserver.ws")
_refusal_log = QuietLog(log)  # an outage refuses every joining viewer: one line a second

_conn_ids = itertools.count(1)
CLOSE_TIMEOUT_S = 5.0
VIEWER_PREFIX = "/ws/rooms/"


class ViewerRouteMiddleware:
    """`/ws/rooms/{room}` straight to `viewer_endpoint`, past Starlette's exception
    middleware, router and route wrappers: each of those is a coroutine (and closures) that
    stays suspended for the life of the socket, ~8 per viewer. Memory per idle viewer
    counts (docs/performance.md); what the endpoint does is unchanged. It also keeps the
    server's own `send` in the scope for `DirectWriter` (hub/direct.py). Other paths and
    other websockets go through the app as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and await serve_viewer(scope, receive, send):
            return
        await self.app(scope, receive, send)


async def serve_viewer(scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve `scope` if it is a viewer socket (True once it is over); False otherwise.
    Also called by the app itself (app.py `LiveApp`), before Starlette's own layers."""
    scope[RAW_SEND] = send
    path: str = scope["path"]
    if not path.startswith(VIEWER_PREFIX):
        return False
    room = path[len(VIEWER_PREFIX):]
    if not room or "/" in room:  # what the route `/ws/rooms/{room}` matches
        return False
    scope["path_params"] = {"room": room}
    await viewer_endpoint(WebSocket(scope, receive, send))
    return True


class ViewerLink(Protocol):
    """What `run_viewer` needs of a viewer's socket: the ASGI path (`AsgiLink`) or our own
    protocol (edge/viewer_socket.py `ViewerSocket`)."""

    async def accept(self, subprotocol: str | None) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...

    async def send(self, data: bytes, text: bool) -> None:
        """Write one frame, once the socket can take it; raises once it is closed."""

    def direct_writer(self) -> FrameWriter | None:
        """Writes from the hub straight to the socket (hub/direct.py), or None."""

    async def frames_until_closed(self, session: ViewerSession) -> None:
        """Hand received messages to `session` until the socket is gone or the session
        asked to close it."""


class AsgiLink:
    """A viewer socket served through ASGI (uvicorn's protocol, or any other server)."""

    __slots__ = ("websocket",)

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def accept(self, subprotocol: str | None) -> None:
        await self.websocket.accept(subprotocol=subprotocol)

    async def close(self, code: int, reason: str = "") -> None:
        await self.websocket.close(code, reason)

    async def send(self, data: bytes, text: bool) -> None:
        if text:
            await self.websocket.send_text(data.decode())
        else:
            await self.websocket.send_bytes(data)

    def direct_writer(self) -> FrameWriter | None:
        return DirectWriter.for_scope(self.websocket.scope)

    async def frames_until_closed(self, session: ViewerSession) -> None:
        protocol = raw_protocol(self.websocket.scope)
        if not hasattr(protocol, "attach_sink"):
            await _read(self.websocket, session)  # another server or protocol class
            return
        inbox = FrameInbox(session, protocol)
        protocol.attach_sink(inbox.put)
        try:
            await _until_closed(protocol, inbox)
        finally:
            await inbox.close()


async def viewer_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    # Read from the scope, not through `websocket.query_params`/`.headers`, which would keep
    # parsed copies on the WebSocket for the life of the connection (memory per viewer).
    params = QueryParams(websocket.scope["query_string"])
    offered = [p.strip() for name, value in websocket.scope["headers"] if name.lower() == b"sec-websocket-protocol"
               for p in value.decode("latin-1").split(",") if p.strip()]
    # The scope lives as long as the socket: drop the handshake's headers and query string
    # (with the token) now that they are read, ~1.5 KiB per viewer. Nothing reads them later.
    websocket.scope["headers"] = []
    websocket.scope["query_string"] = b""
    await run_viewer(services, AsgiLink(websocket), websocket.path_params["room"], params.get("token"),
                     params.get("since"), params.get("epoch"), offered)


async def run_viewer(services: Services, link: ViewerLink, room: str, token: str | None, since: str | None,
                     epoch: str | None, offered: list[str]) -> None:
    """One viewer, from the accepted handshake to its leave: token, admission, join, then
    frames to its session until the socket closes."""
    settings = services.settings
    codec = choose_codec(offered)
    subprotocol = codec.subprotocol if codec.subprotocol in offered else None
    await link.accept(subprotocol)

    conn_id = f"{services.node_id}-{next(_conn_ids)}"  # unique across nodes (guest ids use it)
    if token:
        try:
            identity = verify(settings.secret, token)
        except AuthError as exc:
            await link.close(CloseCode.BAD_TOKEN, str(exc)[:120])
            return
    else:
        identity = guest(conn_id)
    token = None
    try:
        admission = await services.hub.admit(room, identity) if valid_room(room) else Admission.NO_ROOM
        if admission == Admission.NO_ROOM:
            await link.close(CloseCode.NO_SUCH_ROOM, "no such room")
            return
        if admission == Admission.BANNED:
            await link.close(CloseCode.BANNED, "banned from this room")
            return
    except Exception as exc:  # Redis unreachable or saturated: ask the client to come back
        _refusal_log.warning("refusing a viewer of %s: %s", room, exc)
        await link.close(CloseCode.OVERLOADED, "try again shortly")
        return

    if since is not None and parse_offset(since) is None:
        since = None  # a malformed offset is treated as a fresh join

    direct = link.direct_writer() if settings.direct_write else None
    writer: asyncio.Task[None] | None = None

    def start_writer() -> None:
        nonlocal writer
        writer = asyncio.create_task(_write(link, viewer), name=f"writer-{conn_id}")
        writer.add_done_callback(writer_done)

    def writer_done(task: asyncio.Task[None]) -> None:
        # A drained writer is not kept: an idle viewer holds no finished task (memory).
        nonlocal writer
        if writer is task:
            writer = None

    viewer = Viewer(conn_id, identity, codec, settings.viewer_buffer, direct, start_writer)
    session = ViewerSession(viewer, room, services.hub, settings, services.metrics, services.op_handlers,
                            services.danmaku_listeners, services.leave_listeners)
    try:
        try:
            await services.hub.join(viewer, room, since, epoch)
        except Exception as exc:
            _refusal_log.warning("join of %s failed: %s", room, exc)
            await link.close(CloseCode.OVERLOADED, "try again shortly")
            return
        # A close asked by the hub (4403, 4408) makes the writer send the close frame, and
        # the socket's end then ends the read.
        await link.frames_until_closed(session)
        if viewer.close_code is not None and writer is not None:
            # A close was asked (4429, 4408, ...): let the writer send the close frame.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_TIMEOUT_S * 2)
    finally:
        services.hub.leave(viewer)
        if writer is not None:
            await cancel_and_wait(writer)
        await session.ended()
        viewer.detach()  # its writer callback's closure holds the viewer: a reference cycle


async def _until_closed(protocol: Any, inbox: FrameInbox) -> None:
    """Frames go to the inbox; what still comes through the queue is the disconnect, or
    the inbox's word that a frame made the session close the connection."""
    while True:
        message = await protocol.queue.get()
        if message["type"] != "websocket.receive":
            return
        inbox.put(received_data(message))  # not expected; never dropped


async def _read(websocket: WebSocket, session: ViewerSession) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await session.receive(received_data(message))
        if session.viewer.close_code is not None:
            return


async def _write(link: ViewerLink, viewer: Viewer) -> None:
    """Drain the viewer queue to the socket, then end; on a close code, close with it."""
    try:
        while True:
            batch = viewer.take_frames()
            if batch is None:
                break
            if not batch:
                return  # drained: the next frame that must wait starts a new writer
            for data in batch:
                await link.send(data, viewer.text)
                viewer.sent(data)
                if viewer.close_code is not None:
                    break
        code = viewer.close_code or 1000
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.close(code), CLOSE_TIMEOUT_S)
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
