"""The replay page in Chromium: danmaku sent at known times; seeking the replay to t shows
exactly the danmaku up to t, forwards and backwards; its card buys at the list price (no recording here: the page plays
against the event timeline; see tests/media/test_replay_video.py for the recording case)."""

from __future__ import annotations

import json
import time

import httpx
from websockets.sync.client import connect

from harness import Node, admin_headers, token
from waiting import wait_until_sync


def send_danmaku(node: Node, room: str, texts: list[str], gap_s: float) -> list[int]:
    """Send each text as a danmaku, `gap_s` apart (the scripted audience); returns their ts."""
    stamps = []
    with connect(f"{node.ws}/ws/rooms/{room}?token={token('fan', 'viewer', name='Fan')}",
                 subprotocols=["lc1.json"], open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["t"] == "welcome"
        for i, text in enumerate(texts):
            ws.send(json.dumps({"op": "danmaku", "id": i + 1, "text": text}))
            while True:
                frame = json.loads(ws.recv(timeout=10))
                if frame.get("t") == "reply" and frame.get("re") == i + 1:
                    assert frame["ok"], frame
                    stamps.append(frame["data"]["ts"])
                    break
            time.sleep(gap_s)  # the audience's pace, not a synchronisation
    return stamps


def test_seek_shows_exactly_the_danmaku_up_to_t(browser, live_node: Node, room: str) -> None:  # type: ignore[no-untyped-def]
    httpx.post(f"{live_node.http}/api/v1/rooms/{room}/cards", json={"product_id": "tea"}, headers=admin_headers(),
               timeout=10).raise_for_status()
    texts = [f"comment {i}" for i in range(8)]
    stamps = send_danmaku(live_node, room, texts, 0.25)
    offset = httpx.post(f"{live_node.http}/api/v1/rooms/{room}/notices", json={"text": "thanks for watching"},
                        headers=admin_headers(), timeout=10).json()["offset"]
    assert offset
    httpx.put(f"{live_node.http}/api/v1/rooms/{room}", json={"status": "ended"}, headers=admin_headers(),
              timeout=10).raise_for_status()

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_node.http}/rooms/{room}/replay")
    page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    t0 = int(page.eval_on_selector("body", "b => b.dataset.t0"))

    def shown() -> list[str]:
        return page.eval_on_selector_all("#danmaku li .text", "els => els.map(e => e.textContent)")

    def seek(ms: int) -> None:
        # through the slider, as a user drags it
        page.eval_on_selector("#seek", "(s, ms) => { s.value = String(ms); s.dispatchEvent(new Event('input')); }", ms)

    order = [5, 2, 7, 0, 6, 3]  # forwards and backwards
    for k in order:
        seek(stamps[k] - t0)
        wait_until_sync(lambda: shown() == texts[: k + 1], timeout=5, what=f"danmaku up to #{k}")
        # a moment before the k-th danmaku: exactly one fewer
        seek(stamps[k] - t0 - 1)
        wait_until_sync(lambda: shown() == texts[:k], timeout=5, what=f"danmaku before #{k}")
    seek(0)  # the card came first: at 0 no danmaku yet
    wait_until_sync(lambda: shown() == [], timeout=5, what="no danmaku at 0")
    assert page.eval_on_selector("#count", "e => e.textContent") == "0"
    assert page.is_visible("#card")  # the card pushed before the danmaku is shown at every t
    context.close()

    # the card buys at the list price, through the same order path (buy.lua) as the live
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_node.http}/rooms/{room}/replay?token={token('late-fan', 'viewer')}")
    page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    page.click("#card-buy")
    page.wait_for_selector("#buy-msg.ok", timeout=10_000)
    order_id = page.eval_on_selector("#buy-msg", "m => m.dataset.order")
    order = httpx.get(f"{live_node.http}/api/v1/orders/{order_id}", headers=admin_headers(), timeout=10).json()["order"]
    assert (order["user"], order["status"], order["amount"], order["qty"]) == ("late-fan", "reserved", 12800, 1)
    audit = httpx.get(f"{live_node.http}/api/v1/sales/{order['sale']}/audit", headers=admin_headers(), timeout=10).json()
    assert audit["ok"] and audit["reserved"] == 1, audit
    context.close()
    assert not errors, errors
