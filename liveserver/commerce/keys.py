"""Key names of commerce objects. Every key carries the `{room}` hash tag; the room of an
object is the part of its id before the first '.' (room names never contain '.')."""

from __future__ import annotations

from ..keys import RoomKeys, valid_room

JOBS_DUE = "lc:{jobs}:due"
JOBS_LEASE = "lc:{jobs}:lease"
SWEEP_ROOMS = "lc:{jobs}:sweep-rooms"  # rooms that may have unpaid orders


def room_of(object_id: str) -> str | None:
    room, dot, rest = object_id.partition(".")
    if not dot or not rest or not valid_room(room):
        return None
    return room


def user_rooms(user: str) -> str:
    """Set of rooms where a user holds coupons (lists a user's wallet across rooms)."""
    return f"lc:user:{{{user}}}:coupon-rooms"


class CommerceKeys(RoomKeys):
    __slots__ = ()

    def seq(self) -> str:
        return self.sub("seq")

    def index(self, kind: str) -> str:  # zset id -> created ms, kind = sales|coupons|lotteries|polls
        return self.sub(kind)

    def sale(self, sale: str) -> str:
        return self.sub(f"sale:{sale}")

    def sale_users(self, sale: str) -> str:
        return self.sub(f"sale:{sale}:users")

    def sale_keys(self, sale: str) -> str:
        return self.sub(f"sale:{sale}:keys")

    def order_data(self) -> str:
        return self.sub("orderdata")

    def deadlines(self) -> str:
        return self.sub("deadlines")

    def buy_keys(self, sale: str) -> list[str]:
        """KEYS of buy.lua, in its order."""
        return [self.sale(sale), self.sale_users(sale), self.sale_keys(sale), self.order_data(), self.deadlines(),
                self.orders, self.seq(), self.events, self.meta]

    def coupon(self, coupon: str) -> str:
        return self.sub(f"coupon:{coupon}")

    def coupon_users(self, coupon: str) -> str:
        return self.sub(f"coupon:{coupon}:users")

    def claims(self, user: str) -> str:
        return self.sub(f"claims:{user}")

    def lottery(self, lottery: str) -> str:
        return self.sub(f"lottery:{lottery}")

    def entrants(self, lottery: str) -> str:
        return self.sub(f"lottery:{lottery}:entrants")

    def poll(self, poll: str) -> str:
        return self.sub(f"poll:{poll}")

    def voters(self, poll: str) -> str:
        return self.sub(f"poll:{poll}:voters")

    def tallies(self, poll: str) -> str:
        return self.sub(f"poll:{poll}:tallies")

    def clicks(self) -> str:
        return self.sub("clicks")
