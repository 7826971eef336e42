"""Ingest health of one source: fps, bitrate, resolution, keyframe interval, drops."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestHealth:
    kind: str  # whip | rtmp
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    dropped_frames: int = 0  # frames the encoder could not keep up with
    packets_lost: int = 0  # RTP packets lost on the way in (WHIP)
    decode_dropped: int = 0  # received frames dropped because the decoder was behind (WHIP)
    bytes_in: int = 0
    width: int = 0
    height: int = 0
    keyframes: int = 0
    encoded_frames: int = 0
    encode_seconds: float = 0.0
    _last_key: float | None = None
    keyframe_interval_s: float = 0.0
    _window: list[tuple[float, int, int]] = field(default_factory=list)  # (t, frames, bytes)

    def frame(self, width: int, height: int, keyframe: bool, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.frames += 1
        self.width, self.height = width, height
        if keyframe:
            self.keyframes += 1
            if self._last_key is not None:
                self.keyframe_interval_s = now - self._last_key
            self._last_key = now

    def sample(self) -> None:
        """Called about once a second: keeps a short window for the rates."""
        self._window.append((time.monotonic(), self.frames, self.bytes_in))
        del self._window[:-6]

    def snapshot(self) -> dict[str, Any]:
        fps = bitrate = 0.0
        if len(self._window) >= 2:
            (t0, f0, b0), (t1, f1, b1) = self._window[0], self._window[-1]
            if t1 > t0:
                fps = (f1 - f0) / (t1 - t0)
                bitrate = (b1 - b0) * 8 / (t1 - t0)
        return {
            "kind": self.kind,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "width": self.width,
            "height": self.height,
            "fps": round(fps, 1),
            "bitrate_bps": int(bitrate),
            "keyframe_interval_s": round(self.keyframe_interval_s, 2),
            "frames": self.frames,
            "dropped_frames": self.dropped_frames,
            "packets_lost": self.packets_lost,
            "decode_dropped": self.decode_dropped,
            "encoded_frames": self.encoded_frames,
            "encode_ms_per_frame": round(1000 * self.encode_seconds / self.encoded_frames, 2) if self.encoded_frames else 0.0,
        }
