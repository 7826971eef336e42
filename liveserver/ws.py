"""The viewer websocket `/ws/rooms/{room}`: authentication, then a reader loop (frames in
-> session) and a writer task (viewer queue -> socket)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import CloseCode, choose_codec, parse_offset

from .auth import AuthError, guest, verify
from .direct import DirectWriter
from .keys import valid_room
from .services import Services
from .session import ViewerSession
from .tasks import cancel_and_wait
from .viewer import Viewer

log = logging.getLogger("liveserver.ws")

_conn_ids = itertools.count(1)
CLOSE_TIMEOUT_S = 5.0


async def viewer_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings
    room = websocket.path_params["room"]
    params = websocket.query_params
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    codec = choose_codec(offered)
    await websocket.accept(subprotocol=codec.subprotocol if codec.subprotocol in offered else None)

    conn_id = f"{services.node_id}-{next(_conn_ids)}"  # unique across nodes (guest ids use it)
    token = params.get("token")
    if token:
        try:
            identity = verify(settings.secret, token)
        except AuthError as exc:
            await websocket.close(CloseCode.BAD_TOKEN, str(exc)[:120])
            return
    else:
        identity = guest(conn_id)
    try:
        if not valid_room(room) or not (room in services.hub.rooms or await services.engine.room_exists(room)):
            await websocket.close(CloseCode.NO_SUCH_ROOM, "no such room")
            return
        if not identity.is_guest and await services.engine.is_banned(room, identity.id):
            await websocket.close(CloseCode.BANNED, "banned from this room")
            return
    except Exception as exc:  # Redis unreachable or saturated: ask the client to come back
        log.warning("refusing a viewer of %s: %s", room, exc)
        await websocket.close(CloseCode.OVERLOADED, "try again shortly")
        return

    since = params.get("since")
    epoch = params.get("epoch")
    if since is not None and parse_offset(since) is None:
        since = None  # a malformed offset is treated as a fresh join

    direct = DirectWriter.for_scope(websocket.scope) if settings.direct_write else None
    writer: asyncio.Task[None] | None = None

    def start_writer() -> None:
        nonlocal writer
        writer = asyncio.create_task(_write(websocket, viewer), name=f"writer-{conn_id}")

    viewer = Viewer(conn_id, identity, codec, settings.viewer_buffer, direct, start_writer)
    session = ViewerSession(viewer, room, services.hub, services.engine, settings, services.metrics, services.op_handlers)
    try:
        try:
            await services.hub.join(viewer, room, since, epoch)
        except Exception as exc:
            log.warning("join of %s failed: %s", room, exc)
            await websocket.close(CloseCode.OVERLOADED, "try again shortly")
            return
        # This coroutine reads; a close asked by the hub (4403, 4408) makes the writer send
        # the close frame, and uvicorn then ends the read with a disconnect.
        await _read(websocket, session)
        if viewer.close_code is not None and writer is not None:
            # A close was asked (4429, 4408, ...): let the writer send the close frame.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_TIMEOUT_S * 2)
    finally:
        services.hub.leave(viewer)
        if writer is not None:
            await cancel_and_wait(writer)


async def _read(websocket: WebSocket, session: ViewerSession) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        await session.receive(data)
        if session.viewer.close_code is not None:
            return


async def _write(websocket: WebSocket, viewer: Viewer) -> None:
    """Drain the viewer queue to the socket, then end; on a close code, close with it."""
    try:
        while True:
            batch = viewer.take_frames()
            if batch is None:
                break
            if not batch:
                return  # drained: the next frame that must wait starts a new writer
            for data in batch:
                if viewer.text:
                    await websocket.send_text(data.decode())
                else:
                    await websocket.send_bytes(data)
                viewer.sent(data)
                if viewer.close_code is not None:
                    break
        code = viewer.close_code or 1000
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code), CLOSE_TIMEOUT_S)
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
