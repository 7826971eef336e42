"""A bounded queue in front of an aiortc receiver's decoder thread.

aiortc queues every received video frame for its decoder thread in an unbounded queue.
A decoder that cannot keep up (a busy box, a source larger than the box can decode)
then falls further behind every second: the live's latency and the queue's memory grow
without end, and a close waits for the whole backlog. Here, once `limit` frames wait,
they are dropped, and so is every frame after them until a keyframe (a P-frame without
its reference decodes to smears), and the receiver is asked for a keyframe at once
(its decode-error flag: aiortc then sends a PLI to the publisher, RFC 4585). The
viewers see a skip, then the live again, at most `limit` frames behind.

The queue replaces aiortc's private `_RTCRtpReceiver__decoder_queue` (aiortc 1.16) before
the decoder thread starts; `tests/media/test_decode_queue.py` fails if aiortc changes it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

DECODE_LIMIT = 30  # frames waiting to be decoded: ~1 s of 30 fps video
# aiortc 1.16's private receiver attributes (name-mangled): the queue, the decoder thread
# (None until it starts) and the decode-error flag that makes the receiver send a PLI
_QUEUE = "_RTCRtpReceiver__decoder_queue"
_THREAD = "_RTCRtpReceiver__decoder_thread"
_ERROR = "_RTCRtpReceiver__decoder_error"


def is_keyframe(mime: str, data: bytes) -> bool | None:
    """Whether an encoded frame starts a picture on its own; None for a codec not known here."""
    mime = mime.lower()
    if mime == "video/vp8":
        return bool(data) and not data[0] & 0x01  # frame tag bit 0: 0 = key frame (RFC 6386 9.1)
    if mime == "video/h264":
        # Annex B as aiortc's depayloader writes it: an IDR slice (5) or an SPS (7) starts it
        start = data.find(b"\x00\x00\x01")
        while start != -1 and start + 3 < len(data):
            if data[start + 3] & 0x1F in (5, 7):
                return True
            start = data.find(b"\x00\x00\x01", start + 3)
        return False
    return None


class DecodeQueue(queue.Queue):  # type: ignore[type-arg]
    """Items are aiortc's `(codec, encoded_frame)` and its end marker `None`."""

    def __init__(self, limit: int, ask_keyframe: threading.Event | None) -> None:
        super().__init__()
        self.limit = limit
        self.ask_keyframe = ask_keyframe
        self.skipping = False
        self.dropped = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        # Below the limit and not skipping (nearly always) a frame goes in unlooked at.
        if item is not None and (self.skipping or self.qsize() >= self.limit):
            codec, frame = item
            key = is_keyframe(codec.mimeType, frame.data)
            if key is not None:  # a codec whose keyframes are known here (others are never bounded)
                if not self.skipping:  # the backlog reached the limit: drop it
                    self.dropped += drain(self)
                    if not key and self.ask_keyframe is not None:
                        self.ask_keyframe.set()
                self.skipping = not key
                if self.skipping:
                    self.dropped += 1
                    return
        super().put(item, block, timeout)


def drain(pending: "queue.Queue[Any]") -> int:
    """Drop every item waiting in `pending`; returns how many."""
    dropped = 0
    try:
        while True:
            pending.get_nowait()
            dropped += 1
    except queue.Empty:
        pass
    return dropped


def drop_waiting(receiver: Any) -> int:
    """Drop the frames waiting for `receiver`'s decoder (bounded queue or not)."""
    pending = getattr(receiver, _QUEUE, None)
    return drain(pending) if isinstance(pending, queue.Queue) else 0


def bound_decoding(receiver: Any) -> DecodeQueue | None:
    """Put a DecodeQueue of DECODE_LIMIT frames in front of `receiver`'s decoder; None if
    its decoder thread already started (it holds the old queue) or aiortc has no such queue."""
    if getattr(receiver, _THREAD, True) is not None or not isinstance(getattr(receiver, _QUEUE, None), queue.Queue):
        return None
    bounded = DecodeQueue(DECODE_LIMIT, getattr(receiver, _ERROR, None))
    setattr(receiver, _QUEUE, bounded)
    return bounded


def dropped_frames(receivers: list[Any]) -> int:
    """Frames the bounded queues of `receivers` dropped so far."""
    return sum(getattr(getattr(r, _QUEUE, None), "dropped", 0) for r in receivers)
