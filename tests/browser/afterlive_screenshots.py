"""Screenshots of the after-live pages: the report, the trailer and the replay.

    python tests/browser/afterlive_screenshots.py [--seconds 150]   # writes docs/screenshots/*.png

Starts its own Redis and node, plays a scripted audience for `--seconds` (viewers join and
leave over several minutes, danmaku, likes, clicks, buys, payments, a lottery, a coupon),
ends the room, then captures the report and the replay; a second room in preview with
reservations gives the trailer. Every number on the pictures comes from that run."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]  # tests, harness, the checkout (no install needed)

import httpx  # noqa: E402

from browserkit import BROWSER_ENV, CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, PRODUCTS, host_api  # noqa: E402
from harness import ROOT, Client, Node, RedisServer, create_room, free_port, node_env, token  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
LINES = ["The tea smells amazing", "tea! 🍵", "How many grams per tin?", "Just bought two", "主播好！", "tea please",
         "Is the mug dishwasher safe?", "Love the scarf colour", "来了来了", "Greetings from Hangzhou", "666",
         "Price for two tins?", "The celadon is beautiful", "Can you show the leaves again?"]


async def audience(node: Node, room: str, seconds: float, rng: random.Random) -> None:
    api = host_api(node, room)
    sale = api("POST", f"/rooms/{room}/sales", json={"product_id": "tea", "price": 9900, "stock": 300,
                                                      "per_user_limit": 3, "duration_s": 3600}).json()["sale"]
    api("POST", f"/rooms/{room}/cards", json={"product_id": "tea"})
    lottery = api("POST", f"/rooms/{room}/lotteries", json={"prize": "A tin of Longjing", "winners": 3,
                                                             "duration_s": 3600}).json()["lottery"]
    coupon = api("POST", f"/rooms/{room}/coupons", json={"title": "10 off 50", "amount": 1000, "min_spend": 5000,
                                                          "quantity": 100, "per_user": 1, "duration_s": 3600}).json()["coupon"]
    t0 = time.monotonic()
    paid: list[str] = []

    async def viewer(i: int) -> None:
        join = rng.uniform(0, seconds * 0.6)
        stay = rng.uniform(seconds * 0.15, seconds * 0.7)
        await asyncio.sleep(join)
        c = await Client.connect(node, room, user=f"fan{i}", name=rng.choice(["Mei", "Li Wei", "Chen", "Xiao Yu", "Tom", "Ana"]))
        end = min(seconds, join + stay)
        buyer = rng.random() < 0.35
        clicker = buyer or rng.random() < 0.5
        if clicker:
            await c.request("click", product=rng.choice(["tea", "tea", "mug", "scarf"]))
        if rng.random() < 0.6:
            await c.request("enter", lottery=lottery["id"])
        if rng.random() < 0.4:
            await c.request("claim", coupon=coupon["id"])
        while time.monotonic() - t0 < end:
            if rng.random() < 0.5:
                await c.request("danmaku", text=rng.choice(LINES))
            await c.send({"op": "like", "n": rng.randint(1, 8)})
            if buyer and rng.random() < 0.25:
                r = await c.request("buy", sale=sale["id"], qty=rng.randint(1, 2), key=f"k{i}-{rng.random()}")
                if r["ok"] and rng.random() < 0.8:
                    paid.append(r["data"]["order"])
                buyer = False
            await asyncio.sleep(rng.uniform(1.5, 4))
        await c.close()

    async def payments() -> None:
        while time.monotonic() - t0 < seconds + 2:
            while paid:
                api("POST", f"/orders/{paid.pop()}/paid")
            await asyncio.sleep(1)

    await asyncio.gather(*(viewer(i) for i in range(36)), payments())
    api("POST", f"/rooms/{room}/notices", json={"text": "Thanks for watching! Replay is up in a minute."})
    api("POST", f"/rooms/{room}/lotteries/{lottery['id']}/draw")
    api("PUT", f"/rooms/{room}", json={"status": "ended"})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    redis_server = RedisServer().start()
    node = Node(port=free_port(), env=node_env(redis_server.url, **BROWSER_ENV)).start()
    try:
        room = "spring-tea"
        create_room(node, room, PRODUCTS)
        host_api(node, room)("PUT", f"/rooms/{room}", json={"title": "Spring tea live · West Lake"})
        asyncio.run(audience(node, room, args.seconds, random.Random(7)))
        trailer_room = "autumn-tea"
        host_api(node, trailer_room)("PUT", f"/rooms/{trailer_room}", json={
            "title": "Autumn harvest: osmanthus oolong", "status": "preview", "host_name": "Lin from West Lake",
            "description": "First pick of the season, brewed live. Flash sale at 8 pm, a lucky bag for everyone who reserves.",
            "start_ms": int(time.time() * 1000) + 2 * 86400_000 + 3 * 3600_000})
        for i in range(137):
            httpx.post(f"{node.http}/api/v1/rooms/{trailer_room}/reservations",
                       headers={"Authorization": f"Bearer {token(f'fan{i}')}"}, timeout=10).raise_for_status()
        host = token("host-1", "host", room=room)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            errors: list[str] = []
            try:
                def page(path: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
                    ctx = browser.new_context(viewport=viewport, device_scale_factor=1)
                    p = ctx.new_page()
                    p.on("pageerror", lambda exc: errors.append(str(exc)))
                    p.goto(f"{node.http}{path}")
                    p.wait_for_selector("body[data-ready='1']", timeout=15_000)
                    return p

                rep = page(f"/rooms/{room}/report?token={host}", DESKTOP)
                rep.screenshot(path=str(args.out / "report-desktop.png"), full_page=True)
                rep.emulate_media(media="print")
                rep.screenshot(path=str(args.out / "report-print.png"), full_page=True)
                replay = page(f"/rooms/{room}/replay", DESKTOP)
                total = int(replay.eval_on_selector("#seek", "s => s.max"))
                replay.eval_on_selector("#seek", "(s, ms) => { s.value = String(ms); s.dispatchEvent(new Event('input')); }",
                                        int(total * 0.55))
                replay.wait_for_timeout(300)
                replay.screenshot(path=str(args.out / "replay-desktop.png"))
                trailer = page(f"/rooms/{trailer_room}/trailer?token={token('fan3', 'viewer')}", DESKTOP)
                trailer.wait_for_selector("#reserve[aria-pressed='true']")
                trailer.screenshot(path=str(args.out / "trailer-desktop.png"))
                phone = page(f"/rooms/{trailer_room}/trailer?token={token('newfan', 'viewer')}", PHONE)
                phone.screenshot(path=str(args.out / "trailer-phone.png"), full_page=True)
            finally:
                browser.close()
            if errors:
                raise AssertionError(f"JavaScript errors: {errors}")
        for name in ("report-desktop.png", "report-print.png", "replay-desktop.png", "trailer-desktop.png", "trailer-phone.png"):
            print((args.out / name).relative_to(ROOT) if (args.out / name).is_relative_to(ROOT) else args.out / name)
    finally:
        node.kill()
        redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
