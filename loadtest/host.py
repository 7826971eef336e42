"""Host actions through the host API (HTTP + JSON, admin bearer token)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from liveserver.core.auth import mint

from .worker import TOKEN_TTL_S


class HostError(Exception):
    pass


def admin_token(secret: str) -> str:
    return mint(secret, "liveload-host", role="admin", ttl_s=TOKEN_TTL_S)


# action -> (path under the room, body fields taken from the phase, what the reply holds)
ACTIONS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "push_card": ("/cards", ("product_id",), None),
    "start_sale": ("/sales", ("product_id", "price", "stock", "per_user_limit", "start_in_s", "duration_s"), "sale"),
    "drop_coupon": ("/coupons", ("title", "amount", "min_spend", "quantity", "per_user", "duration_s"), "coupon"),
    "start_lottery": ("/lotteries", ("prize", "winners", "keyword", "duration_s"), "lottery"),
    "start_poll": ("/polls", ("question", "options", "duration_s"), "poll"),
    "notice": ("/notices", ("text",), None),
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "start_sale": {"per_user_limit": 1, "start_in_s": 0, "duration_s": 600},
    "drop_coupon": {"title": "coupon", "min_spend": 0, "per_user": 1, "duration_s": 600},
    "start_lottery": {"prize": "a prize", "duration_s": 600},
    "start_poll": {"question": "which one?", "duration_s": 600},
}


class HostApi:
    def __init__(self, base: str, secret: str, room: str) -> None:
        self.base = base.rstrip("/") + "/api/v1"
        self.room = room
        self.client = httpx.AsyncClient(headers={"Authorization": f"Bearer {admin_token(secret)}"}, timeout=30)

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        r = await self.client.request(method, self.base + path, json=body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            data = r.json()
        except ValueError:
            raise HostError(f"{method} {path}: HTTP {r.status_code}, not JSON: {r.text[:200]}") from None
        if r.status_code >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise HostError(f"{method} {path}: HTTP {r.status_code} {err.get('code')}: {err.get('message')}")
        return data, elapsed_ms

    async def setup_room(self, products: list[dict[str, Any]]) -> None:
        await self.call("PUT", f"/rooms/{self.room}", {"title": f"liveload {self.room}", "status": "live"})
        if products:
            await self.call("PUT", f"/rooms/{self.room}/products", {"products": products})

    async def act(self, spec: dict[str, Any], bindings: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, float]:
        """Run one host action; returns (binding info {id, ...} or None, latency ms)."""
        action = spec["action"]
        if action == "draw_lottery":
            lottery = bindings.get(spec["lottery"])
            if lottery is None:
                raise HostError(f"draw_lottery: lottery {spec['lottery']!r} was never started")
            data, ms = await self.call("POST", f"/rooms/{self.room}/lotteries/{lottery['id']}/draw")
            return {"id": lottery["id"], "result": data.get("result")}, ms
        path, fields, holds = ACTIONS[action]
        source = {**DEFAULTS.get(action, {}), **spec, "product_id": spec.get("product")}
        body = {k: source[k] for k in fields if source.get(k) is not None}
        data, ms = await self.call("POST", f"/rooms/{self.room}{path}", body)
        if holds is None:
            return None, ms
        obj = data[holds]
        return {"id": obj["id"], **({"keyword": obj.get("keyword")} if holds == "lottery" else {}), "kind": holds}, ms

    async def audit(self, sale: str) -> dict[str, Any]:
        data, _ = await self.call("GET", f"/sales/{sale}/audit")
        return data

    async def get(self, path: str) -> dict[str, Any]:
        data, _ = await self.call("GET", path)
        return data
