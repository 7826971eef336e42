"""Link-mic end to end, real peers: the host publishes solid red through WHIP, a viewer
asks to join, the host accepts through the API, the viewer gets its co-host token from
the `join` reply and publishes solid blue with it; a WHEP viewer decodes the program and
finds red where the host is and blue in the guest's picture-in-picture (bottom right).
`end` -> only red again within 3 s; the co-host token is refused after `end`, for another
room and after expiry; events, state.linkmic and stats follow."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiortc import RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

from harness import SECRET, Client, create_room, host_headers, token
from liveserver.core.auth import mint_cohost
from mediakit import h264_only, new_pc, offer_sdp, sdp_headers
from waiting import wait_until

pytestmark = pytest.mark.timeout(180)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def near(pixel: Any, rgb: tuple[int, int, int], tol: int = 60) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(pixel, rgb))


async def publish_colour(url: str, bearer: str, colour: str, size: str = "640x360",
                         tone_hz: int = 0) -> tuple[Any, httpx.Response]:
    pc = new_pc()
    player = MediaPlayer(f"color=c={colour}:size={size}:rate=30", format="lavfi")
    h264_only(pc.addTransceiver(player.video, direction="sendonly"))
    if tone_hz:
        tone = MediaPlayer(f"sine=frequency={tone_hz}:sample_rate=48000", format="lavfi")
        pc.addTransceiver(tone.audio, direction="sendonly")
    sdp = await offer_sdp(pc)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(url, content=sdp, headers=sdp_headers(bearer))
    if r.status_code != 201:
        await pc.close()
        player.video.stop()
        return None, r
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return pc, r


async def offer_only(url: str, bearer: str) -> httpx.Response:
    """A WHIP POST that is expected to be refused (the offer is valid)."""
    pc = new_pc()
    player = MediaPlayer("color=c=green:size=320x180:rate=30", format="lavfi")
    h264_only(pc.addTransceiver(player.video, direction="sendonly"))
    try:
        sdp = await offer_sdp(pc)
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(url, content=sdp, headers=sdp_headers(bearer))
    finally:
        await pc.close()
        player.video.stop()


class Program:
    """A WHEP viewer that keeps the last decoded frame as RGB."""

    def __init__(self) -> None:
        self.pc = new_pc()
        self.last: Any = None
        self.frames = 0
        self.task: asyncio.Task[None] | None = None
        self.audio: list[Any] = []  # the last second of decoded audio, mono float

    async def start(self, url: str, audio: bool = False) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        sdp = await offer_sdp(self.pc)
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(url, content=sdp, headers=sdp_headers(token("watcher")))
        assert r.status_code == 201, r.text

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.task = asyncio.ensure_future(self._read(track))

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))

    async def _read(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                    self.audio = [*self.audio, samples.astype("float64")][-50:]
                    continue
                self.last = frame.to_ndarray(format="rgb24")
                self.frames += 1
        except MediaStreamError:
            pass

    def tones(self, *hz: int) -> list[float]:
        """Strength of each frequency in the last second of audio, relative to the median bin."""
        import numpy as np

        if len(self.audio) < 40:
            return [0.0 for _ in hz]
        x = np.concatenate(self.audio[-40:])
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        freqs = np.fft.rfftfreq(len(x), 1 / 48000)
        floor = float(np.median(spectrum)) + 1e-9
        return [float(spectrum[(freqs > f - 15) & (freqs < f + 15)].max()) / floor for f in hz]

    def regions(self) -> tuple[Any, Any] | None:
        """(host region pixel, guest PiP pixel) of the last frame."""
        if self.last is None:
            return None
        h, w, _ = self.last.shape
        # pip cell of one guest: a quarter-size picture at the bottom right (compose.cells)
        return self.last[h // 3, w // 3], self.last[h - h // 8 - 4, w - w // 8 - 8]

    async def close(self) -> None:
        await self.pc.close()
        if self.task is not None:
            self.task.cancel()


async def test_linkmic_composes_guest_into_program(start_media_node, room_name) -> None:
    node = start_media_node()
    create_room(node, room_name)
    other = room_name + "x"
    create_room(node, other)
    api = f"{node.http}/api/v1/rooms/{room_name}"
    host = host_headers(room_name)
    http = httpx.AsyncClient(timeout=30)
    viewer = await Client.connect(node, room_name, "fan1", name="Fan One")
    watcher = await Client.connect(node, room_name, "fan2")
    host_pc = guest_pc = None
    program = Program()
    try:
        # Requests are closed until the host opens them.
        reply = await viewer.request("linkmic", action="request")
        assert reply["ok"] is False and reply["error"]["code"] == "not_started", reply
        r = await http.put(api + "/linkmic", json={"allow": True}, headers=host)
        assert r.status_code == 200 and r.json() == {"allow": True}, r.text
        await viewer.wait_state(lambda s: s.get("linkmic", {}).get("allow") is True)

        host_pc, r = await publish_colour(api + "/whip", token("host", "host", room=room_name), "red")
        assert r.status_code == 201, r.text
        await watcher.wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)

        # A guest token cannot join before being accepted; a guest viewer cannot ask.
        reply = await viewer.request("linkmic", action="join")
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", reply
        reply = await viewer.request("linkmic", action="request")
        assert reply["ok"] is True and reply["data"] == {"phase": "requested"}, reply
        reply = await viewer.request("linkmic", action="request")
        assert reply["error"]["code"] == "already_claimed", reply
        event = await watcher.wait_event("linkmic", lambda e: e.get("phase") == "requested")
        assert event["user"] == "fan1" and event["name"] == "Fan One"
        await watcher.wait_state(lambda s: s["linkmic"]["queue"] == [{"user": "fan1", "name": "Fan One"}])

        # Only a host of this room accepts.
        r = await http.post(api + "/linkmic", json={"user": "fan1", "action": "accept"},
                            headers={"Authorization": f"Bearer {token('fan2')}"})
        assert r.status_code == 403, r.text
        r = await http.post(api + "/linkmic", json={"user": "fan1", "action": "accept"}, headers=host)
        assert r.status_code == 200, r.text
        assert r.json() == {"user": "fan1", "name": "Fan One", "phase": "accepted"}
        await watcher.wait_event("linkmic", lambda e: e.get("phase") == "accepted" and e["user"] == "fan1")
        await watcher.wait_state(lambda s: [g["user"] for g in s["linkmic"]["guests"]] == ["fan1"]
                                 and s["linkmic"]["queue"] == [])

        reply = await viewer.request("linkmic", action="join")
        assert reply["ok"] is True, reply
        cohost = reply["data"]["token"]
        assert reply["data"]["whip"] == f"/api/v1/rooms/{room_name}/whip"
        # The co-host token is no websocket or host-API token.
        r = await http.get(api + "/linkmic", headers={"Authorization": f"Bearer {cohost}"})
        assert r.status_code == 401, r.text
        # ... and not for another room (the signature is fine, the room claim is not).
        r = await offer_only(f"{node.http}/api/v1/rooms/{other}/whip", cohost)
        assert r.status_code == 403, r.text

        guest_pc, r = await publish_colour(api + "/whip", cohost, "blue", "320x240")
        assert r.status_code == 201, r.text
        guest_location = r.headers["location"]
        # Single use: the same token again is refused.
        r = await offer_only(api + "/whip", cohost)
        assert r.status_code == 401, r.text

        await program.start(api + "/whep")

        def both() -> bool:
            got = program.regions()
            return got is not None and near(got[0], RED) and near(got[1], BLUE)

        await wait_until(both, timeout=20, what="red host + blue guest in the decoded program")
        # The program is still the host's size: one encode, the guest drawn in.
        assert program.last.shape[:2] == (360, 640)
        r = await http.get(api + "/media/health", headers=host)
        assert r.status_code == 200 and r.json()["guests"] == [{"user": "fan1", "name": "Fan One"}], r.text
        r = await http.get(node.media + "/metrics")
        assert f'liveserver_media_linkmic_guests{{room="{room_name}"}} 1.0' in r.text

        # The host ends it: only red again within 3 s.
        r = await http.post(api + "/linkmic", json={"user": "fan1", "action": "end"}, headers=host)
        assert r.status_code == 200 and r.json()["phase"] == "ended", r.text
        ended_at = time.monotonic()

        def only_host() -> bool:
            got = program.regions()
            return got is not None and near(got[0], RED) and near(got[1], RED)

        await wait_until(only_host, timeout=3, what="only the host (red) in the program")
        assert time.monotonic() - ended_at <= 3.0
        event = await watcher.wait_event("linkmic", lambda e: e.get("phase") == "ended")
        assert event["user"] == "fan1" and event["reason"] == "ended" and event["ms"] > 0
        # After `end` the token (and a fresh `join`) are refused.
        r = await offer_only(api + "/whip", cohost)
        assert r.status_code == 401, r.text
        reply = await viewer.request("linkmic", action="join")
        assert reply["error"]["code"] == "forbidden", reply
        # An expired co-host token (right room, right signature) is refused.
        expired = mint_cohost(SECRET, "fan1", "Fan One", room_name, "jti-old", -5)
        r = await offer_only(api + "/whip", expired)
        assert r.status_code == 401 and "expired" in r.text, r.text
        # The guest's old WHIP session is gone.
        r = await http.delete(guest_location)
        assert r.status_code == 404, r.text

        r = await http.get(api + "/linkmic", headers=host)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["stats"]["count"] == 1 and body["stats"]["ms"] > 0 and body["guests"] == []
    finally:
        await program.close()
        for pc in (guest_pc, host_pc):
            if pc is not None:
                await pc.close()
        await viewer.close()
        await watcher.close()
        await http.aclose()


async def test_guest_that_drops_leaves_the_picture(start_media_node, room_name) -> None:
    """The guest's connection dies without a DELETE: it is out of the picture within 3 s,
    and the room hears `ended` with reason `dropped` or `left`."""
    node = start_media_node()
    create_room(node, room_name)
    api = f"{node.http}/api/v1/rooms/{room_name}"
    host = host_headers(room_name)
    http = httpx.AsyncClient(timeout=30)
    viewer = await Client.connect(node, room_name, "fan1")
    host_pc = guest_pc = None
    program = Program()
    try:
        await http.put(api + "/linkmic", json={"allow": True}, headers=host)
        host_pc, r = await publish_colour(api + "/whip", token("host", "host", room=room_name), "red")
        assert r.status_code == 201, r.text
        await viewer.wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)
        assert (await viewer.request("linkmic", action="request"))["ok"]
        r = await http.post(api + "/linkmic", json={"user": "fan1", "action": "accept"}, headers=host)
        assert r.status_code == 200, r.text
        cohost = (await viewer.request("linkmic", action="join"))["data"]["token"]
        guest_pc, r = await publish_colour(api + "/whip", cohost, "blue", "320x240")
        assert r.status_code == 201, r.text
        await program.start(api + "/whep")
        await wait_until(lambda: (g := program.regions()) is not None and near(g[1], BLUE), timeout=20,
                         what="the guest in the picture")
        await guest_pc.close()  # no DELETE: the guest just goes away
        guest_pc = None
        gone_at = time.monotonic()
        await wait_until(lambda: (g := program.regions()) is not None and near(g[1], RED), timeout=3,
                         what="the dropped guest out of the picture")
        assert time.monotonic() - gone_at <= 3.0
        event = await viewer.wait_event("linkmic", lambda e: e.get("phase") == "ended", timeout=10)
        assert event["reason"] in ("dropped", "left")
        await viewer.wait_state(lambda s: s["linkmic"]["guests"] == [])
    finally:
        await program.close()
        for pc in (guest_pc, host_pc):
            if pc is not None:
                await pc.close()
        await viewer.close()
        await http.aclose()


async def test_guest_voice_is_mixed_into_the_program(start_media_node, room_name) -> None:
    """Host sings 440 Hz, the guest 1500 Hz: a WHEP viewer hears only 440 before the guest
    joins, both while the guest is on, only 440 again after `end`."""
    node = start_media_node()
    create_room(node, room_name)
    api = f"{node.http}/api/v1/rooms/{room_name}"
    host = host_headers(room_name)
    http = httpx.AsyncClient(timeout=30)
    viewer = await Client.connect(node, room_name, "fan1")
    host_pc = guest_pc = None
    program = Program()
    try:
        await http.put(api + "/linkmic", json={"allow": True}, headers=host)
        host_pc, r = await publish_colour(api + "/whip", token("host", "host", room=room_name), "red", tone_hz=440)
        assert r.status_code == 201, r.text
        await viewer.wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)
        await program.start(api + "/whep", audio=True)
        await wait_until(lambda: (t := program.tones(440, 1500))[0] > 50 and t[1] < 10, timeout=20,
                         what="the host's tone alone")
        assert (await viewer.request("linkmic", action="request"))["ok"]
        r = await http.post(api + "/linkmic", json={"user": "fan1", "action": "accept"}, headers=host)
        assert r.status_code == 200, r.text
        cohost = (await viewer.request("linkmic", action="join"))["data"]["token"]
        guest_pc, r = await publish_colour(api + "/whip", cohost, "blue", "320x240", tone_hz=1500)
        assert r.status_code == 201, r.text
        await wait_until(lambda: (t := program.tones(440, 1500))[0] > 50 and t[1] > 50, timeout=20,
                         what="both tones in the program audio")
        r = await http.post(api + "/linkmic", json={"user": "fan1", "action": "end"}, headers=host)
        assert r.status_code == 200, r.text
        await wait_until(lambda: (t := program.tones(440, 1500))[0] > 50 and t[1] < 10, timeout=5,
                         what="the host's tone alone again")
    finally:
        await program.close()
        for pc in (guest_pc, host_pc):
            if pc is not None:
                await pc.close()
        await viewer.close()
        await http.aclose()


async def test_two_guests_in_a_grid(start_media_node, room_name) -> None:
    """LIVESERVER_LINKMIC_MAX_GUESTS=2, layout grid: host red top left, the guests (blue,
    green) in the next cells; a third accept is refused."""
    node = start_media_node(LIVESERVER_LINKMIC_MAX_GUESTS="2", LIVESERVER_MEDIA_LINKMIC_LAYOUT="grid")
    create_room(node, room_name)
    api = f"{node.http}/api/v1/rooms/{room_name}"
    host = host_headers(room_name)
    http = httpx.AsyncClient(timeout=30)
    fans = [await Client.connect(node, room_name, f"fan{i}") for i in range(3)]
    pcs: list[Any] = []
    program = Program()
    try:
        await http.put(api + "/linkmic", json={"allow": True}, headers=host)
        pc, r = await publish_colour(api + "/whip", token("host", "host", room=room_name), "red")
        assert r.status_code == 201, r.text
        pcs.append(pc)
        await fans[0].wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)
        for fan in fans:
            assert (await fan.request("linkmic", action="request"))["ok"]
        for fan, colour in zip(fans[:2], ("blue", "green")):
            r = await http.post(api + "/linkmic", json={"user": fan.welcome["user"]["id"], "action": "accept"}, headers=host)
            assert r.status_code == 200, r.text
            cohost = (await fan.request("linkmic", action="join"))["data"]["token"]
            pc, r = await publish_colour(api + "/whip", cohost, colour, "320x240")
            assert r.status_code == 201, r.text
            pcs.append(pc)
        r = await http.post(api + "/linkmic", json={"user": "fan2", "action": "accept"}, headers=host)
        assert r.status_code == 409 and r.json()["error"]["code"] == "limit_reached", r.text
        await program.start(api + "/whep")

        def grid() -> bool:
            if program.last is None:
                return False
            h, w, _ = program.last.shape
            px = program.last
            return (near(px[h // 4, w // 4], RED) and near(px[h // 4, 3 * w // 4], BLUE)
                    and near(px[3 * h // 4, w // 4], (0, 128, 0), tol=70))

        await wait_until(grid, timeout=20, what="red, blue and green cells in the program")
    finally:
        await program.close()
        for pc in pcs:
            await pc.close()
        for fan in fans:
            await fan.close()
        await http.aclose()
