"""The room report: live data while the room is on, the post-live report after it.

Everything is computed from what the nodes recorded per tick (`stats_tick.lua`: session
joins/leaves stamped with Redis time, unique viewers, likes per minute) and from what the
commerce scripts already keep (orders, clicks, lotteries, coupons), plus the room's event
history (archive, else the live stream) for danmaku per minute:

- **unique viewers**: exact (`lc:{room}:uv`, a set; guests count once per connection);
- **watch time** per viewer: the union of that viewer's sessions on every node, so a
  reconnect (or two tabs) is not counted twice; an open session ends now, or at its
  node's last heartbeat when that node stopped beating (killed);
- **peak online** and the online series: a sweep over every session's start and end;
- **orders / units / GMV**: GMV counts paid orders (cents); buyers are users with a
  paid or still reserved order; conversion = buyers / unique viewers; AOV = GMV / paid orders;
- **follows**: users with a `follow` event (a user's first follow; unfollowing and following
  again counts once); **link-mic**: `linkmic`
  events, one per `accepted`, minutes from the `ms` of each `ended` guest.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

from liveserver.commerce import Commerce
from liveserver.commerce.coupons import Coupons
from liveserver.commerce.lotteries import Lotteries
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.engine import RoomEngine

MINUTE = 60_000
FOLLOWUP_WATCH_S = 300
NODE_SILENT_MS = 3_000  # a node without a heartbeat for this long is gone (LIVESERVER_NODE_TTL_MS)


def _sessions(records: list[str], seen: dict[str, int], now: int,
              silent_ms: int = NODE_SILENT_MS) -> tuple[list[tuple[str, int, int]], int]:
    """([(user, start_ms, end_ms)], how many are open) from the session records."""
    opened: dict[str, tuple[str, int, str]] = {}
    closed: list[tuple[str, int, int]] = []
    for rec in records:
        parts = rec.split("|")
        if parts[0] == "j" and len(parts) >= 5:
            sid, user, ms, node = parts[1], "|".join(parts[2:-2]), int(parts[-2]), parts[-1]
            opened[sid] = (user, ms, node)
        elif parts[0] == "l" and len(parts) == 3:
            start = opened.pop(parts[1], None)
            if start is not None:
                closed.append((start[0], start[1], int(parts[2])))
    for user, start, node in opened.values():  # still open (or their node died)
        last = seen.get(node, start)
        end = now if now - last < silent_ms else last
        closed.append((user, start, max(start, end)))
    return closed, len(opened)


def _union_ms(intervals: list[tuple[int, int]]) -> int:
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total


def _online(sessions: list[tuple[str, int, int]]) -> tuple[int, int, dict[int, int]]:
    """(peak, when, per-minute max of concurrent connections); a leave and a join at the
    same ms (a reconnect) count the leave first."""
    edges = sorted([(s, 1) for _u, s, _e in sessions] + [(e, -1) for _u, _s, e in sessions])
    online = peak = peak_at = 0
    per_minute: dict[int, int] = {}
    prev: int | None = None
    for ms, step in edges:
        m = ms // MINUTE
        if prev is not None:
            for gap in range(prev + 1, m):  # no change in those minutes: the level held
                per_minute[gap] = online
        per_minute.setdefault(m, online)
        online += step
        per_minute[m] = max(per_minute[m], online)
        prev = m
        if online > peak:
            peak, peak_at = online, ms
    return peak, peak_at, per_minute


def _online_steps(sessions: list[tuple[str, int, int]], points: int = 120) -> tuple[int, list[dict[str, int]]]:
    """Online over time at a finer step than the minute (10 s, or coarser to keep at most
    `points` points): the max of concurrent connections within each step."""
    if not sessions:
        return 10_000, []
    start = min(s for _u, s, _e in sessions)
    end = max(e for _u, _s, e in sessions)
    step = max(10_000, -(-(end - start) // points // 10_000) * 10_000)
    edges = sorted([(s, 1) for _u, s, _e in sessions] + [(e, -1) for _u, _s, e in sessions])
    first = start // step
    out = [0] * ((end // step) - first + 1)
    online = 0
    i = 0
    for k in range(len(out)):
        hi = (first + k + 1) * step
        peak = online
        while i < len(edges) and edges[i][0] < hi:
            online += edges[i][1]
            peak = max(peak, online)
            i += 1
        out[k] = peak
    return step, [{"ms": (first + k) * step, "online": v} for k, v in enumerate(out)]


async def build_report(engine: RoomEngine, commerce: Commerce, room: str,
                       followup_watch_s: int = FOLLOWUP_WATCH_S, node_ttl_ms: int = NODE_SILENT_MS) -> dict[str, Any]:
    data = await engine.reports.live_data(room)
    now, meta = data["now_ms"], data["meta"]
    # a node silent for longer than the node TTL is dead (as for `online`): its open
    # sessions end at its last heartbeat
    sessions, open_sessions = _sessions(data["sessions"], data["seen"], now, node_ttl_ms)
    per_user: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for user, s, e in sessions:
        per_user[user].append((s, e))
    watch = {user: _union_ms(iv) for user, iv in per_user.items()}
    uniques = max(data["uv"], len(watch))
    peak, peak_at, online_m = _online(sessions)
    online_step, online_series = _online_steps(sessions)

    # orders: reserved/paid/expired, buyers, GMV per minute
    orders = data["orders"]
    buyers = {o["user"] for o in orders if o.get("status") in ("reserved", "paid")}
    paid = [o for o in orders if o.get("status") == "paid"]
    gmv = sum(int(o["amount"]) for o in paid)
    orders_m: dict[int, int] = defaultdict(int)
    gmv_m: dict[int, int] = defaultdict(int)
    for o in orders:
        orders_m[int(o["created_ms"]) // MINUTE] += 1
    for o in paid:
        gmv_m[int(o.get("paid_ms", o["created_ms"])) // MINUTE] += int(o["amount"])
    by_sale: dict[str, dict[str, Any]] = {}
    for o in orders:
        row = by_sale.setdefault(o["sale"], {"sale": o["sale"], "orders": 0, "units": 0, "paid_orders": 0,
                                             "paid_units": 0, "gmv_cents": 0, "expired_units": 0})
        row["orders"] += 1
        row["units"] += int(o["qty"])
        if o["status"] == "paid":
            row["paid_orders"] += 1
            row["paid_units"] += int(o["qty"])
            row["gmv_cents"] += int(o["amount"])
        elif o["status"] == "expired":
            row["expired_units"] += int(o["qty"])

    # events: danmaku per minute and counts per kind, from the history
    danmaku_m: dict[int, int] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    linkmic_count = linkmic_ms = 0
    followers: set[str] = set()
    after = "-"
    archived = 0
    while True:
        rows = await engine.reports.history(room, after, 5000)
        if after != "-":
            rows = [r for r in rows if r[0] != after]
        if not rows:
            break
        for entry_id, fields in rows:
            archived += 1
            kinds[fields.get("k", "")] += 1
            if fields.get("k") == "danmaku":
                danmaku_m[int(fields.get("ts") or 0) // MINUTE] += 1
            elif fields.get("k") in ("linkmic", "follow"):
                try:
                    body = json.loads(fields.get("d") or "{}")
                except ValueError:
                    body = {}
                if not isinstance(body, dict):
                    continue
                if fields["k"] == "follow":  # unfollow + follow again emits again: count users
                    followers.add(str(body.get("user", "")))
                elif body.get("phase") == "accepted":  # one link-mic; ended: its `ms` on camera
                    linkmic_count += 1
                elif body.get("phase") == "ended" and isinstance(body.get("ms"), int):
                    linkmic_ms += body["ms"]
        after = rows[-1][0]
    counts = {k[2:]: int(v) for k, v in meta.items() if k.startswith("n_")}
    likes_m = {int(k.split(":")[1]): v for k, v in data["minute"].items() if k.startswith("likes:")}

    # products: clicks and sales per product
    products = {p["id"]: p for p in await engine.products(room)}
    sales = {}
    for sale_id in await commerce.store.recent(CommerceKeys(room).index("sales"), 1000):
        raw = await commerce.store.hash(CommerceKeys(room).sale(sale_id))
        sales[sale_id] = raw
    top = []
    for pid in set(products) | set(data["clicks"]) | {s.get("product_id", "") for s in sales.values()} - {""}:
        sold = [by_sale[sid] for sid, s in sales.items() if s.get("product_id") == pid and sid in by_sale]
        top.append({"product": pid, "title": products.get(pid, {}).get("title", pid), "clicks": data["clicks"].get(pid, 0),
                    "orders": sum(r["orders"] for r in sold), "units": sum(r["units"] for r in sold),
                    "paid_units": sum(r["paid_units"] for r in sold), "gmv_cents": sum(r["gmv_cents"] for r in sold)})
    top.sort(key=lambda r: (-r["gmv_cents"], -r["clicks"], r["product"]))

    lotteries = []
    lot = commerce.kind(Lotteries)
    for lid in await commerce.store.recent(CommerceKeys(room).index("lotteries"), 100):
        try:
            obj = await lot.lottery(lid)
        except Exception:
            continue
        result = json.loads(obj["result"]) if obj.get("result") else None
        entrants = len(await lot.entrants(lid))
        lotteries.append({"id": lid, "prize": obj.get("prize", ""), "entrants": entrants,
                          "winners": (result or {}).get("winners"), "drawn": result is not None})
    coupons = []
    cp = commerce.kind(Coupons)
    for cid in await commerce.store.recent(CommerceKeys(room).index("coupons"), 100):
        try:
            c = await cp.coupon(cid)
        except Exception:
            continue
        coupons.append({"id": cid, "title": c.get("title", ""), "quantity": c.get("quantity", 0),
                        "claimed": c.get("quantity", 0) - c.get("left", 0), "amount": c.get("amount", 0)})

    minutes = sorted(set(online_m) | set(danmaku_m) | set(likes_m) | set(orders_m) | set(gmv_m))
    if minutes:
        minutes = list(range(minutes[0], minutes[-1] + 1))
    series = [{"minute_ms": m * MINUTE, "online": online_m.get(m, 0), "danmaku": danmaku_m.get(m, 0),
               "likes": likes_m.get(m, 0), "orders": orders_m.get(m, 0), "gmv_cents": gmv_m.get(m, 0)} for m in minutes]

    clicks_total = sum(data["clicks"].values())
    likes_total, online_now = await engine.counters(room)
    total_watch_ms = sum(watch.values())
    clickers = data["clickers"]
    followup = sorted(u for u, ms in watch.items()
                      if ms > followup_watch_s * 1000 and clickers.get(u, 0) > 0 and u not in buyers)
    headline = {
        "unique_viewers": uniques,
        "views": len(sessions),
        "open_sessions": open_sessions,
        "peak_online": peak,
        "online_now": online_now,
        "peak_at_ms": peak_at,
        "avg_watch_s": round(total_watch_ms / 1000 / uniques, 3) if uniques else 0.0,
        "total_watch_s": round(total_watch_ms / 1000, 3),
        "danmaku": counts.get("danmaku", kinds.get("danmaku", 0)),
        "likes": likes_total,
        "follows": len(followers),
        "lottery_entrants": sum(lo["entrants"] for lo in lotteries),
        "linkmic": linkmic_count,
        "linkmic_ms": linkmic_ms,
        "linkmic_minutes": round(linkmic_ms / MINUTE, 2),
        "clicks": clicks_total,
        "orders": len(orders),
        "units": sum(int(o["qty"]) for o in orders if o.get("status") in ("reserved", "paid")),
        "paid_orders": len(paid),
        "paid_units": sum(int(o["qty"]) for o in paid),
        "gmv_cents": gmv,
        "buyers": len(buyers),
        "conversion": round(len(buyers) / uniques, 4) if uniques else 0.0,
        "aov_cents": gmv // len(paid) if paid else 0,
    }
    return {
        "room": room, "title": meta.get("title", ""), "status": meta.get("status", "preview"), "ts": now,
        "headline": headline,
        "funnel": {"viewers": uniques, "clickers": len(clickers), "buyers": len(buyers),
                   "paid_buyers": len({o["user"] for o in paid})},
        "series": series,
        "online": {"step_ms": online_step, "points": online_series},
        "products": top,
        "sales": sorted(by_sale.values(), key=lambda r: r["sale"]),
        "lotteries": lotteries,
        "coupons": coupons,
        "followup": followup,
        "events": dict(kinds),
        "method": {"unique_viewers": "exact set", "watch_time": "union of sessions per viewer across nodes",
                   "history_events": archived},
    }


LIVE_STEP_MS = 10_000


async def live_view(engine: RoomEngine, room: str, window_s: int = 600) -> dict[str, Any]:
    """The live cards' data, cheap enough to poll every few seconds: 10 s steps over the
    last `window_s` (online max, likes, danmaku, orders, GMV), unique viewers and totals.
    Read from what the ticks recorded (stats_tick.lua) and the orders stream; no session
    scan (that is the report's job)."""
    data = await engine.reports.live_series(room, int(time.time() * 1000) - (window_s + 20) * 1000)
    now = data["now_ms"]
    first = (now - window_s * 1000) // LIVE_STEP_MS + 1
    last = now // LIVE_STEP_MS
    raw: dict[str, str] = data["series"]

    def at(prefix: str, b: int) -> int | None:
        v = raw.get(f"{prefix}:{b}")
        return int(v) if v is not None else None

    # the danmaku total before the window, to diff the first step against
    earlier = [int(k.split(":")[1]) for k in raw if k.startswith("dm10:") and int(k.split(":")[1]) < first]
    dm_prev = int(raw[f"dm10:{max(earlier)}"]) if earlier else 0
    online_prev = 0
    orders_b: dict[int, int] = defaultdict(int)
    gmv_b: dict[int, int] = defaultdict(int)
    for f in data["orders"]:
        b = int(f.get("ts") or 0) // LIVE_STEP_MS
        if f.get("type") == "reserved":
            orders_b[b] += 1
        elif f.get("type") == "paid":
            gmv_b[b] += int(f.get("amount") or 0)
    points = []
    for b in range(first, last + 1):
        online = at("on10", b)
        online_prev = online if online is not None else online_prev
        dm = at("dm10", b)
        danmaku = max(0, dm - dm_prev) if dm is not None else 0
        dm_prev = dm if dm is not None else dm_prev
        points.append({"ms": b * LIVE_STEP_MS, "online": online_prev, "likes": at("lk10", b) or 0,
                       "danmaku": danmaku, "orders": orders_b.get(b, 0), "gmv_cents": gmv_b.get(b, 0)})
    likes, online_now = await engine.counters(room)
    return {"room": room, "ts": now, "step_ms": LIVE_STEP_MS, "points": points,
            "totals": {"unique_viewers": data["uv"], "online": online_now, "likes": likes, "danmaku": data["danmaku"]}}
