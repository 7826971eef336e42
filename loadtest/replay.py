"""`liveload replay FILE --speed 2 --scale 3`: play a recording back.

Time is compressed by `speed`; every recorded connection is played by `scale` users
(`rp<run>-<k>-<user>`), each sending the same ops at the same (compressed) times. Host
calls are played once, and the ids they create are mapped from the recorded ones, so a
recorded `buy {sale: room.s3}` buys from the sale the replay itself created. Buy keys
get the copy number appended, so each copy is its own purchase.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liveserver.core.auth import ROLES, mint

from .client import LoadViewer
from .host import HostApi, HostError
from .runner import http_base, ws_base
from .stats import BUSINESS_CODES, WorkerStats
from .worker import TOKEN_TTL_S, new_run_id

ID_FIELDS = ("sale", "coupon", "lottery", "poll")


@dataclass
class ReplayOptions:
    target: str
    secret: str
    speed: float = 1.0
    scale: int = 1
    room: str | None = None
    codec: str = "msgpack"
    reply_timeout_s: float = 10.0


@dataclass
class Recording:
    host: list[dict[str, Any]]
    conns: dict[int, dict[str, Any]]  # conn -> {room, user, role, join, leave, ops: [(t, frame)]}
    t0: int

    def op_counts(self) -> Counter[str]:
        return Counter(frame.get("op", "?") for c in self.conns.values() for _, frame in c["ops"])


def read_recording(path: Path) -> Recording:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [line for line in lines if line.get("kind") != "meta"]
    if not lines:
        raise SystemExit(f"{path}: nothing recorded")
    t0 = min(line["t"] for line in lines)
    conns: dict[int, dict[str, Any]] = {}
    host = []
    for line in lines:
        kind = line["kind"]
        if kind == "host":
            host.append(line)
        elif kind == "join":
            conns[line["conn"]] = {"room": line["room"], "user": line["user"], "role": line["role"],
                                   "join": line["t"], "leave": None, "ops": []}
        elif kind == "op" and line["conn"] in conns:
            conns[line["conn"]]["ops"].append((line["t"], line["frame"]))
        elif kind == "leave" and line["conn"] in conns:
            conns[line["conn"]]["leave"] = line["t"]
    return Recording(host=host, conns=conns, t0=t0)


class Replayer:
    def __init__(self, rec: Recording, opts: ReplayOptions) -> None:
        self.rec = rec
        self.opts = opts
        self.run_id = new_run_id()
        self.stats = WorkerStats()
        self.sent: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()
        self.idmap: dict[str, str] = {}
        self.mapped = asyncio.Event()
        self.recorded_ids: set[str] = set()
        for line in rec.host:
            resp = line.get("response") or {}
            for name in ID_FIELDS:
                obj = resp.get(name) if isinstance(resp, dict) else None
                if isinstance(obj, dict) and "id" in obj:
                    self.recorded_ids.add(obj["id"])
        self.start = 0.0
        self.host_errors = 0
        self.host_skipped = 0

    def at(self, t_ms: int) -> float:
        return self.start + (t_ms - self.rec.t0) / 1000 / self.opts.speed

    async def sleep_until(self, wall: float) -> None:
        delay = wall - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def room_of(self, recorded: str) -> str:
        return self.opts.room or recorded

    def _map(self, value: str) -> str:
        # Recorded ids look like <room>.s3; the replay's own carry its room.
        return self.idmap.get(value, value)

    async def _host(self, api: HostApi) -> None:
        for line in self.rec.host:
            await self.sleep_until(self.at(line["t"]))
            if line.get("status", 500) >= 400:
                continue  # it failed when recorded too
            parts = line["path"].split("/")
            if len(parts) > 4 and parts[3] == "rooms":
                parts[4] = self.room_of(parts[4])
            if "orders" in parts:
                self.host_skipped += 1  # payments of recorded orders have no replay counterpart
                continue
            path = "/".join(self._map(p) for p in parts)[len("/api/v1"):]
            try:
                data, _ = await api.call(line["method"], path, line.get("body"))
            except (HostError, Exception) as exc:
                self.host_errors += 1
                self.stats.error_samples.append(f"host {line['method']} {path}: {exc}")
                continue
            old = line.get("response") or {}
            for name in ID_FIELDS:
                if isinstance(old.get(name), dict) and isinstance(data.get(name), dict):
                    self.idmap[old[name]["id"]] = data[name]["id"]
                    self.mapped.set()
                    self.mapped = asyncio.Event()

    async def _resolve(self, frame: dict[str, Any], deadline: float) -> dict[str, Any]:
        out = dict(frame)
        for name in ID_FIELDS:
            value = out.get(name)
            if isinstance(value, str) and value in self.recorded_ids:
                while value not in self.idmap and time.time() < deadline:
                    try:
                        await asyncio.wait_for(self.mapped.wait(), max(0.01, deadline - time.time()))
                    except asyncio.TimeoutError:
                        break
                out[name] = self._map(value)
        return out

    async def _play(self, conn: dict[str, Any], copy: int, sem: asyncio.Semaphore) -> None:
        user = f"rp{self.run_id}-{copy}-{conn['user']}"
        role = conn["role"] if conn["role"] in ROLES else "viewer"  # a recorded guest or unreadable token plays a viewer
        url = f"{ws_base(self.opts.target)}/ws/rooms/{self.room_of(conn['room'])}"
        viewer = LoadViewer(copy, user, url, mint(self.opts.secret, user, role, ttl_s=TOKEN_TTL_S), self.opts.codec, self.stats)
        await self.sleep_until(self.at(conn["join"]))
        viewer.start(sem)
        waiting: list[asyncio.Task[None]] = []
        try:
            await asyncio.wait_for(viewer.connected.wait(), 20)
        except asyncio.TimeoutError:
            self.stats.error("connect_errors", f"{user} did not connect")
            await viewer.stop()
            return
        for t, frame in conn["ops"]:
            await self.sleep_until(self.at(t))
            frame = await self._resolve(frame, time.time() + 5)
            op = frame.get("op", "?")
            if op == "buy" and isinstance(frame.get("key"), str):
                frame["key"] = f"{frame['key']}-{self.run_id}-{copy}"
            if "id" in frame:
                fut = await viewer.request({k: v for k, v in frame.items() if k != "id"})
                if fut is None:
                    self.stats.error("send_errors", f"{op} from {user}")
                    continue
                waiting.append(asyncio.create_task(self._reply(op, fut)))
            elif not await viewer.send(frame):
                self.stats.error("send_errors", f"{op} from {user}")
                continue
            self.sent[op] += 1
        if waiting:
            await asyncio.gather(*waiting)
        if conn["leave"] is not None:
            await self.sleep_until(self.at(conn["leave"]))
        await viewer.stop()

    async def _reply(self, op: str, fut: asyncio.Future[dict[str, Any]]) -> None:
        try:
            reply = await asyncio.wait_for(fut, self.opts.reply_timeout_s)
        except (asyncio.TimeoutError, ConnectionError):
            self.stats.error("reply_timeouts", op)
            return
        code = "ok" if reply.get("ok") else (reply.get("error") or {}).get("code", "?")
        self.replies[f"{op}:{code}"] += 1
        if code not in ("ok", "rate_limited") and code not in BUSINESS_CODES.get(op, set()):
            self.stats.error("reply_errors", f"{op}: {code}")

    async def run(self) -> dict[str, Any]:
        api = HostApi(http_base(self.opts.target), self.opts.secret, self.opts.room or "")
        try:
            rooms = {self.room_of(c["room"]) for c in self.rec.conns.values()}
            for room in rooms:  # the room must exist before viewers join; PUT is idempotent
                await api.call("PUT", f"/rooms/{room}", {"status": "live"})
            self.start = time.time() + 0.3
            sem = asyncio.Semaphore(200)
            started = time.time()
            await asyncio.gather(self._host(api), *[
                self._play(conn, k, sem) for conn in self.rec.conns.values() for k in range(self.opts.scale)
            ])
            elapsed = time.time() - started
        finally:
            await api.close()
        recorded = self.rec.op_counts()
        expected = {op: n * self.opts.scale for op, n in recorded.items()}
        errors = self.stats.counters.get("errors", 0) + self.host_errors
        return {
            "run_id": self.run_id,
            "speed": self.opts.speed,
            "scale": self.opts.scale,
            "connections": len(self.rec.conns) * self.opts.scale,
            "recorded_ops": dict(recorded),
            "expected_ops": expected,
            "sent_ops": dict(self.sent),
            "replies": dict(self.replies),
            "host_calls": len(self.rec.host),
            "host_errors": self.host_errors,
            "host_skipped": self.host_skipped,
            "id_map": self.idmap,
            "errors": errors,
            "error_samples": self.stats.error_samples,
            "elapsed_s": round(elapsed, 2),
            "recorded_span_s": round((max((t for c in self.rec.conns.values() for t, _ in c["ops"]), default=self.rec.t0) - self.rec.t0) / 1000, 2),
        }


def replay(path: Path, opts: ReplayOptions) -> dict[str, Any]:
    return asyncio.run(Replayer(read_recording(path), opts).run())
