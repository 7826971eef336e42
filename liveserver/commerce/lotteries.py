"""Lotteries: commit/reveal draws anyone can re-check (lottery_verify), entry by op or by
a keyword in a danmaku (enter.lua), closing and publishing once (lottery_close/result.lua)."""

from __future__ import annotations

import json
from typing import Any

from protocol import ClientOp, ErrorCode

from liveserver.commerce import lottery_verify
from liveserver.commerce.common import in_room, ints, job, now_ms, signed_in
from liveserver.commerce.kind import CommerceKind, JobAction, Objects
from liveserver.commerce.sales import DURATION
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.core.ops import DanmakuListener, LeaveListener, OpContext, OpHandler
from liveserver.engine.commerce_keys import CommerceKeys, room_of
from liveserver.engine.commerce_store import Read
from liveserver.engine.engine import Event
from liveserver.webhooks.events import emit

INT_FIELDS = ("winners", "start_ms", "end_ms", "created_ms", "need_watch_ms", "drawn_ms", "claim_ms")
CLAIM_S = 86400  # winners have this long after the draw to leave a shipping address
PRIZE_COUPON = obj(
    ["title", "amount"],
    title={"type": "string", "minLength": 1, "maxLength": 100},
    amount={"type": "integer", "minimum": 1, "maximum": 10**10},
    min_spend={"type": "integer", "minimum": 0, "maximum": 10**10},
    valid_s={"type": "integer", "minimum": 1, "maximum": 365 * 86400},
)
LOTTERY = obj(
    ["prize", "winners", "duration_s"],
    prize={"type": "string", "minLength": 1, "maxLength": 200},
    winners={"type": "integer", "minimum": 1, "maximum": 1000},
    keyword={"type": "string", "minLength": 1, "maxLength": 20},
    duration_s=DURATION,
    # lucky bag (福袋) entry conditions and a coupon prize
    follow={"type": "boolean"},
    watch_s={"type": "integer", "minimum": 0, "maximum": 86400},
    keyword_only={"type": "boolean"},
    coupon=PRIZE_COUPON,
    claim_s={"type": "integer", "minimum": 1, "maximum": 30 * 86400},
)
CLAIM_MESSAGES = {"not_found": "no such lottery", "not_started": "the lottery has not been drawn yet",
                  "forbidden": "only winners claim a prize", "ended": "the claim window has closed",
                  "already_claimed": "you already sent your address"}
ENTER_MESSAGES = {"not_found": "no such lottery", "ended": "the lottery is closed",
                  "not_started": "the lottery has not started"}
CONDITION_MESSAGES = {"follow": "follow the room to enter this lucky bag",
                      "watch": "watch a little longer to enter this lucky bag",
                      "keyword": "send the keyword in a danmaku to enter this lucky bag"}
STATE_FIELDS = ("phase", "prize", "keyword", "winners", "end_ms", "commit", "conditions", "coupon")
PRIZE_VALID_S = 7 * 86400


def lottery_view(lottery: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "room", "prize", "winners", "keyword", "commit", "phase", "start_ms", "end_ms")
    view = {k: lottery[k] for k in keep if k in lottery}  # never the seed before the draw
    conditions = {}
    if lottery.get("need_follow") in ("1", 1, True):
        conditions["follow"] = True
    if int(lottery.get("need_watch_ms") or 0):
        conditions["watch_s"] = int(lottery["need_watch_ms"]) // 1000
    if lottery.get("need_keyword") in ("1", 1, True):
        conditions["keyword"] = lottery.get("keyword")
    if conditions:
        view["conditions"] = conditions
    if lottery.get("prize_coupon"):
        prize = lottery["prize_coupon"]
        view["coupon"] = json.loads(prize) if isinstance(prize, str) else prize
    return view


