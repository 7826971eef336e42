"""A generator process: one asyncio loop driving many viewers by a plan.

Talks to the coordinator over a duplex Pipe:
  in:  ("start", start_wall) | ("bind", name, info) | ("stop",)
  out: ("ready", w) | ("tick", w, interval) | ("done", w, final)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
import warnings
from multiprocessing.connection import Connection
from typing import Any

from liveserver.core.auth import mint

from . import hist
from .client import LoadViewer
from .stats import BUSINESS_CODES, WorkerStats

# A short test secret is the user's choice; the warning would repeat per token.
warnings.filterwarnings("ignore", message=".*HMAC key.*")

TOKEN_TTL_S = 6 * 3600  # tokens minted for a run (viewers, the host console) outlive any run


def user_id(run_id: str, index: int) -> str:
    return f"lv{run_id}-{index}"


class Worker:
    def __init__(self, plan: dict[str, Any], conn: Connection) -> None:
        self.plan = plan
        self.conn = conn
        self.stats = WorkerStats()
        self.start_wall = 0.0
        self.bindings: dict[str, dict[str, Any]] = {}
        self.bound = asyncio.Event()
        self.stopping = asyncio.Event()
        self.viewers: dict[int, LoadViewer] = {}
        self.sem = asyncio.Semaphore(plan["connect_concurrency"])
        self.tasks: set[asyncio.Task[Any]] = set()
        targets = plan["ws_targets"]
        for t, i, _ in plan["viewers"]:
            if i not in self.viewers:
                user = user_id(plan["run_id"], i)
                url = f"{targets[i % len(targets)]}/ws/rooms/{plan['room']}"
                self.viewers[i] = LoadViewer(i, user, url, mint(plan["secret"], user, ttl_s=TOKEN_TTL_S), plan["codec"], self.stats)
        for act in plan["acts"] + plan["storms"]:
            i = act["viewer"]
            if i not in self.viewers:  # acts by viewers never ramped in still need a socket
                user = user_id(plan["run_id"], i)
                url = f"{targets[i % len(targets)]}/ws/rooms/{plan['room']}"
                self.viewers[i] = LoadViewer(i, user, url, mint(plan["secret"], user, ttl_s=TOKEN_TTL_S), plan["codec"], self.stats)

    # -- time ------------------------------------------------------------------------
    def wall_at(self, t: float) -> float:
        return self.start_wall + t

    async def sleep_until(self, t: float) -> None:
        delay = self.wall_at(t) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- control pipe ------------------------------------------------------------------
    def _on_control(self) -> None:
        while self.conn.poll():
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.stopping.set()
                return
            if msg[0] == "start":
                self.start_wall = msg[1]
                self.started.set()
            elif msg[0] == "bind":
                self.bindings[msg[1]] = msg[2]
                self.bound.set()
                self.bound = asyncio.Event()
            elif msg[0] == "stop":
                self.stopping.set()

    async def binding(self, name: str, deadline: float) -> dict[str, Any] | None:
        while name not in self.bindings:
            left = deadline - time.time()
            if left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.bound.wait(), left)
        return self.bindings[name]

    # -- main --------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.started = asyncio.Event()
        loop.add_reader(self.conn.fileno(), self._on_control)
        self.conn.send(("ready", self.plan["worker"]))
        await self.started.wait()
        end = self.plan["duration_s"] + self.plan["drain_s"]
        self.spawn(self._ramp())
        for rate in self.plan["rates"]:
            self.spawn(self._rate(rate))
        for act in self.plan["acts"]:
            self.spawn(self._act(act))
        for storm in self.plan["storms"]:
            self.spawn(self._storm(storm))
        reporter = asyncio.create_task(self._report())
        lag = asyncio.create_task(self._lag())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, self.wall_at(end) - time.time()))
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*[v.stop() for v in self.viewers.values()], return_exceptions=True)
        reporter.cancel()
        lag.cancel()
        self.conn.send(("tick", self.plan["worker"], self.stats.interval(int(time.time() - self.start_wall))))
        self.conn.send(("done", self.plan["worker"], self.stats.final()))
        loop.remove_reader(self.conn.fileno())

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(1.0 - (time.time() - self.start_wall) % 1.0 + 0.005)
            # The second this interval ends in, by the worker's own clock (not by arrival).
            self.conn.send(("tick", self.plan["worker"], self.stats.interval(int(time.time() - self.start_wall))))

    async def _lag(self) -> None:
        """How late the loop wakes up: if this grows, the generator is the bottleneck."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.1)
            late = (loop.time() - before - 0.1) * 1000
            self.stats.loop_lag_ms = max(self.stats.loop_lag_ms, late)

    async def _ramp(self) -> None:
        for t, i, what in self.plan["viewers"]:
            await self.sleep_until(t)
            viewer = self.viewers[i]
            if what == "join":
                viewer.start(self.sem)
            else:
                self.spawn(viewer.stop())

    def _ensure_connected(self, viewer: LoadViewer) -> None:
        if not viewer.wanted:
            viewer.start(self.sem)

    async def _rate(self, spec: dict[str, Any]) -> None:
        """Send `rate` ops/s from `from` to `to`, round-robin over connected viewers."""
        if spec["rate"] <= 0:
            return
        await self.sleep_until(spec["from"])
        ring = itertools.cycle(sorted(self.viewers))
        sent = 0
        seq = itertools.count(1)
        w = self.plan["worker"]
        while True:
            now = time.time() - self.start_wall
            if now >= spec["to"]:
                return
            due = int((min(now, spec["to"]) - spec["from"]) * spec["rate"]) - sent
            for _ in range(due):
                sent += 1
                viewer = None
                for _ in range(len(self.viewers)):
                    candidate = self.viewers[next(ring)]
                    if candidate.connected.is_set():
                        viewer = candidate
                        break
                if viewer is None:
                    self.stats.add(f"{spec['kind']}_skipped")
                    continue
                if spec["kind"] == "likes":
                    if await viewer.send({"op": "like", "n": spec["n"]}):
                        self.stats.add("likes_sent", spec["n"])
                else:
                    intended = self.start_wall + spec["from"] + sent / spec["rate"]
                    text = spec["text"].replace("{i}", f"{w}.{next(seq)}")
                    self.spawn(self._request(viewer, "danmaku", {"op": "danmaku", "text": text}, intended))
            await asyncio.sleep(0.01)

    async def _request(self, viewer: LoadViewer, kind: str, frame: dict[str, Any], intended: float,
                       on_ok: Any = None) -> dict[str, Any] | None:
        """One op with a reply; latency from the intended send time. Returns the reply."""
        fut = await viewer.request(frame)
        if fut is None:
            self.stats.error(f"{kind}_not_sent", f"{viewer.user} not connected")
            return None
        self.stats.add(f"{kind}_sent")
        try:
            reply = await asyncio.wait_for(fut, self.plan["reply_timeout_s"])
        except asyncio.TimeoutError:
            viewer.pending.pop(frame.get("id"), None)  # type: ignore[arg-type]
            self.stats.error("reply_timeouts", f"{kind} from {viewer.user}")
            return None
        except ConnectionError:
            self.stats.error("reply_lost", f"{kind} from {viewer.user}: connection closed")
            return None
        hist.record_ms(self.stats.replies[kind], (time.time() - intended) * 1000)
        if reply.get("ok"):
            self.stats.add(f"{kind}_ok")
            self.stats.reply_codes[f"{kind}:ok"] += 1
        else:
            code = (reply.get("error") or {}).get("code", "?")
            self.stats.reply_codes[f"{kind}:{code}"] += 1
            if code in BUSINESS_CODES.get(kind, set()):
                self.stats.add(f"{kind}_refused")
            else:
                self.stats.error(f"{kind}_errors", f"{code}: {(reply.get('error') or {}).get('message')}")
        return reply

    async def _act(self, act: dict[str, Any]) -> None:
        viewer = self.viewers[act["viewer"]]
        await self.sleep_until(act["t"] - 2)
        self._ensure_connected(viewer)  # a buyer who was not watching opens the page first
        await self.sleep_until(act["t"])
        intended = self.wall_at(act["t"])
        timeout = self.plan["reply_timeout_s"]
        info = await self.binding(act["ref"], intended + timeout)
        if info is None:
            self.stats.error(f"{act['op']}_unbound", f"no id for {act['ref']} (host action failed?)")
            return
        try:
            await asyncio.wait_for(viewer.connected.wait(), max(0.1, intended + timeout - time.time()))
        except asyncio.TimeoutError:
            self.stats.error(f"{act['op']}_not_sent", f"{viewer.user} never connected")
            return
        if act["op"] == "buy":
            await self._buy(viewer, act, info, intended)
        elif act["op"] == "claim":
            reply = await self._request(viewer, "claim", {"op": "claim", "coupon": info["id"]}, intended)
            if reply and reply.get("ok"):
                self.stats.claims_ok[info["id"]] += 1
        elif act["op"] == "enter":
            if act.get("via") == "keyword" and info.get("keyword"):
                await self._request(viewer, "danmaku", {"op": "danmaku", "text": f"{info['keyword']} me please"}, intended)
            else:
                await self._request(viewer, "enter", {"op": "enter", "lottery": info["id"]}, intended)

    async def _buy(self, viewer: LoadViewer, act: dict[str, Any], info: dict[str, Any], intended: float) -> None:
        key = f"{self.plan['run_id']}-{act['phase']}-{act['seq']}"
        frame = {"op": "buy", "sale": info["id"], "qty": act["qty"], "key": key}
        first = await self._request(viewer, "buy", dict(frame), intended)
        answer = _answer(first)
        if first is not None and first.get("ok"):
            order = first.get("data", {}).get("order")
            self.stats.orders.setdefault(info["id"], {})[str(order)] = int(first["data"].get("qty", act["qty"]))
        for _ in range(act["retries"]):
            retry_at = time.time()
            again = await self._request(viewer, "buy", dict(frame), retry_at)
            self.stats.add("buy_retries")
            if answer is None:  # the first got lost: the retry's answer is the reference
                answer = _answer(again)
                if again is not None and again.get("ok"):
                    order = again["data"].get("order")
                    self.stats.orders.setdefault(info["id"], {})[str(order)] = int(again["data"].get("qty", act["qty"]))
                continue
            if again is not None and _answer(again) != answer:
                self.stats.error("idempotency_errors", f"key {key}: first {answer}, retry {_answer(again)}")

    async def _storm(self, storm: dict[str, Any]) -> None:
        viewer = self.viewers[storm["viewer"]]
        await self.sleep_until(storm["t"])
        if not viewer.connected.is_set():
            self.stats.add("storm_skipped")
            return
        self.stats.add("storm_drops")
        await viewer.drop()
        await asyncio.sleep(storm["pause"])
        viewer.start(self.sem)


def _answer(reply: dict[str, Any] | None) -> Any:
    """What must be identical between a buy and its retry with the same key."""
    if reply is None:
        return None
    if reply.get("ok"):
        return ("ok", reply.get("data", {}).get("order"))
    return ("error", (reply.get("error") or {}).get("code"))


def worker_main(plan: dict[str, Any], conn: Connection) -> None:
    """Process entry point."""
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(Worker(plan, conn).run())


def new_run_id() -> str:
    return uuid.uuid4().hex[:6]
