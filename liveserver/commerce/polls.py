"""Polls: one vote per user (vote.lua), live tallies, an end announced once."""

from __future__ import annotations

import json
from typing import Any

from protocol import ClientOp, ErrorCode

from liveserver.commerce.common import in_room, ints, job, now_ms, signed_in, window_phase
from liveserver.commerce.kind import CommerceKind, JobAction, Objects
from liveserver.commerce.sales import DURATION
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler
from liveserver.engine.commerce_keys import CommerceKeys, room_of
from liveserver.engine.commerce_store import Read

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

INT_FIELDS = ("options", "start_ms", "end_ms", "created_ms", "correct")
POLL = obj(
    ["question", "options", "duration_s"],
    question={"type": "string", "minLength": 1, "maxLength": 200},
    options={"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}, "minItems": 2, "maxItems": 10},
    duration_s=DURATION,
)
VOTE_MESSAGES = {
    "not_found": "no such poll",
    "not_started": "the poll has not started",
    "ended": "the poll has ended",
    "already_claimed": "you already voted in this poll",
}


def poll_view(poll: dict[str, Any], tallies: list[int], now: int | None = None) -> dict[str, Any]:
    labels = poll["labels"] if isinstance(poll["labels"], list) else json.loads(poll["labels"])
    return {
        "id": poll["id"], "room": poll["room"], "question": poll["question"], "options": labels,
        "tallies": tallies, "start_ms": poll["start_ms"], "end_ms": poll["end_ms"],
        "phase": window_phase(poll, now if now is not None else now_ms()),
        **({"correct": poll["correct"]} if "correct" in poll else {}),
    }


def tallies_of(counts: dict[str, str], options: int) -> list[int]:
    return [int(counts.get(str(i), 0)) for i in range(options)]


class Polls(CommerceKind):
    name = "polls"
    event = "poll"
    key_segment = "poll"
    extras = (("hgetall", ":tallies"),)

    def loaded(self, fields: dict[str, str], extras: list[Any]) -> dict[str, Any] | None:
        poll = ints(fields, INT_FIELDS)
        return poll_view(poll, tallies_of(extras[0], poll["options"]))

    def reads(self, room: str, object_id: str, obj: dict[str, Any], now: int) -> list[Read]:
        if now < obj.get("end_ms", 0) + 1000:
            return [Read("hgetall", CommerceKeys(room).tallies(object_id))]
        return []

    def absorb(self, obj: dict[str, Any], values: list[Any]) -> None:
        obj["tallies"] = tallies_of(values[0], len(obj["options"]))

    def advance(self, obj: dict[str, Any], now: int) -> None:
        if "start_ms" in obj:
            obj["phase"] = window_phase(obj, now)

    def state(self, objects: Objects) -> dict[str, Any]:
        return {"polls": {i: {"tallies": p.get("tallies", []), "phase": p.get("phase"), "question": p.get("question"),
                              "options": p.get("options"), "end_ms": p.get("end_ms"),
                              **({"correct": p["correct"]} if "correct" in p else {})}
                          for i, p in objects.items() if "end_ms" in p}}

    async def create(self, room: str, question: str, options: list[str], duration_s: int) -> dict[str, Any]:
        poll_id = await self.store.new_id(room, "poll", "p")
        created = now_ms()
        poll = {
            "id": poll_id, "room": room, "question": question, "options": len(options),
            "labels": _dumps(options), "start_ms": created, "end_ms": created + duration_s * 1000,
            "created_ms": created,
        }
        keys = CommerceKeys(room)
        await self.store.save_new(keys.poll(poll_id), keys.index(self.name), poll,
                                  {job("poll_end", room, poll_id): poll["end_ms"]})
        view = poll_view(poll, [0] * len(options), created)
        await self.store.rooms.publish(room, "poll", {"poll": view})
        return view

    async def poll(self, poll_id: str) -> tuple[dict[str, Any], list[int]]:
        poll = await self.load(poll_id, INT_FIELDS)
        counts = await self.store.hash(CommerceKeys(poll["room"]).tallies(poll_id))
        return poll, tallies_of(counts, poll["options"])

    async def announce_end(self, poll_id: str) -> None:
        poll, tallies = await self.poll(poll_id)
        keys = CommerceKeys(poll["room"])
        await self.store.rooms.publish(poll["room"], "poll", {"poll": poll_view(poll, tallies)},
                                       once=(keys.poll(poll_id), "ev_ended"))

    async def vote(self, room: str, poll_id: str, user: str, option: int) -> dict[str, Any]:
        in_room(poll_id, room, "poll")
        reply = await self.store.vote(room, poll_id, user, option)
        if int(reply[0]) == 0:
            code = str(reply[1])
            if code == "bad_option":
                raise OpError(ErrorCode.BAD_REQUEST, "vote: no such option")
            raise OpError(ErrorCode(code), VOTE_MESSAGES[code])
        return {"poll": poll_id, "tallies": [int(x) for x in reply[1:]]}

    # -- quiz: a poll with a correct option ------------------------------------------------
    async def reveal(self, poll_id: str, correct: int) -> dict[str, Any]:
        poll, _tallies = await self.poll(poll_id)
        reply = await self.store.reveal(poll["room"], poll_id, correct)
        if int(reply[0]) == 0:
            raise OpError(ErrorCode.BAD_REQUEST if reply[1] == "bad_option" else ErrorCode.NOT_FOUND,
                          "reveal: no such option" if reply[1] == "bad_option" else f"no poll {poll_id!r}")
        poll, tallies = await self.poll(poll_id)
        keys = CommerceKeys(poll["room"])
        await self.store.rooms.publish(poll["room"], "poll", {"poll": poll_view(poll, tallies)},
                                       once=(keys.poll(poll_id), "ev_revealed"))
        return {"poll": poll_view(poll, tallies), "correct_voters": await self.correct_voters(poll_id),
                "changed": int(reply[0]) == 1}

    async def correct_voters(self, poll_id: str) -> list[str]:
        poll, _tallies = await self.poll(poll_id)
        if "correct" not in poll:
            raise OpError(ErrorCode.NOT_STARTED, "the correct option is not revealed yet")
        votes = await self.store.big_hash(CommerceKeys(poll["room"]).voters(poll_id))  # one field per voter
        return sorted(u for u, option in votes.items() if int(option) == poll["correct"])

    async def reward(self, poll_id: str, title: str, amount: int, min_spend: int, valid_s: int) -> dict[str, Any]:
        """One coupon to every correct voter, in one script, once per quiz (coupon_grant.lua)."""
        winners = await self.correct_voters(poll_id)
        room = room_of(poll_id) or ""
        coupon_id = f"{poll_id}.reward"
        entry = {"coupon_id": coupon_id, "room": room, "title": title, "amount": amount, "min_spend": min_spend,
                 "expires_ms": now_ms() + valid_s * 1000}
        granted = await self.store.grant_coupon(room, CommerceKeys(room).poll(poll_id), winners, coupon_id, entry,
                                                guard="rewarded")
        if granted < 0:
            raise OpError(ErrorCode.ALREADY_CLAIMED, "this quiz was already rewarded")
        return {"poll": poll_id, "coupon": entry, "rewarded": winners}

    def ops(self) -> dict[str, OpHandler]:
        async def vote(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "vote")
            return await self.vote(ctx.room, op.args["poll"], user, op.args["option"])

        return {"vote": vote}

    def jobs(self) -> dict[str, JobAction]:
        return {"poll_end": self.announce_end}


@API.add("POST", "/rooms/{room}/polls", "Start a poll", body=POLL, status=201, tag="commerce")
async def post_poll(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    body = call.body
    kind: Polls = call.services.commerce.kind(Polls)
    return {"poll": await kind.create(room, body["question"], body["options"], body["duration_s"])}


REVEAL = obj(["correct"], correct={"type": "integer", "minimum": 0, "maximum": 63})
REWARD = obj(
    ["title", "amount"],
    title={"type": "string", "minLength": 1, "maxLength": 100},
    amount={"type": "integer", "minimum": 1, "maximum": 10**10},
    min_spend={"type": "integer", "minimum": 0, "maximum": 10**10},
    valid_s={"type": "integer", "minimum": 1, "maximum": 365 * 86400},
)


def _poll_id(call: Call) -> str:
    poll_id = call.params["id"]
    if room_of(poll_id) != call.params["room"]:
        raise OpError(ErrorCode.NOT_FOUND, f"no poll {poll_id!r} in this room")
    return poll_id


@API.add("POST", "/rooms/{room}/polls/{id}/reveal", "Quiz: reveal the correct option (closes voting; once)",
         body=REVEAL, tag="commerce")
async def post_reveal(call: Call) -> dict[str, Any]:
    await require_room(call)
    kind: Polls = call.services.commerce.kind(Polls)
    return await kind.reveal(_poll_id(call), call.body["correct"])


@API.add("GET", "/rooms/{room}/polls/{id}/correct", "Quiz: the users who voted the correct option", tag="commerce")
async def get_correct(call: Call) -> dict[str, Any]:
    await require_room(call)
    kind: Polls = call.services.commerce.kind(Polls)
    poll_id = _poll_id(call)
    return {"poll": poll_id, "correct_voters": await kind.correct_voters(poll_id)}


@API.add("POST", "/rooms/{room}/polls/{id}/reward", "Quiz: give every correct voter a coupon (once)",
         body=REWARD, status=201, tag="commerce")
async def post_reward(call: Call) -> dict[str, Any]:
    await require_room(call)
    kind: Polls = call.services.commerce.kind(Polls)
    b = call.body
    return await kind.reward(_poll_id(call), b["title"], b["amount"], b.get("min_spend", 0), b.get("valid_s", 7 * 86400))
