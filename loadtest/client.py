"""One simulated viewer: a websocket that checks the offset chain and times every event.

Ordering and gaps: each `batch` names the offset it follows (`prev`); it must equal the
last offset this viewer holds. A resumed welcome with `recovered: true` continues the
chain from `since`; `recovered: false` starts a new chain (counted, not a gap).
Latency: receive wall time - event `ts` (server ms at accept, same machine clock).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.codec import JSON, MSGPACK, Codec
from protocol.codes import CloseCode
from protocol.offsets import parse_offset

from .stats import WorkerStats

CODECS: dict[str, Codec] = {"json": JSON, "msgpack": MSGPACK}  # --codec name -> the wire codec
FINAL_CLOSES = (CloseCode.BAD_TOKEN, CloseCode.BANNED, CloseCode.NO_SUCH_ROOM)  # retrying cannot help


def _key(offset: str) -> tuple[int, int]:
    return parse_offset(offset) or (0, 0)


class LoadViewer:
    def __init__(self, index: int, user: str, url: str, token: str, codec: str, stats: WorkerStats) -> None:
        self.index = index
        self.user = user
        self.url = url  # ws://host:port/ws/rooms/<room>
        self.token = token
        self.codec = codec
        self.stats = stats
        self.ws: ClientConnection | None = None
        self.offset: str | None = None  # last offset of the chain
        self.epoch: str | None = None
        self.replay_upto: tuple[int, int] | None = None  # replayed events are not timed
        self.connected = asyncio.Event()
        self.wanted = False  # should be connected (ramp) and reconnect if dropped
        self.leaving = False  # we close on purpose: not an error
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.reconnects = 0
        self._encode = CODECS[codec].encode

    # -- connection ------------------------------------------------------------------
    def start(self, connect_sem: asyncio.Semaphore) -> None:
        self.wanted = True
        self.leaving = False
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(connect_sem))

    async def stop(self) -> None:
        """Leave on purpose (ramp down or end of run)."""
        self.wanted = False
        self.leaving = True
        ws = self.ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 2)
            except Exception:
                pass
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 3)
            except (asyncio.TimeoutError, Exception):
                self.task.cancel()

    async def drop(self) -> None:
        """A network drop: abort the TCP connection without a close handshake."""
        self.leaving = True
        ws = self.ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 3)
            except (asyncio.TimeoutError, Exception):
                self.task.cancel()

    def _connect_url(self) -> str:
        params = [f"token={quote(self.token)}"]
        if self.offset is not None and self.epoch is not None:
            params += [f"since={quote(self.offset)}", f"epoch={quote(self.epoch)}"]
        return self.url + "?" + "&".join(params)

    async def _run(self, connect_sem: asyncio.Semaphore) -> None:
        backoff = 0.2
        while self.wanted:
            resuming = self.offset is not None
            started = time.perf_counter()
            try:
                async with connect_sem:
                    ws = await asyncio.wait_for(
                        connect(self._connect_url(), subprotocols=[CODECS[self.codec].subprotocol], max_size=None,
                                compression=None, ping_interval=None, open_timeout=20, close_timeout=2),
                        25,
                    )
            except Exception as exc:
                self.stats.error("connect_errors", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)
                continue
            self.stats.connect.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
            self.ws = ws
            self.stats.add("connects")
            if resuming:
                self.stats.add("resumes")
            try:
                await self._read(ws)
            finally:
                self.ws = None
                if self.connected.is_set():
                    self.connected.clear()
                    self.stats.connected -= 1
                for fut in self.pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("connection closed"))
                self.pending.clear()
            if self.leaving:
                return
            code = ws.close_code
            self.stats.close_codes[str(code)] += 1
            self.stats.error("unexpected_closes", f"{self.user} closed with {code} {ws.close_reason or ''}")
            if code in FINAL_CLOSES:
                return  # retrying cannot help
            await asyncio.sleep(backoff)

    async def _read(self, ws: ClientConnection) -> None:
        # The frame type picks the codec (binary = msgpack), whichever was negotiated.
        decode_binary, decode_text = MSGPACK.decode, JSON.decode
        try:
            async for raw in ws:
                now_ms = time.time() * 1000
                try:
                    frame = decode_binary(raw) if isinstance(raw, bytes) else decode_text(raw)
                except Exception as exc:  # ProtocolError: not a map in that codec
                    self.stats.error("bad_frames", repr(exc))
                    continue
                self._on_frame(frame, now_ms)
        except ConnectionClosed:
            pass
        except Exception as exc:  # transport errors end this connection; _run reconnects
            self.stats.error("read_errors", f"{type(exc).__name__}: {exc}")

    def _on_frame(self, frame: dict[str, Any], now_ms: float) -> None:
        t = frame.get("t")
        st = self.stats
        if t == "batch":
            st.add("frames")
            prev = frame.get("prev")
            if self.offset is not None and prev != self.offset:
                st.error("gaps", f"{self.user}: batch prev {prev} != last offset {self.offset}")
            last = _key(self.offset) if self.offset is not None else (0, 0)
            events = frame.get("events") or []
            for event in events:
                key = _key(event.get("offset", ""))
                if key <= last:
                    st.error("out_of_order", f"{self.user}: event {event.get('offset')} after {last}")
                last = key
                if self.replay_upto is not None and key <= self.replay_upto:
                    st.add("replayed_events")
                    continue
                ts = event.get("ts")
                if isinstance(ts, (int, float)) and ts > 0:
                    st.event_latency(now_ms - ts)
            if events:
                st.add("deliveries", len(events))
            self.offset = frame.get("offset", self.offset)
            state = frame.get("state")
            if state and "online" in state:
                st.online = state["online"]
        elif t == "reply":
            fut = self.pending.pop(frame.get("re"), None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(frame)
            elif fut is None:
                st.add("replies_unmatched")
        elif t == "welcome":
            resumed = self.offset is not None
            if resumed and not frame.get("recovered"):
                st.add("resume_unrecovered")
            if not (resumed and frame.get("recovered")):
                self.offset = frame.get("offset")
                self.replay_upto = None
            else:
                self.replay_upto = _key(frame.get("offset", ""))
            self.epoch = frame.get("epoch")
            state = frame.get("state") or {}
            if "online" in state:
                st.online = state["online"]
            if not self.connected.is_set():
                self.connected.set()
                st.connected += 1
        elif t == "error":
            st.error("error_frames", f"{frame.get('code')}: {frame.get('message')}")
        elif t == "pong":
            pass

    # -- sending ---------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> bool:
        ws = self.ws
        if ws is None or not self.connected.is_set():
            return False
        try:
            await ws.send(self._encode(frame))
            return True
        except Exception:
            return False

    async def request(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]] | None:
        """Send an op with an id; the future resolves with its reply (None if not sent)."""
        self.next_id += 1
        rid = self.next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        if not await self.send({**frame, "id": rid}):
            self.pending.pop(rid, None)
            return None
        return fut
