"""A real live: an aiortc client publishes testsrc through WHIP on one node; an aiortc
WHEP viewer decodes it; the HLS playlist and segments decode with PyAV; a viewer
websocket on the OTHER node sees `state.media` go live and then offline."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness import Client, create_room, host_headers, token
from mediakit import decode_segment, publish, segment_audio, watch

pytestmark = pytest.mark.timeout(180)


async def test_whip_to_whep_and_hls_across_two_nodes(start_media_node, room_name) -> None:
    a = start_media_node()
    b = start_media_node()
    create_room(a, room_name)
    viewer_ws = await Client.connect(a, room_name, "v1")
    assert viewer_ws.state["media"]["live"] is False

    host = token("host-1", "host", room=room_name)
    pub = await publish(f"{b.http}/api/v1/rooms/{room_name}/whip", host)
    try:
        assert pub.response.status_code == 201
        assert pub.response.headers["content-type"].startswith("application/sdp")
        assert "a=candidate:" in pub.response.text  # every server candidate is in the answer
        assert pub.location.startswith(b.media + f"/api/v1/rooms/{room_name}/whip/")
        assert len(pub.location.rsplit("/", 1)[1]) >= 24  # unguessable

        # Node A's viewer learns that the room is live (the publisher went through B).
        state = await viewer_ws.wait_state(lambda s: s.get("media", {}).get("live"), timeout=30)
        media = state["media"]
        assert (media["width"], media["height"]) == (640, 360)
        assert media["whep"] and media["hls"] and media["poster"]
        assert any(e["k"] == "media" for e in viewer_ws.events)

        # WHEP through node A: A passes the offer to B's media process, which owns the room.
        viewer = await watch(f"{a.http}/api/v1/rooms/{room_name}/whep", token("v1"), want=60, audio=True)
        try:
            assert viewer.response.headers["location"].startswith(b.media + f"/api/v1/rooms/{room_name}/whep/")
            await asyncio.wait_for(viewer.got.wait(), 40)
            # >= 60 decoded frames within 5 s of the first one.
            assert viewer.first_frame_at is not None
            assert viewer.frames >= 60
            assert asyncio.get_running_loop().time() - viewer.first_frame_at <= 5.0 + 0.5, "frames came too slowly"
            assert viewer.sizes == {(640, 360)}
            assert viewer.audio_frames > 50  # the publisher's sine, decoded once, Opus-encoded once
        finally:
            await viewer.close()

        # HLS: the playlist (node A redirects to the owner), and a segment that decodes to the same size.
        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as http:
            pl = await http.get(f"{a.http}/media/{room_name}/live.m3u8")
            assert pl.history and pl.history[0].status_code == 307
            assert pl.status_code == 200, pl.text
            assert pl.headers["content-type"].startswith("application/vnd.apple.mpegurl")
            assert "no-cache" in pl.headers["cache-control"]
            segments = [line for line in pl.text.splitlines() if line and not line.startswith("#")]
            assert segments, pl.text
            seg = await http.get(str(pl.url.join(segments[0])))
            assert seg.status_code == 200
            assert seg.headers["content-type"] == "video/mp2t"
            assert "immutable" in seg.headers["cache-control"]
            sizes = decode_segment(seg.content)
            assert sizes and set(sizes) == {(640, 360)}
            assert segment_audio(seg.content) == "aac"

            health = await http.get(f"{a.http}/api/v1/rooms/{room_name}/media/health", headers=host_headers(room_name))
            assert health.status_code == 200
            src = health.json()["sources"][0]
            assert (src["width"], src["height"]) == (640, 360) and src["frames"] > 0

            metrics = await http.get(b.media + "/metrics")
            assert f'liveserver_media_ingest_fps{{room="{room_name}",source="whip"}}' in metrics.text

            # DELETE ends the live: state.media goes offline on node A.
            d = await http.delete(pub.location, headers=host_headers(room_name))
            assert d.status_code == 200
        await viewer_ws.wait_state(lambda s: s.get("media", {}).get("live") is False, timeout=20)

        async with httpx.AsyncClient(follow_redirects=True, timeout=10) as http:
            # Not live any more: WHEP 409 + Retry-After, playlist gone, a recording listed.
            r = await http.post(f"{a.http}/api/v1/rooms/{room_name}/whep", content="v=0", headers={"Content-Type": "application/sdp"})
            assert r.status_code == 409 and r.headers.get("retry-after")
            recs = await http.get(f"{a.http}/api/v1/rooms/{room_name}/recordings", headers=host_headers(room_name))
            assert recs.status_code == 200
            rec = recs.json()["recordings"][0]
            vod = await http.get(rec["hls"])
            assert vod.status_code == 200 and "#EXT-X-ENDLIST" in vod.text
            poster = await http.get(rec["poster"])
            assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"
            first = [line for line in vod.text.splitlines() if line and not line.startswith("#")][0]
            assert set(decode_segment((await http.get(str(vod.url.join(first)))).content)) == {(640, 360)}
    finally:
        await pub.close()
        await viewer_ws.close()
