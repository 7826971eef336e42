"""Who does what when: a scenario cut into per-worker plans (plain dicts, picklable).

Viewer i (0-based, global) belongs to worker i % W. Rates are split evenly over workers.
Buyer/claimer/entrant j is viewer j % max_viewers, at `at + within * j / count`
(intended times: latency is measured from them, so a slow server cannot hide its
queueing by slowing the generator down).
"""

from __future__ import annotations

from typing import Any

from .scenario import Scenario


def viewer_schedule(scenario: Scenario) -> list[tuple[float, int, str]]:
    """(time, viewer index, "join"|"leave") for every ramp, in time order."""
    out: list[tuple[float, int, str]] = []
    current = 0
    for phase in sorted(scenario.of("viewers"), key=lambda p: p.at):
        at = float(phase.spec.get("at", 0))
        over = float(phase.spec.get("over", 0))
        target = int(phase.spec["ramp_to"])
        if target > current:
            n = target - current
            for k, i in enumerate(range(current, target)):
                out.append((at + over * k / n, i, "join"))
        elif target < current:
            n = current - target
            for k, i in enumerate(range(current - 1, target - 1, -1)):
                out.append((at + over * k / n, i, "leave"))
        current = target
    out.sort(key=lambda x: x[0])
    return out


def spread(phase: dict[str, Any], count: int) -> list[float]:
    at = float(phase.get("at", 0))
    within = float(phase.get("within", 0))
    return [at + within * j / count for j in range(count)] if count else []


def worker_plans(scenario: Scenario, workers: int, common: dict[str, Any]) -> list[dict[str, Any]]:
    max_viewers = max(scenario.max_viewers, 1)
    joins = viewer_schedule(scenario)
    plans: list[dict[str, Any]] = []
    for w in range(workers):
        mine = lambda i: i % workers == w  # noqa: E731
        plan: dict[str, Any] = dict(common)
        plan["worker"] = w
        plan["workers"] = workers
        plan["viewers"] = [(t, i, what) for t, i, what in joins if mine(i)]
        plan["rates"] = []
        for kind in ("danmaku", "likes"):
            for phase in scenario.of(kind):
                s = phase.spec
                plan["rates"].append({
                    "kind": kind,
                    "rate": float(s["rate"]) / workers,
                    "from": float(s.get("from", 0)),
                    "to": float(s.get("to", scenario.duration_s)),
                    "text": s.get("text", "load {i} 弹幕"),
                    "n": int(s.get("n", 1)),
                })
        acts: list[dict[str, Any]] = []
        for kind, op, ref in (("buyers", "buy", "sale"), ("claimers", "claim", "coupon"), ("entrants", "enter", "lottery")):
            for p_index, phase in enumerate(scenario.of(kind)):
                s = phase.spec
                count = int(s["count"])
                for j, t in enumerate(spread(s, count)):
                    i = j % max_viewers
                    if not mine(i):
                        continue
                    act = {"t": t, "viewer": i, "op": op, "ref": s[ref], "seq": j, "phase": p_index}
                    if op == "buy":
                        act["qty"] = int(s.get("qty", 1))
                        act["retries"] = int(s.get("retries", 0))
                    if op == "enter":
                        act["via"] = s.get("via", "op")
                    acts.append(act)
        plan["acts"] = sorted(acts, key=lambda a: a["t"])
        storms = []
        for phase in scenario.of("reconnect_storm"):
            s = phase.spec
            count = min(int(s["count"]), max_viewers)
            step = max(1, max_viewers // max(count, 1))
            for j, t in enumerate(spread(s, count)):
                i = (j * step) % max_viewers
                if mine(i):
                    storms.append({"t": t, "viewer": i, "pause": float(s.get("pause", 0.5))})
        plan["storms"] = storms
        plans.append(plan)
    return plans
