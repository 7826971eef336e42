"""Follow: op `follow` {on} (follow.lua, a set per room), `state.followers`, a `follow`
event on a user's first follow; lucky-bag lotteries can require following."""

from __future__ import annotations

from typing import Any

from protocol import ClientOp

from liveserver.commerce.common import signed_in
from liveserver.commerce.kind import CommerceKind
from liveserver.core.ops import OpContext, OpHandler
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.commerce_store import Read
from liveserver.engine.engine import LoadSpec


class Follows(CommerceKind):
    name = "follows"
    event = "follow"

    def load_spec(self, room: str) -> LoadSpec | None:
        return None  # no objects: the count is polled per room

    def apply(self, objects: Any, event: Any) -> dict[str, Any]:
        followers = event.get("followers")
        return {"followers": followers} if isinstance(followers, int) else {}

    def room_reads(self, room: str) -> list[Read]:
        return [Read("scard", CommerceKeys(room).followers())]

    def room_absorb(self, room: str, values: list[Any], state: dict[str, Any]) -> dict[str, Any]:
        return {"followers": int(values[0] or 0)}

    async def follow(self, room: str, user: str, name: str, on: bool) -> dict[str, Any]:
        following, followers = await self.store.follow(room, user, name, on)
        return {"following": bool(following), "followers": followers}

    def ops(self) -> dict[str, OpHandler]:
        async def follow(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "follow")
            return await self.follow(ctx.room, user, ctx.identity.name, op.args["on"])

        return {"follow": follow}
