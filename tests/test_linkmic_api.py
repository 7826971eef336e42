"""Link-mic without video (media off): the `linkmic` op's checks (guest, closed requests,
duplicates, rate limit, bad action), the host API's auth and validation (JSON errors),
the guest limit, declines, the co-host token minted by `join` (refused by the websocket
and the host API), `state.linkmic` for a late joiner, the events, the stats."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from harness import Client, create_room, host_headers, token
from liveserver.core.auth import AuthError, verify, verify_cohost
from harness import SECRET

pytestmark = pytest.mark.timeout(60)


def api(node, room: str) -> str:
    return f"{node.http}/api/v1/rooms/{room}/linkmic"


async def test_linkmic_op_and_host_api(node, room_name) -> None:
    create_room(node, room_name)
    other = room_name + "o"
    create_room(node, other)
    url = api(node, room_name)
    host = host_headers(room_name)
    fan = await Client.connect(node, room_name, "fan1", name="Fan One", badge="VIP")
    fan2 = await Client.connect(node, room_name, "fan2", name="Fan Two")
    guest = await Client.connect(node, room_name, None)
    try:
        assert fan.state["linkmic"] == {"allow": False, "queue": [], "guests": []}
        # bad input: unknown action, missing action, a guest, closed requests
        for frame in ({"action": "accept"}, {"action": 5}, {}):
            reply = await fan.request("linkmic", **frame)
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
        reply = await guest.request("linkmic", action="request")
        assert reply["error"]["code"] == "unauthorized", reply
        shy = await Client.connect(node, room_name, "shy")
        reply = await shy.request("linkmic", action="request")  # (refused attempts count in the rate limit)
        assert reply["error"]["code"] == "not_started", reply
        await shy.close()

        # host API: auth and validation, all JSON
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.put(url, json={"allow": True})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            r = await http.put(url, json={"allow": True}, headers={"Authorization": f"Bearer {token('fan1')}"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
            r = await http.put(url, json={"allow": True}, headers=host_headers(other))
            assert r.status_code == 403
            r = await http.put(url, json={"allow": "yes"}, headers=host)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
            r = await http.post(url, json={"user": "fan1", "action": "kick"}, headers=host)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
            r = await http.post(url, content=b"{not json", headers={**host, "Content-Type": "application/json"})
            assert r.status_code == 400
            r = await http.post(api(node, "nosuchroom"), json={"user": "fan1", "action": "accept"},
                                headers=host_headers("nosuchroom"))
            assert r.status_code == 404
            r = await http.put(url, json={"allow": True}, headers=host)
            assert r.status_code == 200 and r.json() == {"allow": True}
            await fan.wait_event("linkmic", lambda e: e["phase"] == "open")

            # requests: one each, duplicates refused, events with name and badge
            assert (await fan.request("linkmic", action="request"))["data"] == {"phase": "requested"}
            assert (await fan.request("linkmic", action="request"))["error"]["code"] == "already_claimed"
            assert (await fan2.request("linkmic", action="request"))["ok"]
            ev = await fan2.wait_event("linkmic", lambda e: e["phase"] == "requested" and e["user"] == "fan1")
            assert ev["name"] == "Fan One" and ev["badge"] == "VIP"
            await fan2.wait_state(lambda s: {q["user"] for q in s["linkmic"]["queue"]} == {"fan1", "fan2"})

            # a late joiner loads state.linkmic with the room
            late = await Client.connect(node, room_name, "late")
            assert late.state["linkmic"]["allow"] is True
            assert {q["user"] for q in late.state["linkmic"]["queue"]} == {"fan1", "fan2"}
            await late.close()

            r = await http.post(url, json={"user": "nobody", "action": "accept"}, headers=host)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            r = await http.post(url, json={"user": "fan1", "action": "accept"}, headers=host)
            assert r.status_code == 200 and r.json()["phase"] == "accepted"
            r = await http.post(url, json={"user": "fan1", "action": "accept"}, headers=host)
            assert r.status_code == 409 and r.json()["error"]["code"] == "already_claimed"
            # one guest at a time by default
            r = await http.post(url, json={"user": "fan2", "action": "accept"}, headers=host)
            assert r.status_code == 409 and r.json()["error"]["code"] == "limit_reached"
            # the host declines fan2's request
            r = await http.post(url, json={"user": "fan2", "action": "end"}, headers=host)
            assert r.status_code == 200
            ev = await fan2.wait_event("linkmic", lambda e: e["phase"] == "ended" and e["user"] == "fan2")
            assert ev["reason"] == "declined" and "ms" not in ev

            # join: a co-host token for this room only, refused elsewhere
            reply = await fan.request("linkmic", action="join")
            assert reply["ok"], reply
            cohost = reply["data"]["token"]
            claims = verify_cohost(SECRET, cohost, room_name)
            assert claims.user == "fan1" and claims.jti
            with pytest.raises(AuthError):
                verify_cohost(SECRET, cohost, other)
            with pytest.raises(AuthError):
                verify(SECRET, cohost)  # no websocket, no host API
            r = await http.get(url, headers={"Authorization": f"Bearer {cohost}"})
            assert r.status_code == 401
            ws = await websockets.connect(f"{node.ws}/ws/rooms/{room_name}?token={cohost}", subprotocols=["lc1.json"])
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            # fan2 (not accepted) gets no token
            assert (await fan2.request("linkmic", action="join"))["error"]["code"] == "forbidden"

            # the guest leaves by itself: ended, reason left, counted in the stats
            await asyncio.sleep(0.05)  # a measurable time on camera (ms > 0), not a synchronisation
            reply = await fan.request("linkmic", action="cancel")
            assert reply["data"] == {"phase": "ended"}, reply
            ev = await fan2.wait_event("linkmic", lambda e: e["phase"] == "ended" and e["user"] == "fan1")
            assert ev["reason"] == "left" and ev["ms"] > 0
            await fan2.wait_state(lambda s: s["linkmic"]["guests"] == [] and s["linkmic"]["queue"] == [])
            r = await http.get(url, headers=host)
            body = r.json()
            assert r.status_code == 200 and body["stats"]["count"] == 1 and body["stats"]["ms"] > 0, body
            assert body["max_guests"] == 1 and body["allow"] is True

            # rate limit: request/cancel at most 3 in a burst (then 1 per 5 s)
            codes = []
            for action in ("request", "cancel", "request", "cancel"):
                reply = await fan2.request("linkmic", action=action)
                codes.append("ok" if reply["ok"] else reply["error"]["code"])
            assert codes[-1] == "rate_limited" and "rate_limited" not in codes[:2], codes

            # closing requests
            r = await http.put(url, json={"allow": False}, headers=host)
            assert r.status_code == 200
            await fan.wait_state(lambda s: s["linkmic"]["allow"] is False)
            # the openapi document lists the routes
            doc = (await http.get(f"{node.http}/api/v1/openapi.json")).json()
            assert {"get", "put", "post"} <= set(doc["paths"]["/api/v1/rooms/{room}/linkmic"])
    finally:
        for c in (fan, fan2, guest):
            await c.close()
