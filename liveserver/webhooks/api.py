"""Host API for webhooks: subscribe, list, delete; dead letters: list and replay.

A host token limited to one room may only subscribe to that room; hosts see and manage
their own hooks, admins all. Secrets are write-only: no reply and no log line carries one."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from protocol import ErrorCode

from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj
from liveserver.core.names import valid_room
from liveserver.webhooks import urls
from liveserver.webhooks.events import EVENT_TYPES

HOOK = obj(
    ["url", "secret"],
    url={"type": "string", "minLength": 8, "maxLength": 2000},
    secret={},  # checked by the handler: a schema error message would echo the secret
    events={"type": "array", "minItems": 1, "maxItems": len(EVENT_TYPES) + 1, "uniqueItems": True,
            "items": {"enum": ["*", *EVENT_TYPES]}},
    room={"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    description={"type": "string", "maxLength": 200},
)


def view(hook: dict[str, Any]) -> dict[str, Any]:
    """A hook as the API shows it: never its secret."""
    return {k: v for k, v in hook.items() if k != "secret"}


def _mine(call: Call, hook: dict[str, Any]) -> bool:
    ident = call.identity
    return ident is not None and (ident.role == "admin" or hook.get("owner") == ident.id)


@API.add("POST", "/webhooks", "Subscribe a URL to webhook events", body=HOOK, status=201, tag="webhooks")
async def post_webhook(call: Call) -> dict[str, Any]:
    ident = call.identity
    assert ident is not None
    secret = call.body["secret"]
    if not isinstance(secret, str) or not 16 <= len(secret) <= 256:
        raise OpError(ErrorCode.BAD_REQUEST, "secret must be a string of 16..256 characters")
    room = call.body.get("room", "")
    if ident.role != "admin" and ident.room is not None:
        if room and room != ident.room:
            raise OpError(ErrorCode.FORBIDDEN, "this host token may only subscribe to its own room")
        room = ident.room
    if room and not valid_room(room):
        raise OpError(ErrorCode.BAD_REQUEST, "room: 1..64 of A-Z a-z 0-9 _ -")
    try:
        await urls.check(call.body["url"], call.services.settings.webhooks_allow_private)
    except urls.BadURL as exc:
        raise OpError(ErrorCode.BAD_REQUEST, f"url: {exc}") from None
    hook = {
        "id": "wh_" + secrets.token_hex(8), "url": call.body["url"], "events": call.body.get("events", ["*"]),
        "room": room, "owner": ident.id, "description": call.body.get("description", ""),
        "created_ms": int(time.time() * 1000), "secret": secret,
    }
    await call.services.engine.webhooks.put_hook(hook)
    return {"webhook": view(hook)}


@API.add("GET", "/webhooks", "List webhooks (a host's own; an admin's all)", tag="webhooks")
async def get_webhooks(call: Call) -> dict[str, Any]:
    hooks = await call.services.engine.webhooks.hooks()
    return {"webhooks": [view(h) for h in hooks if _mine(call, h)]}


@API.add("GET", "/webhooks/dead", "Dead letters: deliveries given up after LIVESERVER_WEBHOOK_RETRY_S", tag="webhooks")
async def get_dead(call: Call) -> dict[str, Any]:
    store = call.services.engine.webhooks
    hooks = {h["id"]: h for h in await store.hooks()}
    out = [d for d in await store.dead_letters() if d.get("hook") in hooks and _mine(call, hooks[d["hook"]])]
    return {"dead": out}


@API.add("POST", "/webhooks/dead/{delivery}/replay", "Deliver a dead letter again (attempts start over)",
         tag="webhooks")
async def post_replay(call: Call) -> dict[str, Any]:
    store = call.services.engine.webhooks
    delivery_id = call.params["delivery"]
    delivery = await store.delivery(delivery_id)
    hook = await store.hook(delivery["hook"]) if delivery else None
    if delivery is None or hook is None or not _mine(call, hook) or "dead_ms" not in delivery:
        raise OpError(ErrorCode.NOT_FOUND, f"no dead letter {delivery_id!r}")
    delivery.pop("dead_ms", None)
    delivery.update(attempts=0, first_ms=0, replayed_ms=int(time.time() * 1000))
    now = int(time.time() * 1000)
    if not await store.revive(delivery_id, json.dumps(delivery, separators=(",", ":")), now):
        raise OpError(ErrorCode.NOT_FOUND, f"no dead letter {delivery_id!r}")
    return {"replayed": delivery_id}


@API.add("GET", "/webhooks/{hook}", "Read a webhook", tag="webhooks")
async def get_webhook(call: Call) -> dict[str, Any]:
    hook = await call.services.engine.webhooks.hook(call.params["hook"])
    if hook is None or not _mine(call, hook):
        raise OpError(ErrorCode.NOT_FOUND, f"no webhook {call.params['hook']!r}")
    return {"webhook": view(hook)}


@API.add("DELETE", "/webhooks/{hook}", "Delete a webhook (its pending deliveries are dropped)", tag="webhooks")
async def delete_webhook(call: Call) -> dict[str, Any]:
    store = call.services.engine.webhooks
    hook = await store.hook(call.params["hook"])
    if hook is None or not _mine(call, hook):
        raise OpError(ErrorCode.NOT_FOUND, f"no webhook {call.params['hook']!r}")
    await store.delete_hook(hook["id"])
    return {"deleted": hook["id"]}
