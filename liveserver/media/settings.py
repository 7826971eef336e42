"""Media settings, read from the environment (LIVESERVER_MEDIA_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _layout(raw: str) -> str:
    if raw not in ("pip", "grid"):
        raise SystemExit(f"LIVESERVER_MEDIA_LINKMIC_LAYOUT must be pip or grid, got {raw!r}")
    return raw


@dataclass(frozen=True)
class MediaSettings:
    host: str = "127.0.0.1"
    port: int = 8001
    public_url: str = ""  # how web nodes and players reach this process (redirect target)
    data_dir: Path = Path(".liveserver")
    fps: int = 30  # encoder frame rate the output timestamps assume at most
    keyint_s: float = 1.0  # a keyframe every second: late WHEP joiners and HLS segments
    bitrate: int = 1_500_000
    preset: str = "veryfast"
    hls_time_s: float = 1.0
    hls_list_size: int = 6
    viewer_queue: int = 90  # packets per WHEP viewer before it is reset to the next keyframe
    max_viewers: int = 500
    owner_ttl_ms: int = 10_000
    ingest_timeout_s: float = 10.0  # no frame for this long ends the live
    rtmp_port: int = 0  # 0 = no RTMP listener
    linkmic_layout: str = "pip"  # pip | grid: how guests are drawn into the program picture
    linkmic_max_guests: int = 1  # 1..4 guests on camera at once
    stun: str = ""  # e.g. stun:stun.l.google.com:19302 (none by default: host candidates only)

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @classmethod
    def from_env(cls, port: int | None = None, host: str | None = None) -> "MediaSettings":
        port = port if port is not None else _int("LIVESERVER_MEDIA_PORT", 8001)
        host = host or os.environ.get("LIVESERVER_MEDIA_HOST", "127.0.0.1")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return cls(
            host=host,
            port=port,
            public_url=(os.environ.get("LIVESERVER_MEDIA_PUBLIC_URL") or f"http://{shown}:{port}").rstrip("/"),
            data_dir=Path(os.environ.get("LIVESERVER_DATA_DIR", ".liveserver")).resolve(),
            fps=_int("LIVESERVER_MEDIA_FPS", 30),
            keyint_s=float(os.environ.get("LIVESERVER_MEDIA_KEYINT_S") or 1.0),
            bitrate=_int("LIVESERVER_MEDIA_BITRATE", 1_500_000),
            preset=os.environ.get("LIVESERVER_MEDIA_PRESET", "veryfast"),
            hls_time_s=float(os.environ.get("LIVESERVER_MEDIA_HLS_TIME_S") or 1.0),
            viewer_queue=_int("LIVESERVER_MEDIA_VIEWER_QUEUE", 90),
            max_viewers=_int("LIVESERVER_MEDIA_MAX_VIEWERS", 500),
            owner_ttl_ms=_int("LIVESERVER_MEDIA_OWNER_TTL_MS", 10_000),
            ingest_timeout_s=float(os.environ.get("LIVESERVER_MEDIA_INGEST_TIMEOUT_S") or 10.0),
            rtmp_port=_int("LIVESERVER_RTMP_PORT", 0),
            stun=os.environ.get("LIVESERVER_MEDIA_STUN", ""),
            linkmic_layout=_layout(os.environ.get("LIVESERVER_MEDIA_LINKMIC_LAYOUT") or "pip"),
            linkmic_max_guests=max(1, min(4, _int("LIVESERVER_LINKMIC_MAX_GUESTS", 1))),
        )
