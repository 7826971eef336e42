"""The webhook worker: three loops, any number of workers on one Redis.

1. **orders relay**: reads every room's orders stream (`lc:{room}:orders`) through the
   consumer group `webhooks`, emits `order.reserved|paid|expired` (event id derived from
   the stream entry, so a re-read after a crash is deduplicated) and acknowledges.
2. **fan-out**: reads the event queue `lc:{wh}:ev` through the consumer group `fanout`
   and, in one transaction, schedules one delivery per matching hook and acknowledges.
   Entries another worker left unacknowledged (it died) are taken over after the lease.
3. **delivery**: claims due deliveries with a lease (`webhook_claim.lua`) and attempts
   each one in its own task: POST with the signature, timeouts and a response size cap.
   2xx: done. Otherwise the next attempt is scheduled with exponential backoff and full
   jitter, until LIVESERVER_WEBHOOK_RETRY_S has passed since the first attempt: then the
   delivery is a dead letter (listed and replayable through the API). A worker that dies
   mid-attempt loses nothing: the lease runs out and the delivery is due again.
   A slow or dead receiver holds at most LIVESERVER_WEBHOOK_PER_HOOK_INFLIGHT attempts;
   its other deliveries wait in Redis, never in front of another hook's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from typing import TYPE_CHECKING, Any

from liveserver.core.config import Settings
from liveserver.core.ops import OrderEntryHandler
from liveserver.core.pacer import Every, Pacer
from liveserver.core.tasks import cancel_and_wait
from liveserver.engine.webhook_store import WebhookStore
from liveserver.webhooks import signing, urls
from liveserver.webhooks.events import emit

if TYPE_CHECKING:
    import httpx

RELAY_ROOMS_PER_PASS = 50  # rooms whose orders streams one relay pass reads
RECLAIM_EVERY_S = 5.0  # how often the relay takes over entries a dead relay left

log = logging.getLogger("liveserver.webhooks")

RESPONSE_CAP = 64 * 1024  # bytes of a receiver's answer we read at most (kept: 200)
USER_AGENT = "liveserver-webhooks/1"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def matches(hook: dict[str, Any], event_type: str, room: str, ts_ms: int) -> bool:
    events = hook.get("events") or ["*"]
    if "*" not in events and event_type not in events:
        return False
    if hook.get("room") and hook["room"] != room:
        return False
    return ts_ms >= int(hook.get("created_ms", 0))


def backoff_ms(attempts: int, base_ms: int, cap_ms: int, rng: random.Random = random.Random()) -> int:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2^(n-1))."""
    d = min(cap_ms, base_ms * (2 ** min(attempts - 1, 40)))
    return int(d / 2 + rng.random() * d / 2)


async def _all(calls: list[Any]) -> None:
    """Await `calls` together (and empty the list); the first error, if any, is raised
    once every call has finished."""
    if not calls:
        return
    results = await asyncio.gather(*calls, return_exceptions=True)
    calls.clear()
    for result in results:
        if isinstance(result, BaseException):
            raise result


