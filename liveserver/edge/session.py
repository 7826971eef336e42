"""What one viewer connection does with the frames it receives (no websocket I/O here).

`ViewerSession.receive` takes one raw frame and queues the answer (reply, pong, error)
on the viewer. Bad input gets the documented error and the connection stays open;
repeated abuse sets close code 4429.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from protocol import ClientOp, CloseCode, ErrorCode, ProtocolError, frames, parse_op

from liveserver.core.auth import Identity
from liveserver.core.config import Settings
from liveserver.core.errors import OpError
from liveserver.core.metrics import Metrics
from liveserver.core.ops import DanmakuListener, LeaveListener, OpHandler
from liveserver.core.quietlog import QuietLog
from liveserver.core.ratelimit import TokenBucket
from liveserver.engine.engine import Muted
from liveserver.engine.errors import is_unavailable
from liveserver.hub.hub import RoomHub
from liveserver.hub.viewer import Viewer

log = logging.getLogger("liveserver.session")

# The `internal` reply for a Redis that is unreachable, failing over, or did not replicate a
# buy in time (`retry: true`): nothing is half-done; a buy retried with its key gets one answer.
UNAVAILABLE = "storage unavailable; retry (a buy with the same key)"
_unavailable_log = QuietLog(log)  # one warning a second, not one per op of a failover
_leave_log = QuietLog(log)  # likewise for the leaves of an outage

ABUSE_WINDOW_S = 10.0


def _frame_bytes(data: bytes | str, limit: int) -> int:
    """Size of a frame for the LIVESERVER_MAX_FRAME check: text counts in UTF-8 bytes (a
    CJK char is 3), encoded only when its length in chars cannot settle the comparison."""
    if isinstance(data, bytes):
        return len(data)
    if len(data) > limit or len(data) * 4 <= limit:  # UTF-8 is 1..4 bytes per char
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


class ViewerSession:
    __slots__ = ("viewer", "room", "hub", "settings", "metrics", "handlers", "danmaku_listeners", "leave_listeners", "_connected_ms", "op_bucket",
                 "danmaku_bucket", "_errors")  # one per viewer: no per-instance dict

    def __init__(
        self,
        viewer: Viewer,
        room: str,
        hub: RoomHub,
        settings: Settings,
        metrics: Metrics,
        handlers: dict[str, OpHandler],
        danmaku_listeners: list[DanmakuListener],
        leave_listeners: list[LeaveListener] | None = None,
    ) -> None:
        self.viewer = viewer
        self.room = room
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.handlers = handlers
        self.danmaku_listeners = danmaku_listeners
        self.leave_listeners = leave_listeners or []
        self._connected_ms = int(time.time() * 1000)
        self.op_bucket = TokenBucket(settings.op_rate_per_s, settings.op_rate_per_s * 2)
        self.danmaku_bucket = TokenBucket(settings.danmaku_rate_per_s, settings.danmaku_burst)
        # Times of recent abuse errors; created on the first one (an empty deque is ~600 B
        # and most viewers never err: memory per idle viewer counts, docs/performance.md).
        self._errors: deque[float] | None = None

    @property
    def identity(self) -> Identity:
        return self.viewer.identity

    @property
    def user(self) -> str:
        return self.viewer.identity.id

    @property
    def connected_ms(self) -> int:
        return self._connected_ms

    async def ended(self) -> None:
        """The connection is over: tell the leave listeners (e.g. watch time); never raises."""
        for listener in self.leave_listeners:
            try:
                await listener(self)
            except Exception as exc:  # Redis away: the watch time of this session is lost
                _leave_log.warning("leave listener failed: %s", exc)

    async def receive(self, data: bytes | str) -> None:
        """Handle one frame from the client; never raises."""
        op: ClientOp | None = None
        try:
            if _frame_bytes(data, self.settings.max_frame) > self.settings.max_frame:
                raise ProtocolError(ErrorCode.TOO_LONG, f"frame is over {self.settings.max_frame} bytes")
            # A JSON client may send its JSON in a binary frame: the codec accepts both.
            frame = self.viewer.codec.decode(data)
            op = parse_op(frame)
            if not self.op_bucket.take():
                raise OpError(ErrorCode.RATE_LIMITED, "too many frames; slow down")
            result = await self._dispatch(op)
            if result is not None and op.id is not None:
                self.viewer.push_control(self.viewer.encode(frames.reply_ok(op.id, result)))
            self.metrics.op_done(op.op, "ok")
        except ProtocolError as exc:
            self._refuse(exc.frame_id, exc.code, exc.message, {})
        except OpError as exc:
            self._refuse(op.id if op else None, exc.code, exc.message, exc.extra, op.op if op else None)
        except Exception as exc:
            if is_unavailable(exc):  # Redis unreachable / failing over / write not replicated: retryable
                _unavailable_log.warning("op %s: storage unavailable (%s)", op.op if op else "?", exc)
                self._refuse(op.id if op else None, ErrorCode.INTERNAL, UNAVAILABLE, {"retry": True}, op.op if op else None)
                return
            log.exception("op failed")
            self._refuse(op.id if op else None, ErrorCode.INTERNAL, "internal error", {}, op.op if op else None)

    def _refuse(self, fid: int | str | None, code: ErrorCode, message: str, extra: dict[str, Any], op: str | None = None) -> None:
        self.metrics.op_done(op or "invalid", str(code))
        if fid is not None:
            out = frames.reply_error(fid, code, message, **extra)
        else:
            out = frames.error(code, message)
        self.viewer.push_control(self.viewer.encode(out))
        # Business refusals (sold out, limit) are normal; malformed or excess input is abuse.
        if code in (ErrorCode.BAD_REQUEST, ErrorCode.TOO_LONG, ErrorCode.RATE_LIMITED):
            now = time.monotonic()
            if self._errors is None:
                self._errors = deque()
            self._errors.append(now)
            while self._errors and now - self._errors[0] > ABUSE_WINDOW_S:
                self._errors.popleft()
            if len(self._errors) >= self.settings.abuse_errors:
                self.metrics.abuse_closes.inc()
                self.viewer.close(CloseCode.ABUSE)

    async def _dispatch(self, op: ClientOp) -> dict[str, Any] | None:
        if op.op == "ping":
            server_ms = int(time.time() * 1000)
            self.viewer.push_control(self.viewer.encode(frames.pong(op.args.get("client_ms"), server_ms, op.id)))
            return None
        if op.op == "like":
            self.hub.like(self.viewer, op.args["n"])
            return {}
        if op.op == "danmaku":
            return await self._danmaku(op)
        handler = self.handlers.get(op.op)
        if handler is None:
            raise OpError(ErrorCode.NOT_FOUND, f"{op.op}: nothing to {op.op} in this room yet")
        return await handler(self, op)

    async def _danmaku(self, op: ClientOp) -> dict[str, Any]:
        identity = self.viewer.identity
        if identity.is_guest and not self.settings.guest_danmaku:
            raise OpError(ErrorCode.UNAUTHORIZED, "sign in to send danmaku")
        text = " ".join(op.args["text"].split())
        if not text:
            raise OpError(ErrorCode.BAD_REQUEST, "danmaku: text is empty")
        if len(text) > self.settings.max_danmaku_len:
            raise OpError(ErrorCode.TOO_LONG, f"danmaku is longer than {self.settings.max_danmaku_len} characters")
        lowered = text.lower()
        for word in self.settings.blocked_words:
            if word in lowered:
                raise OpError(ErrorCode.BLOCKED_WORD, "danmaku contains a blocked word")
        if not self.danmaku_bucket.take():
            raise OpError(ErrorCode.RATE_LIMITED, "danmaku too fast; wait a moment")
        body: dict[str, Any] = {"user": identity.id, "name": identity.name, "text": text, "role": identity.role}
        if identity.badge:
            body["badge"] = identity.badge
        try:
            offset, ts = await self.hub.say(self.room, "danmaku", body, mute_user=identity.id)
        except Muted as exc:
            raise OpError(ErrorCode.MUTED, "you are muted", until_ms=exc.until_ms) from None
        reply: dict[str, Any] = {"offset": offset, "ts": ts}
        for listener in self.danmaku_listeners:  # e.g. a keyword enters a lottery
            reply.update(await listener(self, text))
        return reply
