"""A small TCP fault proxy for tests: sits between liveserver nodes and Redis and injects
added latency, a stall (bytes held, connections kept) or a cut (connections dropped and
new ones refused until restored).

It runs its own event loop in a thread, so a test that blocks its own loop (sync HTTP
calls) never stalls the proxy by accident. Upstream is a unix socket or host:port.

    proxy = FaultProxy(unix_path="/tmp/.../redis.sock").start()
    url = proxy.url                   # redis://127.0.0.1:<port>
    proxy.set_latency(0.05)           # every chunk, both ways, 50 ms later
    proxy.stall()  ...  proxy.heal()  # hold every byte, then let it through
    proxy.cut()    ...  proxy.heal()  # drop every connection, refuse new ones
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class FaultProxy:
    def __init__(self, unix_path: str | None = None, host: str = "127.0.0.1", port: int | None = None) -> None:
        assert unix_path or port, "an upstream: unix_path or port"
        self.unix_path = unix_path
        self.up_host, self.up_port = host, port
        self.port = 0
        self.latency = 0.0
        self.connections = 0  # accepted so far
        self._cut = False
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._flowing: asyncio.Event | None = None  # set = bytes flow; created in the proxy's loop

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- control (called from the test's thread) -------------------------------------------
    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def stall(self) -> None:
        """Hold every byte in both directions; connections stay open."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until `heal`."""
        self._cut = True
        self._call(self._drop_all())

    def heal(self) -> None:
        self._cut = False
        self.latency = 0.0
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the proxy (in its own loop) --------------------------------------------------------
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop_all()
        # Every connection's tasks end here, in this loop. A task left pending in a stopped
        # loop is logged when a later test's GC collects it, with a traceback whose
        # formatting (Python 3.11's carets) calls ast.parse. If that GC ran inside another
        # ast.parse (hypothesis reads test sources), CPython raised "SystemError: AST
        # constructor recursion depth mismatch" in a later, unrelated test.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drop_all(self) -> None:
        for a, b in list(self._pairs):
            for w in (a, b):
                w.transport.abort()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._cut:
            writer.transport.abort()
            return
        try:
            if self.unix_path:
                up_r, up_w = await asyncio.open_unix_connection(self.unix_path)
            else:
                up_r, up_w = await asyncio.open_connection(self.up_host, self.up_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_w)
        self._pairs.add(pair)
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)
        self._pairs.discard(pair)
        for w in pair:
            w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            if not data:
                dst.transport.abort()
                return
            if self.latency:
                await asyncio.sleep(self.latency)
            assert self._flowing is not None
            await self._flowing.wait()
            if self._cut:
                return
            dst.write(data)
            await dst.drain()