class WebhookWorker:
    def __init__(self, store: WebhookStore, settings: Settings, name: str | None = None,
                 entry_handlers: dict[str, OrderEntryHandler] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.entry_handlers = entry_handlers or {}  # other orders-stream entries (group_failed, ...)
        self.name = name or "w-" + secrets.token_hex(4)
        self._tasks: list[asyncio.Task[None]] = []
        self._attempts: set[asyncio.Task[None]] = set()
        self._per_hook: dict[str, int] = {}
        self._hooks: dict[str, dict[str, Any]] = {}
        self._hooks_at = 0.0
        # An idle worker polls Redis about once a second, not every 100-200 ms (core/pacer.py);
        # delivery also sleeps until the next retry is due, and wakes for new deliveries.
        self.relay_pacer = Pacer(0.2, 1.0)
        self.deliver_pacer = Pacer(0.1, 1.0)
        self._relay_passes = 0
        self._reclaim = Every(RECLAIM_EVERY_S)
        self._http: httpx.AsyncClient | None = None  # made at the first delivery: see _client

    def _client(self) -> "httpx.AsyncClient":
        # httpx (with httpcore, and the TLS context it builds from certifi's bundle) is a
        # fifth of a node's start-up; a restarted node is back sooner for its viewers without
        # it, and most nodes of a deployment deliver rarely.
        if self._http is None:
            import httpx

            timeout = self.settings.webhook_timeout_ms / 1000
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)), follow_redirects=False,
                limits=httpx.Limits(max_connections=self.settings.webhook_max_inflight, max_keepalive_connections=32),
                headers={"User-Agent": USER_AGENT}, trust_env=False,
            )
        return self._http

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self.relay_orders, self.relay_pacer), name="webhooks-orders"),
            asyncio.create_task(self._loop(self.fan_out, None), name="webhooks-fanout"),  # a blocking read
            asyncio.create_task(self._deliver_loop(), name="webhooks-deliver"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks, *self._attempts)
        if self._http is not None:
            await self._http.aclose()

    async def _loop(self, work: Any, pacer: Pacer | None) -> None:
        while True:
            done = 0
            try:
                done = await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhooks: %s failed: %s", getattr(work, "__name__", work), exc)
                await asyncio.sleep(1.0)
            if pacer is not None:
                await pacer.wait(done > 0)

    # -- 1. orders relay ----------------------------------------------------------------
    async def relay_orders(self) -> int:
        rooms = await self.store.order_rooms()
        self._relay_passes += 1
        if len(rooms) > RELAY_ROOMS_PER_PASS:  # a bounded, rotating window of rooms per pass
            start = (self._relay_passes * RELAY_ROOMS_PER_PASS) % len(rooms)
            rooms = (rooms + rooms)[start : start + RELAY_ROOMS_PER_PASS]
        entries = await self.store.read_orders(rooms, self.name, 200, self.settings.webhook_lease_ms,
                                               reclaim=self._reclaim.due())
        acks: dict[str, list[str]] = {}
        # The emits of a pass go out together: one script-runner round trip for a rush's
        # thousand orders, not one each (an emit is idempotent by event id, so a pass that
        # fails midway is simply read again). Other entries wait for the emits before them.
        emits: list[Any] = []
        for room, entry_id, fields in entries:
            kind = fields.get("type", "")
            if kind in ("reserved", "paid", "expired"):
                try:
                    data = json.loads(fields.get("data") or "{}")
                except ValueError:
                    data = {}
                emits.append(emit(self.store, "order." + kind, room, data, f"{room}.orders.{entry_id}",
                                  int(fields.get("ts") or 0)))
            elif kind in self.entry_handlers:
                await _all(emits)
                await self.entry_handlers[kind](room, fields)
            acks.setdefault(room, []).append(entry_id)
        await _all(emits)
        for room, ids in acks.items():
            await self.store.ack_orders(room, ids)
        return len(entries)

    # -- 2. fan-out -------------------------------------------------------------------------
    async def _hook_table(self) -> dict[str, dict[str, Any]]:
        if time.monotonic() - self._hooks_at > 0.5:
            self._hooks = {h["id"]: h for h in await self.store.hooks()}
            self._hooks_at = time.monotonic()
        return self._hooks

    async def fan_out(self) -> int:
        entries = await self.store.read_events(self.name, 100, 500, self.settings.webhook_lease_ms)
        if not entries:
            return 0
        self._hooks_at = 0.0  # a hook created just before its first event must be seen
        hooks = await self._hook_table()
        now = int(time.time() * 1000)
        scheduled: list[tuple[str, dict[str, str]]] = []
        for entry_id, f in entries:
            event_id, event_type, room, ts = f.get("id", ""), f.get("type", ""), f.get("room", ""), int(f.get("ts") or 0)
            deliveries = {}
            for hook in hooks.values():
                if matches(hook, event_type, room, ts):
                    delivery_id = f"{event_id}~{hook['id']}"
                    deliveries[delivery_id] = _dumps({
                        "id": delivery_id, "hook": hook["id"], "event_id": event_id, "type": event_type,
                        "room": room, "body": f.get("body", ""), "attempts": 0, "first_ms": 0,
                    })
            scheduled.append((entry_id, deliveries))
        await self.store.fan_out(scheduled, now)
        self.deliver_pacer.wake()
        return len(entries)

    # -- 3. delivery -------------------------------------------------------------------------
    async def _deliver_loop(self) -> None:
        while True:
            try:
                started = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhooks: delivery pass failed: %s", exc)
                started = 0
                await asyncio.sleep(1.0)
            if started:
                self.deliver_pacer.next_delay(True)
            else:
                await self.deliver_pacer.wait(False)

    async def deliver_due(self) -> int:
        free = self.settings.webhook_max_inflight - len(self._attempts)
        if free <= 0:
            self.deliver_pacer.due_in(None)
            return 0  # an attempt that ends wakes the loop
        now, next_ms, claimed = await self.store.claim(min(free, 100), self.settings.webhook_lease_ms)
        due_in = None if next_ms is None else (next_ms - now) / 1000
        if not claimed:
            self.deliver_pacer.due_in(due_in)
            return 0
        hooks = await self._hook_table()
        started = 0
        busy: list[str] = []
        for delivery_id, raw in claimed:
            delivery = json.loads(raw)
            hook = hooks.get(delivery["hook"])
            if hook is None:
                hook = await self.store.hook(delivery["hook"])
                if hook is None:  # the hook was deleted: its deliveries go with it
                    await self.store.drop(delivery_id)
                    continue
            if self._per_hook.get(hook["id"], 0) >= self.settings.webhook_per_hook_inflight:
                busy.append(delivery_id)  # this receiver is busy (slow?): later, no attempt counted
                continue
            self._per_hook[hook["id"]] = self._per_hook.get(hook["id"], 0) + 1
            task = asyncio.create_task(self._attempt(hook, delivery))
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)
            started += 1
        await self.store.postpone(busy, now + 200)
        if busy and not started and due_in is not None:
            # Only busy receivers' deliveries were due: the next pass would take more of
            # theirs at once; wait at least a fast beat (an attempt that ends wakes us).
            due_in = max(due_in, self.deliver_pacer.fast_s)
        self.deliver_pacer.due_in(due_in)
        return started

    async def _attempt(self, hook: dict[str, Any], delivery: dict[str, Any]) -> None:
        try:
            delivery["attempts"] += 1
            now_ms = int(time.time() * 1000)
            if not delivery.get("first_ms"):
                delivery["first_ms"] = now_ms
            ok, status, error = await self.post(hook, delivery)
            delivery["last_status"], delivery["last_error"], delivery["last_ms"] = status, error, now_ms
            if ok:
                await self.store.delivered(delivery["id"])
                return
            now_ms = int(time.time() * 1000)
            if now_ms - delivery["first_ms"] >= self.settings.webhook_retry_s * 1000:
                delivery["dead_ms"] = now_ms
                await self.store.dead(delivery["id"], _dumps(delivery), now_ms)
                log.warning("webhook delivery %s to hook %s is a dead letter after %d attempts (%s)",
                            delivery["id"], hook["id"], delivery["attempts"], error or status)
                return
            due = now_ms + backoff_ms(delivery["attempts"], self.settings.webhook_backoff_ms,
                                      self.settings.webhook_backoff_max_ms)
            delivery["next_ms"] = due
            await self.store.retry_at(delivery["id"], _dumps(delivery), due)
        except asyncio.CancelledError:
            raise  # the lease brings it back
        except Exception:
            log.exception("webhook attempt failed unexpectedly (it comes back after its lease)")
        finally:
            self._per_hook[hook["id"]] -= 1
            self.deliver_pacer.wake()  # a slot is free, and a retry may be due before the loop's wait ends

    async def post(self, hook: dict[str, Any], delivery: dict[str, Any]) -> tuple[bool, int, str]:
        """One attempt: (ok, HTTP status or 0, error text). Never raises for network trouble."""
        try:
            await urls.check(hook["url"], self.settings.webhooks_allow_private)
        except urls.BadURL as exc:
            return False, 0, f"refused url: {exc}"
        body = delivery["body"].encode()
        headers = {
            "Content-Type": "application/json",
            signing.HEADER: signing.sign(hook["secret"], body),
            "Liveserver-Event": delivery["type"],
            "Liveserver-Event-Id": delivery["event_id"],
            "Liveserver-Delivery": delivery["id"],
            "Liveserver-Attempt": str(delivery["attempts"]),
        }
        try:
            return await asyncio.wait_for(self._send(hook["url"], body, headers),
                                          self.settings.webhook_timeout_ms / 1000 * 2)
        except asyncio.TimeoutError:
            return False, 0, "timeout"

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[bool, int, str]:
        import httpx  # imported by _client() already: a dictionary look-up

        try:
            async with self._client().stream("POST", url, content=body, headers=headers) as resp:
                got = 0
                async for chunk in resp.aiter_raw():
                    got += len(chunk)
                    if got > RESPONSE_CAP:
                        break
                ok = 200 <= resp.status_code < 300
                return ok, resp.status_code, "" if ok else f"HTTP {resp.status_code}"
        except httpx.TimeoutException:
            return False, 0, "timeout"
        except httpx.HTTPError as exc:
            return False, 0, type(exc).__name__
