"""Invite coupons (分享得券): the share button gives a page URL with `ref=<user>`; a viewer
new to the room who arrives through it sends op `invite` {ref}, and invite.lua gives the
inviter the room's invite coupon: never for oneself, once per invitee, capped per inviter."""

from __future__ import annotations

from typing import Any

from protocol import ClientOp, ErrorCode

from liveserver.commerce.common import now_ms, signed_in
from liveserver.commerce.kind import CommerceKind
from liveserver.commerce.sales import PRICE
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler
from liveserver.engine.engine import LoadSpec

INVITE = obj(
    ["title", "amount", "per_inviter"],
    title={"type": "string", "minLength": 1, "maxLength": 100},
    amount={"type": "integer", "minimum": 1, "maximum": 10**10},
    min_spend=PRICE,
    per_inviter={"type": "integer", "minimum": 1, "maximum": 10000},
    valid_s={"type": "integer", "minimum": 1, "maximum": 365 * 86400},
)
MESSAGES = {
    "no_invite": "this room gives no invite reward",
    "self": "you cannot invite yourself",
    "not_first_time": "only a viewer new to the room counts as invited",
    "counted": "your visit already counted for an inviter",
    "cap": "that inviter has earned every invite coupon allowed",
}


class Invites(CommerceKind):
    name = "invites"

    def load_spec(self, room: str) -> LoadSpec | None:
        return None

    async def configure(self, room: str, title: str, amount: int, min_spend: int, per_inviter: int,
                        valid_s: int) -> dict[str, Any]:
        invite = {"coupon_id": f"{room}.invite", "title": title, "amount": amount, "min_spend": min_spend,
                  "per_inviter": per_inviter, "expires_ms": now_ms() + valid_s * 1000}
        await self.store.set_invite(room, invite)
        return invite

    async def invite(self, room: str, invitee: str, inviter: str) -> dict[str, Any]:
        reply = await self.store.invite(room, invitee, inviter)
        if not reply.pop("ok"):
            code, reason = reply.pop("code"), reply["reason"]
            raise OpError(ErrorCode(code), MESSAGES[reason], **reply)
        return {"inviter": reply["inviter"], "rewarded": True}

    def ops(self) -> dict[str, OpHandler]:
        async def invite(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "be counted as invited")
            return await self.invite(ctx.room, user, op.args["ref"])

        return {"invite": invite}


@API.add("PUT", "/rooms/{room}/invite", "Set the room's invite coupon (分享得券)", body=INVITE, tag="commerce")
async def put_invite(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    b = call.body
    kind: Invites = call.services.commerce.kind(Invites)
    invite = await kind.configure(room, b["title"], b["amount"], b.get("min_spend", 0), b["per_inviter"],
                                  b.get("valid_s", 7 * 86400))
    return {"invite": invite}
