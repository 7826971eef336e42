"""Link-mic in real Chromium with fake devices: the console's "Go live" publishes the
browser's camera (a red Y4M clip) through WHIP and the viewer page plays it; a second
browser (a blue clip) asks to join from the viewer page, the console accepts, that page
publishes with its co-host token, and the watching viewer page's video shows the composite
(a canvas grab: red host, blue guest bottom right). Screenshots of both go to docs/."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))
from browserkit import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PRODUCTS  # noqa: E402
from harness import ROOT, create_room, token  # noqa: E402

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]

PLAYING = """() => {
  const v = document.querySelector('video.live-video');
  return !!v && v.videoWidth > 0 && v.currentTime > 0 && !v.paused;
}"""

# (host pixel, guest pixel) of the playing video, drawn into a canvas.
GRAB = """() => {
  const v = document.querySelector('video.live-video');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const px = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
  const w = c.width, h = c.height;
  return [px(Math.floor(w / 3), Math.floor(h / 3)), px(w - Math.floor(w / 8) - 8, h - Math.floor(h / 8) - 4)];
}"""


def solid_y4m(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (640, 360), frames: int = 30) -> Path:
    w, h = size
    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), rgb, np.uint8), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def near(px: list[int], rgb: tuple[int, int, int], tol: int = 70) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, rgb))


def fake_camera(clip: Path) -> list[str]:
    return [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]


async def test_console_go_live_and_linkmic(start_media_node, room_name, tmp_path) -> None:
    from playwright.async_api import async_playwright

    node = start_media_node()
    create_room(node, room_name, PRODUCTS)
    red = solid_y4m(tmp_path / "red.y4m", (220, 30, 30))
    blue = solid_y4m(tmp_path / "blue.y4m", (30, 30, 220))
    errors: list[str] = []
    async with async_playwright() as pw:
        host_browser = await pw.chromium.launch(executable_path=CHROMIUM, args=fake_camera(red), timeout=30_000)
        guest_browser = await pw.chromium.launch(executable_path=CHROMIUM, args=fake_camera(blue), timeout=30_000)
        try:
            ctx = await host_browser.new_context(viewport=DESKTOP, device_scale_factor=1)
            ctx.set_default_timeout(20_000)
            console = await ctx.new_page()
            console.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
            await console.goto(f"{node.http}/console/{room_name}?token={token('host', 'host', name='Host', room=room_name)}")
            await console.select_option("#golive-size", "640x360")
            await console.click("#golive-start")
            await console.wait_for_selector("#golive-panel[data-live]", timeout=30_000)
            await console.wait_for_function("document.querySelector('#golive-health').textContent.includes('whip')",
                                            timeout=20_000)

            # A viewer page plays what the console sends.
            watcher = await ctx.new_page()
            watcher.on("pageerror", lambda exc: errors.append(f"watcher: {exc}"))
            await watcher.goto(f"{node.http}/rooms/{room_name}?token={token('alice', 'viewer', name='Alice')}")
            await watcher.wait_for_function(PLAYING, timeout=40_000)
            await watcher.wait_for_function(f"(() => {{ const [a] = ({GRAB})(); return a[0] > 150 && a[2] < 100; }})()",
                                            timeout=20_000)

            # Requests open; a second browser (blue camera) asks to join.
            await console.check("#linkmic-allow")
            gctx = await guest_browser.new_context(viewport=DESKTOP, device_scale_factor=1)
            gctx.set_default_timeout(20_000)
            guest = await gctx.new_page()
            guest.on("pageerror", lambda exc: errors.append(f"guest: {exc}"))
            await guest.goto(f"{node.http}/rooms/{room_name}?token={token('bob', 'viewer', name='Bob', badge='VIP')}")
            await guest.wait_for_selector(".linkmic-btn:visible", timeout=20_000)
            await guest.click(".linkmic-btn")
            await console.wait_for_selector("#linkmic-queue li.queued[data-user=bob]:has-text('Bob'):has-text('VIP')")
            await console.click("#linkmic-queue li.queued[data-user=bob] button:has-text('Accept')")
            await guest.wait_for_selector(".linkmic-box[data-phase=on]", timeout=30_000)

            # The watcher's video shows the composite: red host, blue guest bottom right.
            await watcher.wait_for_function(f"""(() => {{ const [a, b] = ({GRAB})();
                return a[0] > 150 && a[2] < 100 && b[2] > 150 && b[0] < 100; }})()""", timeout=30_000)
            host_px, guest_px = await watcher.evaluate(GRAB)
            assert near(host_px, (220, 30, 30)) and near(guest_px, (30, 30, 220)), (host_px, guest_px)
            await console.wait_for_selector("#linkmic-queue li.guest[data-user=bob]")
            await console.wait_for_function("document.querySelector('#golive-health').textContent.includes('guest')")
            shots = ROOT / "docs" / "screenshots"
            await console.evaluate("window.scrollTo(0, 0)")
            await console.screenshot(path=str(shots / "linkmic-console.png"))
            await watcher.screenshot(path=str(shots / "linkmic-viewer.png"))

            # The host ends it: the watcher sees only the host again; the guest page knows.
            await console.click("#linkmic-queue li.guest[data-user=bob] button:has-text('End')")
            await watcher.wait_for_function(f"""(() => {{ const [a, b] = ({GRAB})();
                return a[0] > 150 && b[0] > 150 && b[2] < 100; }})()""", timeout=10_000)
            await guest.wait_for_function("document.querySelector('.linkmic-note').textContent.includes('ended')")
            await console.click("#golive-stop")
            await watcher.wait_for_selector("#video[data-media=offline]", timeout=20_000)
        finally:
            await guest_browser.close()
            await host_browser.close()
    assert not errors, errors


async def test_take_requests_click_stays_while_its_put_is_on_the_way(start_media_node, room_name) -> None:
    """The console redraws its link-mic panel from the room state every 300 ms. A click
    on "Take requests" whose PUT has not reached the state yet must not be undone by a
    redraw (it was: on a busy box the box flipped back before Playwright's check() saw it)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    node = start_media_node()
    create_room(node, room_name, PRODUCTS)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold_the_put(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.method == "PUT":
            held.set()
            await asyncio.wait_for(release.wait(), 30)
        await route.continue_()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = await (await browser.new_context(viewport=DESKTOP, device_scale_factor=1)).new_page()
            await page.route("**/linkmic", hold_the_put)
            await page.goto(f"{node.http}/console/{room_name}?token={token('host', 'host', name='Host', room=room_name)}")
            await page.wait_for_selector("#linkmic-queue li.empty", timeout=20_000)  # the panel shows the state
            await page.click("#linkmic-allow")
            await asyncio.wait_for(held.wait(), 10)
            # Three redraws while the PUT is held (the state still says "not allowed"):
            # the box must stay checked.
            with pytest.raises(PlaywrightTimeout):
                await page.wait_for_function("!document.querySelector('#linkmic-allow').checked", timeout=1000)
            release.set()
            await page.wait_for_function("window.liveClient.state.linkmic.allow === true", timeout=20_000)
            assert await page.is_checked("#linkmic-allow")
        finally:
            release.set()
            await browser.close()
