"""Key names of commerce objects. Every key carries the `{room}` hash tag; the room of an
object is the part of its id before the first '.' (room names never contain '.')."""

from __future__ import annotations

from dataclasses import dataclass

from liveserver.engine.keys import Layout, RoomKeys, valid_room

JOBS_DUE = "lc:{jobs}:due"
JOBS_LEASE = "lc:{jobs}:lease"
SWEEP_ROOMS = "lc:{jobs}:sweep-rooms"  # rooms that may have unpaid orders
SHOP_MERCHANTS = "lc:{shop}:merchants"  # merchants with shop-wide coupons (the hold sweeper visits them)


@dataclass(frozen=True, slots=True)
class JobKeys:
    """The job schedule of one bucket (see `Layout`): one Redis has the single bucket
    `lc:{jobs}:*`; a Cluster has `lc:{jobs:N}:*`, N = the bucket of the job's room."""

    due: str
    lease: str
    sweep_rooms: str

    @classmethod
    def of_bucket(cls, layout: Layout, bucket: int) -> "JobKeys":
        if not layout.cluster:
            return cls(JOBS_DUE, JOBS_LEASE, SWEEP_ROOMS)
        tag = f"lc:{{jobs:{bucket}}}"
        return cls(f"{tag}:due", f"{tag}:lease", f"{tag}:sweep-rooms")

    @classmethod
    def of_room(cls, layout: Layout, room: str) -> "JobKeys":
        return cls.of_bucket(layout, layout.bucket(room))

    @classmethod
    def all(cls, layout: Layout) -> list["JobKeys"]:
        return [cls.of_bucket(layout, b) for b in range(layout.buckets)]


def room_of(object_id: str) -> str | None:
    room, dot, rest = object_id.partition(".")
    if not dot or not rest or not valid_room(room):
        return None
    return room


def user_rooms(user: str) -> str:
    """Set of rooms where a user holds coupons (lists a user's wallet across rooms)."""
    return f"lc:user:{{{user}}}:coupon-rooms"


def user_merchants(user: str) -> str:
    """Set of merchants whose shop-wide coupons a user holds (lists the wallet)."""
    return f"lc:user:{{{user}}}:shop-merchants"


class MerchantKeys:
    """Keys of a merchant's shop-wide coupons: all in the merchant's slot `{m:<merchant>}`."""

    __slots__ = ("merchant",)

    def __init__(self, merchant: str) -> None:
        self.merchant = merchant

    def _k(self, suffix: str) -> str:
        return f"lc:{{m:{self.merchant}}}:{suffix}"

    def wallet(self, user: str) -> str:  # hash coupon id -> entry (count, used, orders, holds)
        return self._k(f"wallet:{user}")

    def holds(self) -> str:  # zset "<user> <coupon> <hold>" -> deadline ms
        return self._k("holds")

    def seq(self) -> str:
        return self._k("seq")


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

    def prize_claims(self, lottery: str) -> str:  # hash winner -> shipping claim JSON
        return self.sub(f"lottery:{lottery}:claims")

    def poll(self, poll: str) -> str:
        return self.sub(f"poll:{poll}")

    def voters(self, poll: str) -> str:
        return self.sub(f"poll:{poll}:voters")

    def tallies(self, poll: str) -> str:
        return self.sub(f"poll:{poll}:tallies")

    def group(self, group: str) -> str:
        return self.sub(f"group:{group}")

    def group_teams(self, group: str) -> str:
        return self.sub(f"group:{group}:teams")

    def group_users(self, group: str) -> str:
        return self.sub(f"group:{group}:users")

    def group_keys(self, group: str) -> str:
        return self.sub(f"group:{group}:keys")

    def group_deadlines(self) -> str:  # zset open team id -> window end ms, every group of the room
        return self.sub("group-deadlines")

    def group_join_keys(self, group: str) -> list[str]:
        """KEYS of group_join.lua, in its order."""
        return [self.group(group), self.group_teams(group), self.group_users(group), self.group_keys(group),
                self.group_deadlines(), self.order_data(), self.orders, self.seq(), self.events, self.meta]

    def followers(self) -> str:  # set of users following the room('s host)
        return self.sub("followers")

    def invite(self) -> str:  # hash: the room's invite coupon
        return self.sub("invite")

    def seen(self) -> str:  # set: users who have been in the room
        return self.sub("seen")

    def invitees(self) -> str:  # hash invitee -> inviter
        return self.sub("invitees")

    def inviters(self) -> str:  # hash inviter -> invite coupons earned
        return self.sub("inviters")

    def merchant(self) -> str:  # string: the merchant whose shop-wide coupons this room takes
        return self.sub("merchant")

    def shop_holds(self) -> str:  # hash hold id -> order id | "void"
        return self.sub("shop-holds")

    def shop_returns(self) -> str:  # zset expired order id -> ms (shop coupon use to give back)
        return self.sub("shop-returns")

    def watch(self) -> str:  # hash user -> ms watched in ended sessions (all nodes)
        return self.sub("watch")

    def clicks(self) -> str:
        return self.sub("clicks")
