"""The coordinator of `liveload run`: sets the room up, starts the generator processes,
plays the host actions, gathers their measurements, audits what was sold, and judges
the checks."""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable

from . import hist
from .host import HostApi, HostError
from .plan import worker_plans
from .scenario import Check, Scenario
from .worker import new_run_id, worker_main


@dataclass
class RunOptions:
    targets: list[str]
    secret: str
    workers: int | None = None
    connections_per_worker: int | None = None
    room: str | None = None
    extra_checks: list[Check] = field(default_factory=list)


def http_base(url: str) -> str:
    url = url.rstrip("/")
    for a, b in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(a):
            return b + url[len(a):]
    return url


def ws_base(url: str) -> str:
    url = http_base(url)
    return "ws://" + url[7:] if url.startswith("http://") else "wss://" + url[8:]


@dataclass
class Timeline:
    """Per-second sums of every worker's interval snapshots (for live view and plots)."""

    seconds: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, second: int, worker: int, snap: dict[str, Any]) -> None:
        row = self.seconds.setdefault(second, {"counters": Counter(), "events": [], "connected": {}, "online": 0, "loop_lag_ms": 0.0})
        row["counters"].update(snap["counters"])
        if snap["events"]:
            row["events"].append(snap["events"])
        row["connected"][worker] = snap["connected"]
        row["online"] = max(row["online"], snap["online"])
        row["loop_lag_ms"] = max(row["loop_lag_ms"], snap["loop_lag_ms"])

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for second in sorted(self.seconds):
            row = self.seconds[second]
            h = hist.merge(row["events"])
            s = hist.summary_ms(h)
            out.append({
                "t": second,
                "deliveries": row["counters"].get("deliveries", 0),
                "connected": sum(row["connected"].values()),
                "online": row["online"],
                "p50_ms": s["p50"], "p99_ms": s["p99"], "max_ms": s["max"],
                "errors": row["counters"].get("errors", 0),
                "buy_ok": row["counters"].get("buy_ok", 0),
                "loop_lag_ms": row["loop_lag_ms"],
            })
        return out


