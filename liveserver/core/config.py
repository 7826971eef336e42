"""Settings, read once from the environment (every name is listed in the README)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _words(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(w.strip().lower() for w in raw.split(",") if w.strip())


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    secret: str = ""
    secret_generated: bool = False
    data_dir: Path = Path(".liveserver")
    tick_ms: int = 100
    danmaku_per_tick: int = 20
    max_frame: int = 4096
    max_danmaku_len: int = 100
    danmaku_rate_per_s: float = 2.0
    danmaku_burst: int = 5
    op_rate_per_s: float = 50.0
    abuse_errors: int = 20
    guest_danmaku: bool = False
    blocked_words: tuple[str, ...] = field(default_factory=tuple)
    stream_maxlen: int = 10000
    viewer_buffer: int = 1 << 20
    slow_close_ms: int = 5000
    node_ttl_ms: int = 3000
    order_ttl_s: int = 900
    redis_wait_replicas: int = 0
    demo_room: bool = True
    scheduler: bool = True
    redis_pool: int = 64
    direct_write: bool = True
    webhooks: bool = True
    archive: bool = True
    followup_watch_s: int = 300
    reminder_lead_s: int = 600
    webhooks_allow_private: bool = False
    webhook_timeout_ms: int = 5000
    webhook_backoff_ms: int = 1000
    webhook_backoff_max_ms: int = 3_600_000
    webhook_retry_s: int = 86400
    webhook_lease_ms: int = 30_000
    webhook_max_inflight: int = 256
    webhook_per_hook_inflight: int = 8
    flush_coalesce_ms: int = 2  # a quiet room's event goes out this long after it arrives
    counters_ms: int = 1000  # a batch with only likes/online changes goes out at most this often
    counter_frames: int = 2000  # ...and at most this many such frames a second per room and node
    gc_freeze: bool = True  # freeze full collections' survivors (core/gcpolicy.py)
    gc_sweep_s: int = 3600  # unfreeze and collect everything this often (0: never)
    adaptive_flush: bool = True  # False: every batch waits for the tick (as before)
    lean_ws: bool = True  # serve websockets with edge/lean.py's leaner per-connection state
    native_ws: bool = True  # with lean_ws: viewer sockets on our own protocol (edge/viewer_socket.py)
    ws_ping_ms: int = 20_000  # websocket keepalive: a ping this often; none answered by the next closes 1011
    stall_dump_s: int = 10  # a loop blocked this long dumps every thread's stack (0: off)

    @classmethod
    def from_env(cls) -> "Settings":
        secret = os.environ.get("LIVESERVER_SECRET", "")
        generated = os.environ.get("LIVESERVER_SECRET_GENERATED") == "1"
        if not secret:
            # A random secret keeps a dev server safe; tokens die with the process.
            secret = secrets.token_urlsafe(32)
            generated = True
        return cls(
            redis_url=os.environ.get("LIVESERVER_REDIS_URL") or None,
            secret=secret,
            secret_generated=generated,
            data_dir=Path(os.environ.get("LIVESERVER_DATA_DIR", ".liveserver")),
            tick_ms=_int("LIVESERVER_TICK_MS", 100, 5),
            danmaku_per_tick=_int("LIVESERVER_DANMAKU_PER_TICK", 20, 1),
            max_frame=_int("LIVESERVER_MAX_FRAME", 4096, 64),
            max_danmaku_len=_int("LIVESERVER_MAX_DANMAKU_LEN", 100, 1),
            danmaku_rate_per_s=float(_int("LIVESERVER_DANMAKU_RATE", 2, 1)),
            danmaku_burst=_int("LIVESERVER_DANMAKU_BURST", 5, 1),
            op_rate_per_s=float(_int("LIVESERVER_OP_RATE", 50, 1)),
            abuse_errors=_int("LIVESERVER_ABUSE_ERRORS", 20, 1),
            guest_danmaku=_bool("LIVESERVER_GUEST_DANMAKU", False),
            blocked_words=_words("LIVESERVER_BLOCKED_WORDS"),
            stream_maxlen=_int("LIVESERVER_STREAM_MAXLEN", 10000, 10),
            viewer_buffer=_int("LIVESERVER_VIEWER_BUFFER", 1 << 20, 1024),
            slow_close_ms=_int("LIVESERVER_SLOW_CLOSE_MS", 5000, 0),
            node_ttl_ms=_int("LIVESERVER_NODE_TTL_MS", 3000, 500),
            order_ttl_s=_int("LIVESERVER_ORDER_TTL_S", 900, 1),
            redis_wait_replicas=_int("LIVESERVER_REDIS_WAIT_REPLICAS", 0, 0),
            demo_room=_bool("LIVESERVER_DEMO", True),
            scheduler=_bool("LIVESERVER_SCHEDULER", True),
            redis_pool=_int("LIVESERVER_REDIS_POOL", 64, 2),
            direct_write=_bool("LIVESERVER_DIRECT_WRITE", True),
            webhooks=_bool("LIVESERVER_WEBHOOKS", True),
            archive=_bool("LIVESERVER_ARCHIVE", True),
            followup_watch_s=_int("LIVESERVER_FOLLOWUP_WATCH_S", 300, 0),
            reminder_lead_s=_int("LIVESERVER_REMINDER_LEAD_S", 600, 0),
            webhooks_allow_private=_bool("LIVESERVER_WEBHOOKS_ALLOW_PRIVATE", False),
            webhook_timeout_ms=_int("LIVESERVER_WEBHOOK_TIMEOUT_MS", 5000, 100),
            webhook_backoff_ms=_int("LIVESERVER_WEBHOOK_BACKOFF_MS", 1000, 10),
            webhook_backoff_max_ms=_int("LIVESERVER_WEBHOOK_BACKOFF_MAX_MS", 3_600_000, 10),
            webhook_retry_s=_int("LIVESERVER_WEBHOOK_RETRY_S", 86400, 1),
            webhook_lease_ms=_int("LIVESERVER_WEBHOOK_LEASE_MS", 30_000, 200),
            webhook_max_inflight=_int("LIVESERVER_WEBHOOK_MAX_INFLIGHT", 256, 1),
            webhook_per_hook_inflight=_int("LIVESERVER_WEBHOOK_PER_HOOK_INFLIGHT", 8, 1),
            flush_coalesce_ms=_int("LIVESERVER_FLUSH_COALESCE_MS", 2, 0),
            counters_ms=_int("LIVESERVER_COUNTERS_MS", 1000, 0),
            counter_frames=_int("LIVESERVER_COUNTER_FRAMES", 2000, 1),
            gc_freeze=_bool("LIVESERVER_GC_FREEZE", True),
            gc_sweep_s=_int("LIVESERVER_GC_SWEEP_S", 3600, 0),
            adaptive_flush=_bool("LIVESERVER_ADAPTIVE_FLUSH", True),
            lean_ws=_bool("LIVESERVER_LEAN_WS", True),
            native_ws=_bool("LIVESERVER_NATIVE_WS", True),
            ws_ping_ms=_int("LIVESERVER_WS_PING_MS", 20_000, 0),
            stall_dump_s=_int("LIVESERVER_STALL_DUMP_S", 10, 0),
        )
