"""Group buys (拼团): a host creates a group deal; viewers open teams or join one
(group_join.lua, one unit reserved per join); a team that fills within its window completes
(every member's order confirmed at the group price); one that does not fails and its units
go back to stock exactly once (group_close.lua, from every node's sweeper)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from protocol import ClientOp, ErrorCode

from liveserver.commerce.common import host_of, in_room, ints, job, now_ms, room_product, signed_in, window_phase
from liveserver.commerce.kind import CommerceKind, JobAction, Objects
from liveserver.commerce.sales import DURATION, PRICE
from liveserver.core.errors import OpError
from liveserver.core.http_api import API, ID, Call, obj, require_room
from liveserver.core.ops import OpContext, OpHandler, OrderEntryHandler
from liveserver.engine.commerce_keys import CommerceKeys
from liveserver.engine.commerce_store import Read
from liveserver.webhooks.events import emit

INT_FIELDS = ("price", "size", "initial", "stock", "open_units", "sold", "failed", "teams_open", "teams_done",
              "teams_failed", "per_user_limit", "team_window_ms", "start_ms", "end_ms", "created_ms", "tseq")
GROUP = obj(
    ["product_id", "price", "size", "stock", "team_window_s", "duration_s"],
    product_id=ID,
    price=PRICE,
    size={"type": "integer", "minimum": 2, "maximum": 100},
    stock={"type": "integer", "minimum": 1, "maximum": 10**7},
    per_user_limit={"type": "integer", "minimum": 1, "maximum": 1000},
    team_window_s={"type": "integer", "minimum": 1, "maximum": 7 * 86400},
    duration_s=DURATION,
)
JOIN_MESSAGES = {
    "not_found": "no such group deal or team",
    "not_started": "the group deal has not started",
    "ended": "the group deal or this team has ended",
    "sold_out": "no units left",
    "limit_reached": "you are already in as many teams of this deal as allowed",
    "already_claimed": "you are already in this team",
}
REASONS = {"team_full": "this team is full", "no_team": "no such team", "in_team": "you are already in this team"}
STATE_TEAMS = 20  # open teams per deal carried in room state (the newest); counts cover the rest
STATE_FIELDS = ("title", "image", "price", "size", "initial", "stock", "teams_open", "start_ms", "end_ms", "phase",
                "product_id", "team_window_ms")


def group_view(group: dict[str, Any], now: int | None = None) -> dict[str, Any]:
    keep = ("id", "room", "product_id", "title", "image", "price", "size", "initial", "stock", "open_units", "sold",
            "failed", "teams_open", "teams_done", "teams_failed", "per_user_limit", "team_window_ms", "start_ms",
            "end_ms")
    view = {k: group[k] for k in keep if k in group}
    view["phase"] = window_phase(group, now if now is not None else now_ms())
    return view


def team_of(team_id: str) -> str:
    """The group id of a team id `<room>.g<N>.t<M>`."""
    return team_id.rpartition(".t")[0]


class Groups(CommerceKind):
    name = "groups"
    event = "group"
    key_segment = "group"
    extras = (("hgetall", ":teams"),)

    # -- state -----------------------------------------------------------------------------
    def loaded(self, fields: dict[str, str], extras: list[Any]) -> dict[str, Any] | None:
        view = group_view(ints(fields, INT_FIELDS))
        teams = [json.loads(v) for v in extras[0].values()]
        view["teams"] = {t["id"]: {"members": [m["name"] for m in t["members"]], "deadline_ms": t["deadline_ms"]}
                         for t in sorted(teams, key=lambda t: t["created_ms"]) if t["status"] == "open"}
        return view

    def apply(self, objects: Objects, event: Any) -> dict[str, Any]:
        update = event.get("group")
        if not isinstance(update, dict) or "id" not in update:
            return {}
        group = objects.setdefault(update["id"], {})
        team, phase = update.get("team"), update.get("phase")
        if team is None:  # the deal itself (opened, ended)
            group.update(update)
            group.setdefault("teams", {})
            return {}
        for k in ("stock", "teams_open"):
            if k in update:
                group[k] = update[k]
        teams = group.setdefault("teams", {})
        if phase == "team":
            teams[team] = {"members": update.get("members", []), "deadline_ms": update.get("deadline_ms")}
        else:  # completed | failed: the team is no longer forming
            teams.pop(team, None)
        return {}

    def reads(self, room: str, object_id: str, obj: dict[str, Any], now: int) -> list[Read]:
        if now < obj.get("end_ms", 0) + 1000 or obj.get("teams"):
            key = CommerceKeys(room).group(object_id)
            return [Read("hget", key, "stock"), Read("hget", key, "teams_open")]
        return []

    def absorb(self, obj: dict[str, Any], values: list[Any]) -> None:
        if values[0] is not None:
            obj["stock"] = int(values[0])
        if values[1] is not None:
            obj["teams_open"] = int(values[1])

    def advance(self, obj: dict[str, Any], now: int) -> None:
        if "start_ms" in obj:
            obj["phase"] = window_phase(obj, now)
        teams = obj.get("teams") or {}
        for team_id in [t for t, v in teams.items() if (v.get("deadline_ms") or 0) + 5000 < now]:
            del teams[team_id]  # its window is over; the sweeper's `failed` event may still be on its way

    def state(self, objects: Objects) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, g in objects.items():
            if "start_ms" not in g:
                continue
            view = {k: g.get(k) for k in STATE_FIELDS}
            teams = g.get("teams") or {}
            view["teams"] = dict(list(teams.items())[-STATE_TEAMS:])
            out[i] = view
        return {"groups": out}

    # -- commands ----------------------------------------------------------------------------
    async def create(self, room: str, product_id: str, price: int, size: int, stock: int, per_user_limit: int,
                     team_window_s: int, duration_s: int) -> dict[str, Any]:
        product = await room_product(self.store.rooms, room, product_id)
        group_id = await self.store.new_id(room, "group", "g")
        created = now_ms()
        group = {
            "id": group_id, "room": room, "product_id": product_id, "title": product["title"],
            "image": product.get("image", ""), "price": price, "size": size, "initial": stock, "stock": stock,
            "open_units": 0, "sold": 0, "failed": 0, "teams_open": 0, "teams_done": 0, "teams_failed": 0, "tseq": 0,
            "per_user_limit": per_user_limit, "team_window_ms": team_window_s * 1000, "start_ms": created,
            "end_ms": created + duration_s * 1000, "created_ms": created,
        }
        keys = CommerceKeys(room)
        await self.store.save_new(keys.group(group_id), keys.index(self.name), group,
                                  {job("group_end", room, group_id): group["end_ms"]}, sweep_room=room)
        view = group_view(group, created)
        await self.store.rooms.publish(room, "group", {"group": {**view, "phase": "open"}})
        view["teams"] = {}
        return view

    async def group(self, group_id: str) -> dict[str, Any]:
        return await self.load(group_id, INT_FIELDS, "group deal")

    async def announce_end(self, group_id: str) -> None:
        group = await self.group(group_id)
        keys = CommerceKeys(group["room"])
        await self.store.rooms.publish(group["room"], "group", {"group": {**group_view(group), "phase": "ended"}},
                                       once=(keys.group(group_id), "ev_ended"))

    async def join(self, room: str, group_id: str, user: str, name: str, key: str, team: str = "") -> dict[str, Any]:
        in_room(group_id, room, "group deal")
        if team and team_of(team) != group_id:
            raise OpError(ErrorCode.NOT_FOUND, f"no team {team!r} in this group deal")
        reply = await self.store.group_join(room, group_id, user, name, key, team)
        if not reply.pop("ok"):
            code = reply.pop("code")
            reason = reply.get("reason")
            raise OpError(ErrorCode(code), REASONS.get(reason, JOIN_MESSAGES[code]), **reply)
        if reply.get("status") == "completed":
            # The join that filled the team, or its retry with the same key (the first reply
            # again): the event id makes it one event.
            await self.team_webhook(room, group_id, reply["team"], "completed")
        return reply

    async def team_webhook(self, room: str, group_id: str, team_id: str, outcome: str) -> None:
        """`group.completed` / `group.failed` for one team (event id `<team>.<outcome>`)."""
        team = await self.store.team(room, group_id, team_id)
        if team is None or team.get("status") != outcome:
            return
        group = await self.group(group_id)
        data = {"group": group_id, "team": team_id, "product_id": group.get("product_id"), "title": group.get("title"),
                "price": group.get("price"), "size": team.get("size", group.get("size")),
                "deadline_ms": team.get("deadline_ms"), "members": team.get("members", [])}
        await emit(self.store.rooms.webhooks, f"group.{outcome}", room, data, f"{team_id}.{outcome}")

    def order_entry_handlers(self) -> dict[str, OrderEntryHandler]:
        """The durable path of `group.completed` / `group.failed`: the scripts that confirm or
        fail a team write one orders-stream entry per member in the same step, and the relay
        emits the team's event from it before acknowledging. The direct emits (in `join`,
        `sweep`) only make it prompt; the event id makes both one event."""

        async def confirmed(room: str, fields: dict[str, str]) -> None:
            await self.team_webhook(room, fields.get("group", ""), fields.get("team", ""), "completed")

        async def failed(room: str, fields: dict[str, str]) -> None:
            await self.team_webhook(room, fields.get("group", ""), fields.get("team", ""), "failed")

        return {"group_confirmed": confirmed, "group_failed": failed}

    async def sweep(self) -> int:
        """Fail teams whose window ended unfilled; returns how many this call failed."""
        failed = 0
        now = now_ms()
        for room in await self.store.sweep_rooms():
            due = await self.store.due_teams(room, now)
            if due:
                results = await asyncio.gather(*(self.store.close_team(room, team_of(t), t) for t in due))
                failed += sum(results)
                for team_id, done in zip(due, results):
                    if done:  # only the sweeper that failed the team emits
                        await self.team_webhook(room, team_of(team_id), team_id, "failed")
        return failed

    async def audit(self, group_id: str) -> dict[str, Any]:
        """Check a group deal's invariants against its teams, orders and the orders stream."""
        group = await self.group(group_id)
        room = group["room"]
        teams = await self.store.teams(room, group_id)
        orders = {o["id"]: o for o in await self.store.orders(room, keep=lambda o: o.get("group") == group_id)}
        streamed = await self.store.order_stream_group_types(room, group_id)
        holders = {u: int(n) for u, n in (await self.store.big_hash(CommerceKeys(room).group_users(group_id))).items()}
        problems: list[str] = []
        units = {"open": 0, "completed": 0, "failed": 0}
        per_user: dict[str, int] = {}
        want_order = {"open": "pending", "completed": "confirmed", "failed": "failed"}
        want_stream = {"open": ["group_pending"], "completed": ["group_pending", "group_confirmed"],
                       "failed": ["group_pending", "group_failed"]}
        for t in teams:
            n = len(t["members"])
            units[t["status"]] = units.get(t["status"], 0) + n
            if n > group["size"]:
                problems.append(f"team {t['id']} has {n} members > size {group['size']}")
            if t["status"] == "completed" and n != group["size"]:
                problems.append(f"team {t['id']} completed with {n} members")
            if len({m["user"] for m in t["members"]}) != n:
                problems.append(f"team {t['id']} lists a member twice")
            for m in t["members"]:
                o = orders.get(m["order"])
                if o is None or o["status"] != want_order[t["status"]]:
                    problems.append(f"team {t['id']} is {t['status']} but order {m['order']} is "
                                    f"{o['status'] if o else 'missing'}")
                if streamed.get(m["order"]) != want_stream[t["status"]]:
                    problems.append(f"order {m['order']}: stream has {streamed.get(m['order'])}, "
                                    f"want {want_stream[t['status']]} (each exactly once)")
                if t["status"] != "failed":
                    per_user[m["user"]] = per_user.get(m["user"], 0) + 1
        if sum(units.values()) != len(orders):
            problems.append(f"{len(orders)} orders but {sum(units.values())} team seats")
        initial, stock = group["initial"], group["stock"]
        if stock < 0:
            problems.append(f"stock is negative: {stock}")
        if stock + group["open_units"] + group["sold"] != initial:
            problems.append(f"stock {stock} + open {group['open_units']} + sold {group['sold']} != initial {initial}")
        if (units["open"], units["completed"], units["failed"]) != (group["open_units"], group["sold"], group["failed"]):
            problems.append(f"teams say open {units['open']} sold {units['completed']} failed {units['failed']}, "
                            f"counters say {group['open_units']} {group['sold']} {group['failed']}")
        for user, n in per_user.items():
            if n > group["per_user_limit"] or holders.get(user, 0) != n:
                problems.append(f"user {user}: in {n} teams, holder count {holders.get(user, 0)}, "
                                f"limit {group['per_user_limit']}")
        return {
            "ok": not problems, "group": group_id, "initial": initial, "stock": stock, "open_units": group["open_units"],
            "sold": group["sold"], "failed": group["failed"], "teams": len(teams),
            "teams_open": sum(1 for t in teams if t["status"] == "open"),
            "teams_completed": sum(1 for t in teams if t["status"] == "completed"),
            "teams_failed": sum(1 for t in teams if t["status"] == "failed"), "problems": problems,
        }

    # -- what it serves ------------------------------------------------------------------------
    def ops(self) -> dict[str, OpHandler]:
        async def group_join(ctx: OpContext, op: ClientOp) -> dict[str, Any]:
            user = signed_in(ctx, "join a group buy")
            return await self.join(ctx.room, op.args["group"], user, ctx.identity.name, op.args["key"],
                                   op.args.get("team", ""))

        return {"group_join": group_join}

    def jobs(self) -> dict[str, JobAction]:
        return {"group_end": self.announce_end}


def _groups(call: Call) -> Groups:
    return call.services.commerce.kind(Groups)


@API.add("POST", "/rooms/{room}/groups", "Create a group-buy deal", body=GROUP, status=201, tag="commerce")
async def post_group(call: Call) -> dict[str, Any]:
    room = await require_room(call)
    b = call.body
    group = await _groups(call).create(room, b["product_id"], b["price"], b["size"], b["stock"],
                                       b.get("per_user_limit", 1), b["team_window_s"], b["duration_s"])
    return {"group": group}


@API.add("GET", "/groups/{group}", "Read a group deal and its teams", tag="commerce")
async def get_group(call: Call) -> dict[str, Any]:
    host_of(call, call.params["group"])
    kind = _groups(call)
    group = await kind.group(call.params["group"])
    teams = await kind.store.teams(group["room"], group["id"])
    return {"group": group_view(group), "teams": sorted(teams, key=lambda t: t["created_ms"])}


@API.add("GET", "/groups/{group}/audit", "Check the invariants of a group deal", tag="commerce")
async def get_group_audit(call: Call) -> dict[str, Any]:
    host_of(call, call.params["group"])
    return await _groups(call).audit(call.params["group"])
