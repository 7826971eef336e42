"""Viewer ops of commerce: buy, claim, enter, vote, click, and keyword lottery entry."""

from __future__ import annotations

import logging
from typing import Any

from protocol import ClientOp, ErrorCode

from ..errors import OpError
from ..session import OpHandler, ViewerSession
from .state import CommerceState
from .store import CommerceEngine

log = logging.getLogger("liveserver.commerce")


def _signed_in(session: ViewerSession, what: str) -> str:
    if session.viewer.identity.is_guest:
        raise OpError(ErrorCode.UNAUTHORIZED, f"sign in to {what}")
    return session.user


def handlers(store: CommerceEngine, state: CommerceState) -> dict[str, OpHandler]:
    async def buy(session: ViewerSession, op: ClientOp) -> dict[str, Any]:
        user = _signed_in(session, "buy")
        return await store.buy(session.room, op.args["sale"], user, op.args["qty"], op.args["key"])

    async def claim(session: ViewerSession, op: ClientOp) -> dict[str, Any]:
        user = _signed_in(session, "claim coupons")
        return await store.claim(session.room, op.args["coupon"], user)

    async def enter(session: ViewerSession, op: ClientOp) -> dict[str, Any]:
        user = _signed_in(session, "enter the lottery")
        return await store.enter(session.room, op.args["lottery"], user)

    async def vote(session: ViewerSession, op: ClientOp) -> dict[str, Any]:
        user = _signed_in(session, "vote")
        return await store.vote(session.room, op.args["poll"], user, op.args["option"])

    async def click(session: ViewerSession, op: ClientOp) -> dict[str, Any]:
        await store.click(session.room, op.args["product"])
        return {}

    async def after_danmaku(session: ViewerSession, op: ClientOp) -> dict[str, Any]:
        """A danmaku containing a live lottery's keyword enters that lottery."""
        text = op.args["text"].lower()
        entered = []
        for lottery_id, keyword in state.live_keywords(session.room):
            if keyword.lower() in text:
                try:
                    await store.enter(session.room, lottery_id, session.user)
                    entered.append(lottery_id)
                except OpError:
                    pass  # closed meanwhile: the danmaku itself still went out
        return {"entered": entered}

    return {"buy": buy, "claim": claim, "enter": enter, "vote": vote, "click": click, "_after_danmaku": after_danmaku}