class Coordinator:
    def __init__(self, scenario: Scenario, options: RunOptions, on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.scenario = scenario
        self.options = options
        self.on_progress = on_progress
        self.run_id = new_run_id()
        self.room = options.room or (f"{scenario.room}-{self.run_id}" if scenario.unique_room else scenario.room)
        targets = options.targets or scenario.targets
        if not targets:
            raise SystemExit("no target: give --target URL (or `target:` in the script)")
        self.http_targets = [http_base(t) for t in targets]
        self.ws_targets = [ws_base(t) for t in targets]
        per = options.connections_per_worker or scenario.connections_per_worker
        self.workers = options.workers or scenario.workers or max(1, math.ceil(max(scenario.max_viewers, 1) / per))
        self.bindings: dict[str, dict[str, Any]] = {}
        self.host_log: list[dict[str, Any]] = []
        self.host_hist = hist.new()
        self.timeline = Timeline()
        self.finals: dict[int, dict[str, Any]] = {}
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.start_wall = 0.0
        self.host_errors = 0

    # -- process plumbing ------------------------------------------------------------------
    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")
        common = {
            "run_id": self.run_id,
            "room": self.room,
            "ws_targets": self.ws_targets,
            "secret": self.options.secret,
            "codec": self.scenario.codec,
            "duration_s": self.scenario.duration_s,
            "drain_s": self.scenario.drain_s,
            "reply_timeout_s": self.scenario.reply_timeout_s,
            "connect_concurrency": max(1, self.scenario.connect_concurrency // self.workers),
        }
        for plan in worker_plans(self.scenario, self.workers, common):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=worker_main, args=(plan, child), daemon=True, name=f"liveload-gen-{plan['worker']}")
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _broadcast(self, msg: tuple[Any, ...]) -> None:
        for conn in self.conns:
            try:
                conn.send(msg)
            except (OSError, BrokenPipeError):
                pass

    async def _recv(self, conn: Connection, timeout: float) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(conn.fileno(), ready)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            loop.remove_reader(conn.fileno())
        return conn.recv()

    async def _pump(self, w: int, conn: Connection, deadline: float) -> None:
        """Read one worker's snapshots until its final report."""
        while w not in self.finals:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"generator {w} did not finish")
            try:
                msg = await self._recv(conn, left)
            except EOFError:
                raise RuntimeError(f"generator {w} died") from None
            if msg[0] == "tick":
                self.timeline.add(msg[2]["second"], w, msg[2])
            elif msg[0] == "done":
                self.finals[w] = msg[2]

    # -- the run -----------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        api = HostApi(self.http_targets[0], self.options.secret, self.room)
        try:
            if self.scenario.create_room:
                await api.setup_room(self.scenario.products)
            self._spawn()
            for w, conn in enumerate(self.conns):
                msg = await self._recv(conn, 60)
                assert msg[0] == "ready", msg
            self.start_wall = time.time() + 0.5
            self._broadcast(("start", self.start_wall))
            end = self.scenario.duration_s + self.scenario.drain_s
            deadline = self.start_wall + end + 60
            pumps = [asyncio.create_task(self._pump(w, c, deadline)) for w, c in enumerate(self.conns)]
            host = asyncio.create_task(self._host_actions(api))
            progress = asyncio.create_task(self._progress())
            try:
                await asyncio.gather(*pumps)
            except BaseException:
                self._broadcast(("stop",))
                raise
            finally:
                progress.cancel()
                host.cancel()
            audits = await self._audits(api)
        finally:
            await api.close()
            for proc in self.procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
        return self._summary(audits)

    async def _host_actions(self, api: HostApi) -> None:
        for phase in sorted(self.scenario.of("host"), key=lambda p: p.at):
            delay = self.start_wall + phase.at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            spec = phase.spec
            entry: dict[str, Any] = {"t": round(time.time() - self.start_wall, 3), "action": spec["action"], "line": phase.line}
            try:
                info, ms = await api.act(spec, self.bindings)
                hist.record_ms(self.host_hist, ms)
                entry["ms"] = round(ms, 2)
                if info is not None:
                    entry["id"] = info["id"]
                    if spec["action"] == "draw_lottery":
                        entry["result"] = info.get("result")
                    else:
                        name = spec.get("as") or f"{info['kind']}{len(self.bindings) + 1}"
                        self.bindings[name] = info
                        self._broadcast(("bind", name, info))
            except (HostError, Exception) as exc:  # a failed action is reported, the run goes on
                self.host_errors += 1
                entry["error"] = str(exc)
            self.host_log.append(entry)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(1)
            if self.on_progress:
                rows = self.timeline.rows()
                totals = Counter()
                for row in self.timeline.seconds.values():
                    totals.update(row["counters"])
                self.on_progress({
                    "elapsed": time.time() - self.start_wall,
                    "duration": self.scenario.duration_s + self.scenario.drain_s,
                    "last": rows[-2] if len(rows) >= 2 else (rows[-1] if rows else None),
                    "totals": totals,
                    "host": list(self.host_log),
                })

    async def _audits(self, api: HostApi) -> dict[str, Any]:
        out: dict[str, Any] = {"sales": {}, "lotteries": {}}
        for name, info in self.bindings.items():
            if info.get("kind") == "sale":
                try:
                    out["sales"][info["id"]] = await api.audit(info["id"])
                except Exception as exc:
                    out["sales"][info["id"]] = {"ok": False, "problems": [f"audit call failed: {exc}"]}
            elif info.get("kind") == "lottery":
                out["lotteries"][info["id"]] = await self._verify_lottery(api, info["id"])
        return out

    async def _verify_lottery(self, api: HostApi, lottery: str) -> dict[str, Any]:
        try:
            data = await api.get(f"/rooms/{self.room}/lotteries/{lottery}")
        except Exception as exc:
            return {"verified": False, "problem": f"lottery read failed: {exc}"}
        result = data.get("result")
        if not result:
            return {"verified": None, "problem": "not drawn"}
        try:
            from liveserver.commerce.lottery_verify import verify  # type: ignore[import-not-found]
        except ImportError:
            return {"verified": None, "problem": "liveserver.commerce.lottery_verify not available", "entrants": result.get("entrants")}
        problems = verify(result["seed"], result["commit"], data.get("entrants_list") or [], data["lottery"]["winners"], result["winners"])
        return {"verified": not problems, "problems": problems, "entrants": result.get("entrants"),
                "winners": len(result.get("winners", []))}

    # -- the summary -------------------------------------------------------------------------
    def _summary(self, audits: dict[str, Any]) -> dict[str, Any]:
        finals = [self.finals[w] for w in sorted(self.finals)]
        counters: Counter[str] = Counter()
        reply_codes: Counter[str] = Counter()
        close_codes: Counter[str] = Counter()
        orders: dict[str, dict[str, int]] = {}
        claims: Counter[str] = Counter()
        samples: list[str] = []
        for f in finals:
            counters.update(f["counters"])
            reply_codes.update(f["reply_codes"])
            close_codes.update(f["close_codes"])
            claims.update(f["claims_ok"])
            samples += f["error_samples"]
            for sale, by_order in f["orders"].items():
                orders.setdefault(sale, {}).update(by_order)
        events = hist.merge(f["events"] for f in finals)
        replies = {k: hist.merge(f["replies"][k] for f in finals) for k in finals[0]["replies"]} if finals else {}
        connect = hist.merge(f["connect"] for f in finals)
        ev = hist.summary_ms(events)
        timeline = self.timeline.rows()
        span = max(1.0, self.scenario.duration_s)
        # Oversell: the server's audit must be ok, and the units the clients were sold
        # (distinct orders) must not pass the initial stock.
        oversold = 0
        sales_out = {}
        for sale, audit in audits["sales"].items():
            sold_units = sum(orders.get(sale, {}).values())
            initial = audit.get("initial")
            over_client = max(0, sold_units - initial) if isinstance(initial, int) else 0
            if not audit.get("ok", False):
                oversold += 1
            oversold += over_client
            sales_out[sale] = {**audit, "units_sold_to_clients": sold_units, "orders_seen": len(orders.get(sale, {})), "client_oversold": over_client}
        errors = counters.get("errors", 0) + self.host_errors
        metrics: dict[str, float] = {
            "viewers_target": self.scenario.max_viewers,
            "viewers_peak": max((r["connected"] for r in timeline), default=0),
            "online_peak": max((r["online"] for r in timeline), default=0),
            "connects": counters.get("connects", 0),
            "deliveries": counters.get("deliveries", 0),
            "deliveries_per_s": round(counters.get("deliveries", 0) / span, 1),
            "peak_deliveries_per_s": max((r["deliveries"] for r in timeline), default=0),
            "frames": counters.get("frames", 0),
            "p50_latency_ms": ev["p50"], "p90_latency_ms": ev["p90"], "p99_latency_ms": ev["p99"],
            "p999_latency_ms": ev["p99.9"], "max_latency_ms": ev["max"],
            "gaps": counters.get("gaps", 0),
            "out_of_order": counters.get("out_of_order", 0),
            "errors": errors,
            "host_errors": self.host_errors,
            "connect_errors": counters.get("connect_errors", 0),
            "unexpected_closes": counters.get("unexpected_closes", 0),
            "reply_timeouts": counters.get("reply_timeouts", 0),
            "idempotency_errors": counters.get("idempotency_errors", 0),
            "resumes": counters.get("resumes", 0),
            "resume_unrecovered": counters.get("resume_unrecovered", 0),
            "oversold": oversold,
            "orders": sum(len(v) for v in orders.values()),
            "coupons_claimed": sum(claims.values()),
            "danmaku_sent": counters.get("danmaku_sent", 0),
            "likes_sent": counters.get("likes_sent", 0),
            "max_loop_lag_ms": max((r["loop_lag_ms"] for r in timeline), default=0),
        }
        for kind, h in replies.items():
            s = hist.summary_ms(h)
            metrics[f"{kind}_replies"] = s["count"]
            metrics[f"{kind}_p50_ms"] = s["p50"]
            metrics[f"{kind}_p99_ms"] = s["p99"]
            metrics[f"{kind}_max_ms"] = s["max"]
        unverified = [k for k, v in audits["lotteries"].items() if v.get("verified") is False]
        metrics["lottery_unverified"] = len(unverified)
        checks = []
        for check in self.scenario.checks + self.options.extra_checks:
            actual = metrics.get(check.metric)
            ok = actual is not None and check.passes(actual)
            checks.append({"check": str(check), "actual": actual, "ok": ok,
                           **({"problem": f"unknown metric {check.metric!r}"} if actual is None else {})})
        return {
            "scenario": self.scenario.name,
            "room": self.room,
            "run_id": self.run_id,
            "targets": self.http_targets,
            "workers": self.workers,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.start_wall)),
            "duration_s": self.scenario.duration_s,
            "metrics": metrics,
            "latency_ms": {"event": ev, **{f"{k}_reply": hist.summary_ms(h) for k, h in replies.items()},
                           "connect": hist.summary_ms(connect), "host_api": hist.summary_ms(self.host_hist)},
            "counters": dict(counters),
            "reply_codes": dict(reply_codes),
            "close_codes": dict(close_codes),
            "sales": sales_out,
            "coupons_claimed": dict(claims),
            "lotteries": audits["lotteries"],
            "host_actions": self.host_log,
            "error_samples": samples[:30],
            "timeline": timeline,
            "checks": checks,
            "passed": all(c["ok"] for c in checks),
        }


def run(scenario: Scenario, options: RunOptions, on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    return asyncio.run(Coordinator(scenario, options, on_progress).run())
