"""The webhook signature: `Liveserver-Signature: t=<unix>,v1=<hex hmac_sha256(secret, "<t>.<body>")>`.

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares
in constant time, and refuses a timestamp too far from its clock (replays)."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Liveserver-Signature"


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300, now: float | None = None) -> bool:
    """True when `header` is a valid signature of `body` made within `tolerance_s`."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
