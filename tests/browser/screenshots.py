"""Screenshots of the viewer page and the host console at phone and desktop size.

    python tests/browser/screenshots.py            # writes docs/screenshots/*.png

Starts its own Redis and node, builds a busy room (card, live flash sale, lottery, poll,
danmaku, a coupon), then captures. `test_screenshots.py` runs the same scene into a temp dir.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]  # tests, harness, the checkout (no install needed)

from browserkit import BROWSER_ENV, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, PRODUCTS, host_api  # noqa: E402
from harness import ROOT, Node, RedisServer, create_room, free_port, node_env, token  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def capture(browser: Any, node: Node, room: str, out: Path, settle_s: float = 1.2) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    api = host_api(node, room)
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(path: str, viewport: dict[str, int]) -> Any:
        context = browser.new_context(viewport=viewport, device_scale_factor=1)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{node.http}{path}")
        return page

    def viewer(user: str, name: str, viewport: dict[str, int]) -> Any:
        page = open_page(f"/rooms/{room}?token={token(user, 'viewer', name=name)}", viewport)
        page.wait_for_selector("body[data-conn=open]")
        return page

    try:
        api("PUT", f"/rooms/{room}", json={"title": "Spring tea live · West Lake", "status": "live"})
        phone = viewer("mei", "Mei", PHONE)
        desk = viewer("li", "Li Wei", DESKTOP)
        extra = [viewer(f"fan{i}", n, PHONE) for i, n in enumerate(["Chen", "Xiao Yu", "Tom"])]
        console = open_page(f"/console/{room}?token={token('host-1', 'host', name='Host', room=room)}", DESKTOP)
        console.wait_for_selector("#conn[data-status=open]")

        api("POST", f"/rooms/{room}/cards", json={"product_id": "tea"})
        api("POST", f"/rooms/{room}/sales", json={"product_id": "tea", "price": 9900, "stock": 200,
                                                   "per_user_limit": 2, "start_in_s": 0, "duration_s": 600})
        api("POST", f"/rooms/{room}/lotteries", json={"prize": "A tin of Longjing", "winners": 3,
                                                       "keyword": "tea", "duration_s": 300})
        api("POST", f"/rooms/{room}/polls", json={"question": "Which mug colour next?",
                                                   "options": ["Celadon", "Rose", "Ink"], "duration_s": 300})
        for page in [phone, desk, *extra]:
            page.wait_for_selector("#sale-buy:not([disabled])")
        for page in [desk, *extra]:
            page.click("#sale-buy")
            page.wait_for_selector("#sale-msg.ok")
        for n in (1, 2, 3):  # the payment callback for three of the four orders
            api("POST", f"/orders/{room}.o{n}/paid")
        for i, page in enumerate([desk, *extra]):
            page.click(f'#poll-options button[data-option="{i % 2}"]')
        for page in [phone, desk]:
            for _ in range(6):
                page.click("#like-btn")
        api("POST", f"/rooms/{room}/notices", json={"text": "Flash sale is live: 99 yuan, two per person!"})
        phone.wait_for_selector(".notice")
        lines = ["The tea smells amazing", "tea! 🍵", "How many grams per tin?", "Just bought two", "主播好！", "tea please"]
        for page, text in zip([*extra, desk, phone, *extra], lines):
            page.fill("#dm-input", text)
            page.press("#dm-input", "Enter")
        desk.wait_for_selector("#chat li >> text=tea please")
        time.sleep(1.5)  # danmaku mid-flight look better than an empty sky

        for page in (phone, desk, console):
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{page.url}: {overflow}px of sideways scrolling"
        shots = []
        for page, name in [(phone, "viewer-phone.png"), (desk, "viewer-desktop.png")]:
            page.screenshot(path=str(out / name))
            shots.append(out / name)

        console.wait_for_selector("#sales-body tr")
        deadline = time.monotonic() + settle_s  # stats samples (one a second) for the charts
        while time.monotonic() < deadline:
            for page in (phone, desk, *extra):
                page.click("#like-btn")
            time.sleep(0.25)
        console.screenshot(path=str(out / "console-desktop.png"), full_page=True)
        shots.append(out / "console-desktop.png")
        console.set_viewport_size(PHONE)
        overflow = console.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"console at phone size: {overflow}px of sideways scrolling"
        console.screenshot(path=str(out / "console-phone.png"))
        shots.append(out / "console-phone.png")

        api("POST", f"/rooms/{room}/coupons", json={"title": "Tea lovers' coupon", "amount": 1000, "min_spend": 5000,
                                                     "quantity": 500, "per_user": 1, "duration_s": 120})
        phone.wait_for_selector("#coupon-modal:not([hidden])")
        phone.click("#coupon-claim")
        phone.wait_for_selector("#coupon-msg.ok")
        phone.screenshot(path=str(out / "viewer-phone-coupon.png"))
        shots.append(out / "viewer-phone-coupon.png")

        lottery_id = console.locator("#lotteries li").first.get_attribute("data-lottery")
        phone.click("#modal-layer [data-close]:visible")
        api("POST", f"/rooms/{room}/lotteries/{lottery_id}/draw")
        desk.wait_for_selector("#winners-modal:not([hidden])")
        desk.click("#verify-btn")
        desk.wait_for_selector("#verify-result[data-ok]")
        desk.screenshot(path=str(out / "viewer-desktop-lottery.png"))
        shots.append(out / "viewer-desktop-lottery.png")
        if errors:
            raise AssertionError(f"JavaScript errors: {errors}")
        return shots
    finally:
        for context in contexts:
            context.close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    redis_server = RedisServer().start()
    node = Node(port=free_port(), env=node_env(redis_server.url, **BROWSER_ENV)).start()
    try:
        create_room(node, "demo-shots", PRODUCTS)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for path in capture(browser, node, "demo-shots", OUT, settle_s=6):
                    print(path.relative_to(ROOT))
            finally:
                browser.close()
    finally:
        node.kill()
        redis_server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
