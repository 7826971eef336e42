"""uvicorn's `websockets-sansio` protocol with leaner per-connection state.

Every viewer is one of these objects for as long as it watches, so its size is the
floor of memory per idle viewer. uvicorn gives each connection an `asyncio.Queue` (three
deques and an Event with a fourth) for received messages and an `asyncio.Event` (a fifth
deque) for "writable": ~3.8 KiB of empty deques per connection. Here they are a list
with one waiter future and a flag with a lazily created waiter list: the same interface
uvicorn uses (`put_nowait`, `get`, `empty`, `qsize`; `set`, `clear`, `is_set`, `wait`).
The handshake's request and response objects are dropped once the socket is accepted.
Once the viewer has joined, received messages go to its `FrameInbox` (`attach_sink`,
edge/inbox.py) instead of the ASGI queue; the handshake, the close, what is sent and
`hub/direct.py` (which reads `writable.is_set()`) go through uvicorn as before.
Selected by `liveserver serve` (cli), and `LIVESERVER_LEAN_WS=0` falls back to uvicorn's
class (and to the ASGI read loop in edge/ws.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from liveserver.edge.inbox import received_data
from liveserver.edge.viewer_socket import ViewerSocket, parse_upgrade


class LeanQueue:
    """A single-consumer FIFO with asyncio.Queue's `put_nowait`/`get`/`empty`/`qsize`."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def take(self, kind: str) -> list[Any]:
        """Remove and return the queued messages whose type is `kind`, in order."""
        taken = [m for m in self._items if m["type"] == kind]
        if taken:
            self._items = [m for m in self._items if m["type"] != kind]
        return taken

    def qsize(self) -> int:
        return len(self._items)


class LeanEvent:
    """asyncio.Event's `set`/`clear`/`is_set`/`wait`, with the waiters made on demand."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            return await fut
        finally:
            if self._waiters is not None and fut in self._waiters:
                self._waiters.remove(fut)


_BAD_BODY = b"Invalid HTTP request received."
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
               + str(len(_BAD_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _BAD_BODY)


CLOSE_ASKED = {"type": "liveserver.close_asked"}


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent()  # type: ignore[assignment]
        self.writable.set()
        self._app_done = False
        # Set by edge/ws.py once the viewer joined (`attach_sink`): each received message
        # goes straight to it, not through the ASGI queue (edge/inbox.py says why).
        self.frame_sink: Callable[[bytes | str], None] | None = None

    # A closed connection must be freed by reference counting, not left in reference
    # cycles for the cyclic GC: with 10,000 viewers a full collection walks ~900,000
    # objects and stops the node for ~1 s (docs/performance.md). websockets' protocol
    # holds its parser generator, whose frame holds the protocol; the scope holds our
    # bound `send` (hub/direct.py). Both are cut once the app is done and the socket gone.
    # (Not by wrapping `run_asgi`: one more suspended coroutine per viewer, ~0.3 KiB.)
    def on_task_complete(self, task: "asyncio.Task[None]") -> None:
        super().on_task_complete(task)
        self._app_done = True
        self._release()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._release()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None and not self.transport.is_closing():
            # websockets could not parse the request (the viewer short path below hands it
            # the raw bytes): uvicorn would leave the socket open with nothing said, where
            # its HTTP parser answers 400 and closes. Do the same.
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def send_receive_event_to_app(self) -> None:
        sink = self.frame_sink
        if sink is None or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:  # as uvicorn does, without a traceback per bad frame
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            sink(text)
        else:
            sink(bytes(data))

    def attach_sink(self, sink: Callable[[bytes | str], None]) -> None:
        """From now on hand received messages to `sink`. Those already queued for the app
        go to it first, in order; a queued disconnect stays for the app to read."""
        for message in self.queue.take("websocket.receive"):  # type: ignore[attr-defined]
            sink(received_data(message))
        self.frame_sink = sink
        if self.read_paused:  # uvicorn paused reading until the app took the message
            self.read_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def close_asked(self) -> None:
        """A frame made the session close the connection (edge/inbox.py): wake the endpoint."""
        self.queue.put_nowait(CLOSE_ASKED)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message.get("type") == "websocket.accept":
            # uvicorn keeps the handshake's request and response (their headers: ~3 KiB)
            # for the life of the connection; nothing reads them after the accept. The
            # request also stays referenced by websockets' parser generator (a local of
            # its suspended frame), so its headers and path (with the token) are emptied.
            request = self.request
            if request is not None:
                request.headers.clear()
                request.path = ""
            self.request = self.response = None  # type: ignore[assignment]

    def _release(self) -> None:
        if not (self._app_done and self.disconnected):
            return
        scope = getattr(self, "scope", None)
        if isinstance(scope, dict):
            scope.clear()
        self.frame_sink = None  # the inbox holds the session, which holds this protocol
        self.conn.parser = None  # type: ignore[assignment]


VIEWER_UPGRADE = b"GET /ws/rooms/"


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with two changes.

    - A connection whose first bytes are a viewer socket's request line becomes our own
      viewer socket (edge/viewer_socket.py) when its whole head is there and plain;
      otherwise it goes straight to the websocket protocol, which parses the handshake itself anyway (and answers a
      request that is not a valid upgrade with 400/426). uvicorn would first parse it
      with httptools (a Python callback per header), rebuild it byte by byte, and set up
      flow control and the addresses for HTTP, all thrown away at the upgrade: ~10 % of
      a join's CPU (docs/performance.md). The HTTP set-up is made on the first plain
      request instead.
    - The parser (which calls back the protocol's bound methods) is dropped once the
      connection is upgraded: the two held each other, so every viewer left one cycle for
      the cyclic GC.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connections.add(self)
        self.transport = transport

    def _http_setup(self) -> None:
        if self.flow is None:
            super().connection_made(self.transport)  # flow control, addresses, scheme

    def data_received(self, data: bytes) -> None:
        if self.flow is None:
            if data.startswith(VIEWER_UPGRADE) and self.ws_protocol_class is not None:
                self._upgrade_viewer(data)
                return
            self._http_setup()
        super().data_received(data)

    def pause_writing(self) -> None:
        self._http_setup()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._http_setup()
        super().resume_writing()

    def _upgrade_viewer(self, data: bytes) -> None:
        self.connections.discard(self)
        services = getattr(getattr(self.app, "state", None), "services", None)
        if services is not None and services.settings.native_ws:
            # Our own viewer socket when the request is a plain, whole upgrade
            # (edge/viewer_socket.py); anything else goes on the uvicorn way below.
            upgrade = parse_upgrade(data)
            if upgrade is not None:
                self.parser = None  # type: ignore[assignment]
                ViewerSocket.take_over(self.transport, upgrade, services, self.server_state, self.config)
                return
        protocol = self.ws_protocol_class(  # type: ignore[call-arg, misc]
            config=self.config, server_state=self.server_state, app_state=self.app_state)
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        self.parser = None  # type: ignore[assignment]
        protocol.data_received(data)

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]
