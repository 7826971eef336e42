"""The replay page plays the room's recording (HLS VOD, through the vendored hls.js in
Chromium) and re-plays the danmaku in step with the video's currentTime: a testsrc live
published through WHIP, danmaku sent at known times, the live ended; seeking the video to
t (forwards and backwards) shows exactly the danmaku up to t, and playing on shows the
next one once the video passes it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))
from browserkit import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PRODUCTS  # noqa: E402
from harness import ROOT, Client, admin_headers, create_room, token  # noqa: E402
from mediakit import publish  # noqa: E402
from waiting import wait_until  # noqa: E402

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]

VIDEO = "document.querySelector('#video')"
TEXTS = [f"comment {i}" for i in range(6)]


async def test_replay_plays_the_recording_in_step_with_the_danmaku(media_node, room_name) -> None:
    from playwright.async_api import async_playwright

    node = media_node
    create_room(node, room_name, PRODUCTS)
    host = {"Authorization": f"Bearer {token('host-1', 'host', room=room_name)}"}
    pub = await publish(f"{node.http}/api/v1/rooms/{room_name}/whip", token("host-1", "host", room=room_name),
                        size="640x360")
    fan = await Client.connect(node, room_name, user="fan", name="Fan")
    stamps: list[int] = []
    try:
        await fan.wait_state(lambda s: (s.get("media") or {}).get("live") is True, timeout=40)
        await asyncio.sleep(1.0)  # some video before the first comment
        for text in TEXTS:
            reply = await fan.request("danmaku", text=text)
            assert reply["ok"], reply
            stamps.append(reply["data"]["ts"])
            await asyncio.sleep(0.7)  # the audience's pace, not a synchronisation
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.delete(pub.location)).status_code == 200
    finally:
        await fan.close()
        await pub.close()
    assert httpx.put(f"{node.http}/api/v1/rooms/{room_name}", json={"status": "ended"}, headers=admin_headers(),
                     timeout=10).status_code == 200

    def recorded() -> dict | None:
        r = httpx.get(f"{node.http}/api/v1/rooms/{room_name}/recordings", headers=host, timeout=10)
        recs = r.json()["recordings"]
        return recs[0] if recs else None

    rec = await wait_until(recorded, timeout=30, what="the recording listed")
    history = httpx.get(f"{node.http}/api/v1/rooms/{room_name}/history", timeout=10).json()
    assert history["recording"] == rec["hls"] and history["recording_id"] == rec["id"]
    playlist = httpx.get(rec["hls"], timeout=10)
    assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
    # the offset comes from the playlist's clock, within the live
    assert rec["started_ms"] - 1000 <= history["recording_start_ms"] < stamps[0]

    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            context = await browser.new_context(viewport=DESKTOP, device_scale_factor=1)
            context.set_default_timeout(20_000)
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{node.http}/rooms/{room_name}/replay")
            await page.wait_for_selector("body[data-ready='1'][data-video='1']")
            assert await page.get_attribute("body", "data-player") == "hls.js"  # the vendored player
            # hls.js read the first #EXT-X-PROGRAM-DATE-TIME: the page's t0 is the server's
            await page.wait_for_function(f"document.body.dataset.t0 === '{history['recording_start_ms']}'")
            t0 = history["recording_start_ms"]

            # it plays: a picture, and its clock advances
            await page.click("#play")
            await page.wait_for_function(f"{VIDEO}.videoWidth > 0 && {VIDEO}.currentTime > 0.5 && !{VIDEO}.paused",
                                         timeout=30_000)
            assert await page.evaluate(f"[{VIDEO}.videoWidth, {VIDEO}.videoHeight]") == [640, 360]
            await page.click("#play")  # pause: from here the test moves the time
            await page.wait_for_function(f"{VIDEO}.paused")

            async def shown() -> list[str]:
                return await page.eval_on_selector_all("#danmaku li .text", "els => els.map(e => e.textContent)")

            async def seek(ms: int) -> None:
                # (paused) through the slider, as a user drags it; the video follows
                await page.eval_on_selector("#seek", "(s, ms) => { s.value = String(ms); s.dispatchEvent(new Event('input')); }", ms)
                await page.wait_for_function(f"!{VIDEO}.seeking && Math.round({VIDEO}.currentTime * 1000) === {ms}")

            async def expect(k: int, what: str) -> None:
                async def exactly() -> bool:
                    return await shown() == TEXTS[:k]
                await wait_until(exactly, timeout=5, what=what)

            for k in (4, 1, 5, 0, 3):  # forwards and backwards
                await seek(stamps[k] - t0)
                await expect(k + 1, f"danmaku up to #{k}")
                await seek(stamps[k] - t0 - 1)  # a moment before the k-th: one fewer
                await expect(k, f"danmaku before #{k}")
            await seek(0)
            await expect(0, "nothing at 0")

            # playing on from just before #2: #2 appears once the video passes it, not before
            await seek(stamps[2] - t0 - 300)
            await expect(2, "before #2")
            await page.click("#play")
            await page.wait_for_function(f"document.querySelector('#count').textContent === '3'", timeout=10_000)
            at = await page.evaluate(f"{VIDEO}.currentTime * 1000")
            assert stamps[2] - t0 <= at + 100, (at, stamps[2] - t0)  # (a frame of slack: rAF vs currentTime)
            assert (await shown())[:3] == TEXTS[:3]
            before = await page.evaluate(f"{VIDEO}.currentTime")
            await page.wait_for_function(f"{VIDEO}.currentTime > {before} + 0.5", timeout=10_000)

            # the screenshot: the recording (paused) with its danmaku
            await page.click("#play")
            await page.wait_for_function(f"{VIDEO}.paused")
            await seek(stamps[5] - t0 + 200)
            await expect(6, "every danmaku")
            await page.wait_for_function(f"{VIDEO}.readyState >= 2")
            shot = ROOT / "docs" / "screenshots" / "replay-video.png"
            await page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
        finally:
            await browser.close()
    assert not errors, errors
