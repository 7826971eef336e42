"""Chat rules of the flush: which events viewers never see, and the danmaku storm cap."""

from __future__ import annotations

from liveserver.engine.engine import Event

# Event kinds that act on nodes and are never relayed to viewers (their offsets still
# advance the batch chain, so clients see no gap).
INTERNAL_KINDS = frozenset({"ban"})


def visible(events: list[Event]) -> list[Event]:
    return [e for e in events if e["k"] not in INTERNAL_KINDS]


def has_priority(event: Event) -> bool:
    """Host and badge holders' danmaku go first when a storm is capped."""
    return event.get("role") in ("host", "admin") or bool(event.get("badge"))


def cap_danmaku(events: list[Event], cap: int) -> tuple[list[Event], int]:
    """Keep at most `cap` danmaku (priority first, then by offset); returns (kept events, dropped count)."""
    danmaku = [e for e in events if e["k"] == "danmaku"]
    if len(danmaku) <= cap:
        return events, 0
    ranked = sorted(danmaku, key=lambda e: not has_priority(e))  # stable: priority first, then by offset
    keep = {e["offset"] for e in ranked[:cap]}
    return [e for e in events if e["k"] != "danmaku" or e["offset"] in keep], len(danmaku) - cap


def _bans(event: Event) -> bool:
    """Does this `ban` event ban its user (not unban)? One without `banned` does: streams
    written before unbans had events."""
    return event.get("banned", True) is not False


def banned_users(events: list[Event]) -> list[str]:
    """Users banned by `events`: their open connections close."""
    return [str(e.get("user")) for e in events if e["k"] == "ban" and _bans(e)]


def apply_bans(bans: set[str], events: list[Event]) -> None:
    """Keep a room's copy of its bans (hub.py) current with the `ban` events in `events`."""
    for e in events:
        if e["k"] != "ban":
            continue
        user = str(e.get("user"))
        if _bans(e):
            bans.add(user)
        else:
            bans.discard(user)
