"""The viewer page in real Chromium plays the live (WHEP, and HLS through the vendored
hls.js) while danmaku still fly over it; it goes back to the poster when the live ends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))
from browserkit import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PRODUCTS  # noqa: E402
from harness import ROOT, create_room, token  # noqa: E402
from mediakit import publish  # noqa: E402

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]

PLAYING = """() => {
  const v = document.querySelector('video.live-video');
  return !!v && v.videoWidth > 0 && v.currentTime > 0 && !v.paused;
}"""


async def _advances(page, seconds: float = 1.0) -> bool:
    t0 = await page.evaluate("document.querySelector('video.live-video').currentTime")
    await page.wait_for_function(f"document.querySelector('video.live-video').currentTime > {t0} + {seconds}", timeout=15_000)
    return True


async def test_viewer_page_plays_the_live(media_node, room_name) -> None:
    from playwright.async_api import async_playwright

    node = media_node
    create_room(node, room_name, PRODUCTS)
    pub = await publish(f"{node.http}/api/v1/rooms/{room_name}/whip", token("host-1", "host", room=room_name), size="1280x720")
    errors: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                context = await browser.new_context(viewport=DESKTOP, device_scale_factor=1)
                context.set_default_timeout(20_000)
                page = await context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(f"{node.http}/rooms/{room_name}?token={token('alice', 'viewer', name='Alice')}")
                await page.wait_for_selector("body[data-conn=open]")

                # WHEP: the video plays and its clock advances.
                await page.wait_for_function(PLAYING, timeout=40_000)
                assert await page.get_attribute("#video", "data-playing") == "whep"
                size = await page.evaluate("[document.querySelector('video.live-video').videoWidth, document.querySelector('video.live-video').videoHeight]")
                assert size == [1280, 720]
                assert await _advances(page)
                # Muted autoplay, with the sound one tap away (the live has audio: Opus over WHEP).
                assert await page.evaluate("document.querySelector('video.live-video').muted") is True
                await page.wait_for_selector("button.live-unmute", state="visible")

                # Danmaku still flow over the playing video.
                for text in ("what a nice tea", "how much is the mug?", "hello from the live"):
                    await page.fill("#dm-input", text)
                    await page.press("#dm-input", "Enter")
                await page.wait_for_selector("#danmaku-layer .dm:has-text('hello from the live')")
                # (the screenshot is taken once the comments are well over the picture)
                await page.wait_for_function("""() => [...document.querySelectorAll('#danmaku-layer .dm')]
                    .some((d) => d.getBoundingClientRect().left < 450)""", timeout=15_000)
                assert await page.evaluate(PLAYING.replace("() =>", "(() =>") + ")()")
                shot = ROOT / "docs" / "screenshots" / "viewer-live.png"
                await page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
                await page.click("button.live-unmute")
                assert await page.evaluate("document.querySelector('video.live-video').muted") is False
                assert await page.is_hidden("button.live-unmute")

                # HLS (no WHEP): hls.js from /static/vendor plays the same live.
                hls_page = await context.new_page()
                hls_page.on("pageerror", lambda exc: errors.append(str(exc)))
                await hls_page.goto(f"{node.http}/rooms/{room_name}?hls=1")
                await hls_page.wait_for_function(PLAYING, timeout=60_000)
                assert await hls_page.get_attribute("#video", "data-playing") == "hls"
                assert await _advances(hls_page)

                # The live ends: both pages go back to the poster, "Offline".
                async with httpx.AsyncClient(timeout=30) as http:
                    assert (await http.delete(pub.location)).status_code == 200
                for p in (page, hls_page):
                    await p.wait_for_selector("#video[data-media=offline]", timeout=20_000)
                    assert "Offline" in await p.inner_text("#poster-label")
                    assert await p.evaluate("document.querySelector('video.live-video').style.display") == "none"
            finally:
                await browser.close()
    finally:
        await pub.close()
    assert not errors, errors