class Lotteries(CommerceKind):
    name = "lotteries"
    event = "lottery"
    key_segment = "lottery"
    extras = (("scard", ":entrants"),)

    def loaded(self, fields: dict[str, str], extras: list[Any]) -> dict[str, Any] | None:
        view = lottery_view(ints(fields, INT_FIELDS))
        view["entrants"] = int(extras[0])
        return view

    def handles(self) -> tuple[str, ...]:
        return ("lottery", "lottery_result")

    def apply(self, objects: Objects, event: Event) -> dict[str, Any]:
        if event["k"] == "lottery_result":
            lottery = objects.get(event.get("lottery_id", ""))
            if lottery is not None:
                lottery["phase"] = "drawn"
                lottery["entrants"] = event.get("entrants", lottery.get("entrants", 0))
            return {}
        return super().apply(objects, event)

    def reads(self, room: str, object_id: str, obj: dict[str, Any], now: int) -> list[Read]:
        if obj.get("phase") == "live":
            return [Read("scard", CommerceKeys(room).entrants(object_id))]
        return []

    def absorb(self, obj: dict[str, Any], values: list[Any]) -> None:
        obj["entrants"] = int(values[0])

    def state(self, objects: Objects) -> dict[str, Any]:
        return {"lotteries": {i: {**{k: l.get(k) for k in STATE_FIELDS}, "entrants": l.get("entrants", 0)}
                              for i, l in objects.items() if "end_ms" in l}}

    # -- commands --------------------------------------------------------------------------
    async def create(self, room: str, prize: str, winners: int, keyword: str | None, duration_s: int,
                     follow: bool = False, watch_s: int = 0, keyword_only: bool = False,
                     coupon: dict[str, Any] | None = None, claim_s: int = CLAIM_S) -> dict[str, Any]:
        if keyword_only and not keyword:
            raise OpError(ErrorCode.BAD_REQUEST, "keyword_only needs a keyword")
        lottery_id = await self.store.new_id(room, "lottery", "l")
        created = now_ms()
        seed = lottery_verify.new_seed()
        lottery: dict[str, Any] = {
            "id": lottery_id, "room": room, "prize": prize, "winners": winners, "keyword": keyword or "",
            "commit": lottery_verify.commit_of(seed), "seed": seed, "phase": "live",
            "start_ms": created, "end_ms": created + duration_s * 1000, "created_ms": created,
            "claim_ms": claim_s * 1000, "need_follow": 1 if follow else 0, "need_watch_ms": watch_s * 1000, "need_keyword": 1 if keyword_only else 0,
        }
        if coupon:
            end = lottery["end_ms"]
            lottery["prize_coupon"] = json.dumps({
                "coupon_id": f"{lottery_id}.prize", "room": room, "title": coupon["title"], "amount": coupon["amount"],
                "min_spend": coupon.get("min_spend", 0),
                "expires_ms": end + coupon.get("valid_s", PRIZE_VALID_S) * 1000,
            }, separators=(",", ":"), ensure_ascii=False)
        keys = CommerceKeys(room)
        await self.store.save_new(keys.lottery(lottery_id), keys.index(self.name), lottery,
                                  {job("lottery_draw", room, lottery_id): lottery["end_ms"]})
        view = lottery_view(lottery)
        await self.store.rooms.publish(room, "lottery", {"lottery": view})
        return view

    async def lottery(self, lottery_id: str) -> dict[str, Any]:
        return await self.load(lottery_id, INT_FIELDS)

    async def enter(self, room: str, lottery_id: str, user: str, watched_ms: int = 0,
                    by_keyword: bool = False) -> dict[str, Any]:
        in_room(lottery_id, room, "lottery")
        reply = await self.store.enter(room, lottery_id, user, watched_ms, by_keyword)
        if int(reply[0]) == 0:
            code = str(reply[1])
            if code == "forbidden":
                why = str(reply[2])
                extra = {"need_watch_s": int(reply[3]) // 1000, "watched_s": watched_ms // 1000} if why == "watch" else {}
                raise OpError(ErrorCode.FORBIDDEN, CONDITION_MESSAGES[why], condition=why, **extra)
            raise OpError(ErrorCode(code), ENTER_MESSAGES[code])
        return {"lottery": lottery_id, "entrants": int(reply[1]), "new": bool(int(reply[2]))}

    async def entrants(self, lottery_id: str) -> list[str]:
        room = room_of(lottery_id) or ""
        return await self.store.members(CommerceKeys(room).entrants(lottery_id))

    async def draw(self, lottery_id: str) -> dict[str, Any]:
        """Close entry, pick winners from the frozen entrants, publish once. Idempotent."""
        room = room_of(lottery_id)
        closed = await self.store.close_lottery(room, lottery_id) if room else []
        if not room or not closed:
            raise OpError(ErrorCode.NOT_FOUND, f"no lottery {lottery_id!r}")
        _phase, seed, winners_n, *entrants = closed
        result = {
            "lottery_id": lottery_id, "winners": lottery_verify.draw(seed, entrants, int(winners_n)),
            "seed": seed, "commit": lottery_verify.commit_of(seed), "entrants": len(entrants),
        }
        stored = await self.store.store_lottery_result(room, lottery_id, result)
        prize = (await self.store.hash(CommerceKeys(room).lottery(lottery_id))).get("prize_coupon")
        if prize:
            # After the result (so the winners are the stored ones, whoever drew); a crash in
            # between leaves the job leased, and its re-run grants (once: coupon_grant.lua).
            entry = json.loads(prize)
            await self.store.grant_coupon(room, CommerceKeys(room).lottery(lottery_id), list(stored["winners"]),
                                          entry["coupon_id"], entry)
        # Every draw call (a retry, a second node) emits; the event id makes it one event.
        await emit(self.store.rooms.webhooks, "lottery.drawn", room, stored, f"{lottery_id}.drawn")
        return stored

    async def claim_prize(self, room: str, lottery_id: str, user: str, claim: dict[str, str]) -> dict[str, Any]:
        in_room(lottery_id, room, "lottery")
        reply = await self.store.prize_claim(room, lottery_id, user, claim)
        if int(reply[0]) == 0:
            code = str(reply[1])
            raise OpError(ErrorCode(code), CLAIM_MESSAGES[code])
        return {"lottery": lottery_id, "claimed": True, "claim_until_ms": int(reply[1])}

    async def claims(self, lottery_id: str) -> dict[str, Any]:
        lottery = await self.lottery(lottery_id)
        if "result" not in lottery:
            raise OpError(ErrorCode.NOT_STARTED, "the lottery has not been drawn yet")
        winners = json.loads(lottery["result"])["winners"]
        raw = await self.store.hash(CommerceKeys(lottery["room"]).prize_claims(lottery_id))
        claims = [json.loads(v) for v in raw.values()]
        until = lottery.get("drawn_ms", 0) + lottery.get("claim_ms", CLAIM_S * 1000)
        return {"lottery": lottery_id, "claims": sorted(claims, key=lambda c: c["claimed_ms"]),
                "unclaimed": sorted(set(winners) - set(raw)), "claim_until_ms": until, "expired": now_ms() >= until}

    async def watched_ms(self, ctx: OpContext) -> int:
        """What this user watched the room: ended sessions (all nodes) + this connection."""
        return await self.store.watched(ctx.room, ctx.user) + max(0, now_ms() - ctx.connected_ms)

    # -- what it serves ------------------------------------------------------------------------
    def ops(self) -> dict[str, OpHandler]:
        async def enter(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "enter the lottery")
            return await self.enter(ctx.room, op.args["lottery"], user, await self.watched_ms(ctx))

        async def prize_claim(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "claim a prize")
            claim = {k: op.args[k] for k in ("name", "phone", "address")}
            return await self.claim_prize(ctx.room, op.args["lottery"], user, claim)

        return {"enter": enter, "prize_claim": prize_claim}

    def jobs(self) -> dict[str, JobAction]:
        return {"lottery_draw": self.draw}

    def danmaku_listener(self) -> DanmakuListener | None:
        async def keyword_entry(ctx: OpContext, text: str) -> dict[str, Any]:
            """A danmaku containing a live lottery's keyword enters that lottery."""
            lowered = text.lower()
            now = now_ms()
            entered = []
            for lottery_id, lottery in list(self.objects_of(ctx.room).items()):
                keyword = lottery.get("keyword")
                if keyword and lottery.get("phase") == "live" and now < lottery["end_ms"] and keyword.lower() in lowered:
                    try:
                        await self.enter(ctx.room, lottery_id, ctx.user, await self.watched_ms(ctx), by_keyword=True)
                        entered.append(lottery_id)
                    except OpError:
                        pass  # closed meanwhile, or a condition unmet: the danmaku itself still went out
            return {"entered": entered}

        return keyword_entry

    def leave_listener(self) -> LeaveListener | None:
        async def add_watch(ctx: OpContext) -> None:
            """Count a signed-in viewer's session towards lucky bags' `watch_s` (across reconnects and nodes)."""
            if not ctx.identity.is_guest:
                await self.store.add_watch(ctx.room, ctx.user, max(0, now_ms() - ctx.connected_ms))

        return add_watch


def _lotteries(call: Call) -> Lotteries:
    return call.services.commerce.kind(Lotteries)


def _lottery_id(call: Call) -> str:
    lottery_id = call.params["id"]
    if room_of(lottery_id) != call.params["room"]:
        raise OpError(ErrorCode.NOT_FOUND, f"no lottery {lottery_id!r} in this room")
    return lottery_id


@API.add("POST", "/rooms/{room}/lotteries", "Start a lottery (publishes the commit)", body=LOTTERY,
         status=201, tag="commerce")
async def post_lottery(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    lottery = await _lotteries(call).create(room, body["prize"], body["winners"], body.get("keyword"), body["duration_s"],
                                            body.get("follow", False), body.get("watch_s", 0),
                                            body.get("keyword_only", False), body.get("coupon"),
                                            body.get("claim_s", CLAIM_S))
    return {"lottery": lottery}


@API.add("POST", "/rooms/{room}/lotteries/{id}/draw", "Draw a lottery now (idempotent)", tag="commerce")
async def post_draw(call: Call) -> dict[str, Any]:
    return {"result": await _lotteries(call).draw(_lottery_id(call))}


@API.add("GET", "/rooms/{room}/lotteries/{id}", "Read a lottery; after the draw, its result and every entrant",
         auth="none", tag="commerce")
async def get_lottery(call: Call) -> dict[str, Any]:
    kind = _lotteries(call)
    lottery = await kind.lottery(_lottery_id(call))
    out: dict[str, Any] = {"lottery": lottery_view(lottery)}
    if "result" in lottery:
        out["result"] = json.loads(lottery["result"])
        out["entrants_list"] = await kind.entrants(lottery["id"])
    else:
        out["entrants"] = len(await kind.entrants(lottery["id"]))
    return out


@API.add("GET", "/rooms/{room}/lotteries/{id}/claims", "Winners' shipping claims (and who has not claimed)",
         tag="commerce")
async def get_claims(call: Call) -> dict[str, Any]:
    await require_room(call)
    return await _lotteries(call).claims(_lottery_id(call))
