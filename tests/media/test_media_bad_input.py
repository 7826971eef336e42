"""Bad WHIP/WHEP requests get their status, and the live in progress is untouched."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness import Client, create_room, token
from mediakit import new_pc, offer_sdp, publish, watch

pytestmark = pytest.mark.timeout(180)


async def _audio_only_offer() -> str:
    pc = new_pc()
    pc.addTransceiver("audio", direction="sendonly")
    try:
        return await offer_sdp(pc)
    finally:
        await pc.close()


async def test_bad_requests_leave_the_live_alone(media_node, room_name) -> None:
    node = media_node
    create_room(node, room_name)
    whip = f"{node.http}/api/v1/rooms/{room_name}/whip"
    whep = f"{node.http}/api/v1/rooms/{room_name}/whep"
    host = token("host-1", "host", room=room_name)
    sdp_type = {"Content-Type": "application/sdp"}

    async with httpx.AsyncClient(timeout=30) as http:
        # Before the live: WHEP 409 + Retry-After; OPTIONS advertises SDP and CORS.
        r = await http.post(whep, content="v=0\r\n", headers=sdp_type)
        assert r.status_code == 409 and int(r.headers["retry-after"]) > 0
        r = await http.options(whip)
        assert r.status_code == 200 and r.headers["accept-post"] == "application/sdp"
        assert r.headers["access-control-allow-origin"] == "*"
        assert "Location" in r.headers["access-control-expose-headers"]

    viewer_ws = await Client.connect(node, room_name, "v1")
    pub = await publish(whip, host)
    try:
        await viewer_ws.wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)
        audio_only = await _audio_only_offer()
        good_offer = pub.pc.localDescription.sdp
        other_host = token("host-2", "host", room=room_name + "x")
        cases = [
            ("no token", {**sdp_type}, good_offer, 401),
            ("bad token", {**sdp_type, "Authorization": "Bearer nope"}, good_offer, 401),
            ("host of another room", {**sdp_type, "Authorization": f"Bearer {other_host}"}, good_offer, 403),
            ("viewer token", {**sdp_type, "Authorization": f"Bearer {token('v2')}"}, good_offer, 403),
            ("wrong content type", {"Content-Type": "application/json", "Authorization": f"Bearer {host}"}, good_offer, 415),
            ("garbage SDP", {**sdp_type, "Authorization": f"Bearer {host}"}, "hello, not sdp", 400),
            ("SDP with no media", {**sdp_type, "Authorization": f"Bearer {host}"}, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400),
            ("offer with no video", {**sdp_type, "Authorization": f"Bearer {host}"}, audio_only, 400),
            ("second publisher", {**sdp_type, "Authorization": f"Bearer {host}"}, good_offer, 409),
        ]
        async with httpx.AsyncClient(timeout=30) as http:
            for name, headers, body, status in cases:
                r = await http.post(whip, content=body, headers=headers)
                assert r.status_code == status, (name, r.status_code, r.text)
                assert r.json()["error"]["code"], name
            unknown = pub.location.rsplit("/", 1)[0] + "/not-a-session"
            r = await http.delete(unknown)
            assert r.status_code == 404
            r = await http.delete(f"{node.http}/api/v1/rooms/{room_name}/whip/not-a-session")
            assert r.status_code == 404
            r = await http.patch(pub.location, content="a=end-of-candidates", headers={"Content-Type": "application/trickle-ice-sdpfrag"})
            assert r.status_code == 405
            r = await http.post(whep, content="garbage", headers=sdp_type)
            assert r.status_code == 400
            r = await http.post(whep, content="v=0\r\n", headers={**sdp_type, "Authorization": "Bearer nope"})
            assert r.status_code == 401

        # The live went on: still live, and a new WHEP viewer (a guest) gets frames.
        assert viewer_ws.state["media"]["live"] is True
        viewer = await watch(whep, None, want=30)
        try:
            await asyncio.wait_for(viewer.got.wait(), 40)
            assert viewer.sizes == {(640, 360)}
        finally:
            await viewer.close()
        assert pub.pc.connectionState == "connected"
    finally:
        async with httpx.AsyncClient(timeout=30) as http:
            await http.delete(pub.location)
        await pub.close()
        await viewer_ws.close()
