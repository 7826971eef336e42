"""The viewer page and the host console in real Chromium against a real node.

Every wait is bounded by Playwright's timeouts (and pytest-timeout above them).
"""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import expect

from browserkit import DESKTOP, PHONE, Pages, host_api


def test_console_push_card_shows_on_viewer_within_1s(pages: Pages) -> None:
    viewer = pages.viewer("alice")
    console = pages.console()
    expect(viewer.locator("#card")).to_be_hidden()
    row = console.locator('#products-body tr[data-product="mug"]')
    row.locator("button.push").click()
    started = time.monotonic()
    expect(viewer.locator("#card-title")).to_have_text("Celadon mug", timeout=1_000)
    assert time.monotonic() - started < 1.0
    expect(viewer.locator("#card-price")).to_have_text("¥59.00")
    expect(viewer.locator("#card-img")).to_have_attribute("src", "/static/products/mug.svg")
    expect(console.locator("#products-out")).to_contain_text("Card pushed")


def test_danmaku_goes_across_and_blocked_word_is_refused_inline(pages: Pages) -> None:
    alice = pages.viewer("alice", name="Alice")
    bob = pages.viewer("bob", name="Bob", viewport=DESKTOP)
    alice.fill("#dm-input", "hello from alice")
    alice.press("#dm-input", "Enter")
    expect(bob.locator("#chat li", has_text="hello from alice")).to_have_count(1)
    expect(bob.locator("#chat li .who", has_text="Alice")).to_have_count(1)
    # It also flies over the video (a lane element, until its animation ends).
    expect(bob.locator("#danmaku-layer .dm", has_text="hello from alice")).to_have_count(1)
    expect(alice.locator("#dm-input")).to_have_value("")

    alice.fill("#dm-input", "this has a BadWord in it")
    alice.click("#dm-send")
    expect(alice.locator("#dm-error")).to_contain_text("blocked word")
    expect(alice.locator("#dm-input")).to_have_value("this has a BadWord in it")  # kept, so it can be fixed
    # Nothing reached the other page; a clean message still does.
    alice.fill("#dm-input", "sorry")
    alice.press("#dm-input", "Enter")
    expect(bob.locator("#chat li", has_text="sorry")).to_have_count(1)
    expect(bob.locator("#chat li", has_text="BadWord")).to_have_count(0)
    expect(alice.locator("#dm-error")).to_have_text("")
