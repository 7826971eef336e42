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
    bob = pages.viewer("bob", name="Bob", viewport=DESKTOP, codec="msgpack")
    assert bob.evaluate("liveClient.binary") is True  # bob's page speaks lc1.msgpack
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


def test_text_typed_while_a_danmaku_is_acked_is_kept(pages: Pages) -> None:
    alice = pages.viewer("alice", name="Alice")
    # Hold each ack back until the test lets it through, so "typed before the ack" is certain.
    alice.evaluate("""() => {
      const send = liveClient.request.bind(liveClient);
      window.__release = [];
      window.__acked = 0;
      liveClient.request = async (...args) => {
        const reply = await send(...args);
        await new Promise((go) => window.__release.push(go));
        window.__acked += 1;
        return reply;
      };
    }""")
    alice.fill("#dm-input", "first")
    alice.press("#dm-input", "Enter")
    alice.wait_for_function("window.__release.length === 1")
    alice.fill("#dm-input", "second, typed meanwhile")
    alice.evaluate("window.__release.shift()()")
    alice.wait_for_function("window.__acked === 1")
    expect(alice.locator("#dm-input")).to_have_value("second, typed meanwhile")


def _same_second(a, b, selector: str, tries: int = 20) -> str:  # type: ignore[no-untyped-def]
    """Read a countdown on page a, then b, then a again; when a did not tick meanwhile, b must agree."""
    for _ in range(tries):
        first = a.locator(selector).inner_text()
        other = b.locator(selector).inner_text()
        again = a.locator(selector).inner_text()
        if first == again:
            assert other == first, f"countdowns differ: {first} vs {other}"
            return first
    raise AssertionError("the countdown never held still long enough to compare")


def test_flash_sale_countdown_buy_stock_and_limit(pages: Pages) -> None:
    alice = pages.viewer("alice")
    bob = pages.viewer("bob", viewport=DESKTOP)
    console = pages.console()

    # An API error is shown in words (stock must be at least 1).
    form = console.locator("#sale-form")
    form.locator('select[name="product_id"]').select_option("tea")
    form.locator('input[name="stock"]').fill("0")
    form.locator('button[type="submit"]').click()
    expect(console.locator("#sale-out")).to_contain_text("Start sale failed")
    expect(console.locator("#sale-out")).to_contain_text("stock")

    form.locator('input[name="price"]').fill("99")
    form.locator('input[name="stock"]').fill("5")
    form.locator('input[name="per_user_limit"]').fill("1")
    form.locator('input[name="start_in_s"]').fill("3")
    form.locator('input[name="duration_s"]').fill("60")
    form.locator('button[type="submit"]').click()
    expect(console.locator("#sale-out")).to_contain_text("created")

    for page in (alice, bob):
        expect(page.locator("#sale")).to_be_visible()
        expect(page.locator("#sale-price")).to_have_text("¥99.00")
        expect(page.locator("#sale-buy")).to_be_disabled()
    shown = _same_second(alice, bob, "#sale-countdown")
    assert re.fullmatch(r"00:0[1-3]", shown), shown

    expect(alice.locator("#sale-buy")).to_be_enabled(timeout=6_000)
    expect(bob.locator("#sale-buy")).to_be_enabled(timeout=2_000)
    expect(bob.locator("#sale-stock")).to_have_text("5")
    alice.click("#sale-buy")
    expect(alice.locator("#sale-msg")).to_contain_text("Got it! Order")
    expect(bob.locator("#sale-stock")).to_have_text("4")
    expect(bob.locator("#card-stock")).to_have_text("")  # no card pinned: the sale banner carries the stock
    alice.click("#sale-buy")
    expect(alice.locator("#sale-msg")).to_contain_text("Limit reached")
    expect(bob.locator("#sale-stock")).to_have_text("4")
    # The console sees the stock and the reserved order.
    row = console.locator("#sales-body tr").first
    expect(row).to_contain_text("4/5")
    expect(row.locator("td").nth(3)).to_have_text("1", timeout=5_000)


def test_coupon_drop_claim_my_coupons_and_second_claim(pages: Pages) -> None:
    alice = pages.viewer("alice")
    console = pages.console()
    form = console.locator("#coupon-form")
    form.locator('input[name="title"]').fill("Spring coupon")
    form.locator('input[name="amount"]').fill("5")
    form.locator('input[name="min_spend"]').fill("50")
    form.locator('input[name="quantity"]').fill("10")
    form.locator('button[type="submit"]').click()
    expect(console.locator("#coupon-out")).to_contain_text("dropped")

    expect(alice.locator("#coupon-modal")).to_be_visible()
    expect(alice.locator("#coupon-title")).to_have_text("Spring coupon")
    expect(alice.locator("#coupon-rule")).to_have_text("¥5.00 off orders over ¥50.00")
    alice.click("#coupon-claim")
    expect(alice.locator("#coupon-msg")).to_contain_text("Claimed")
    # A count moving is a counter change: up to LIVESERVER_COUNTERS_MS (1 s) stale by design.
    expect(alice.locator("#coupon-left")).to_have_text("9", timeout=10_000)

    alice.click("#coupon-mine")
    expect(alice.locator("#mine-modal")).to_be_visible()
    expect(alice.locator("#mine-list li")).to_have_count(1)
    expect(alice.locator("#mine-list li")).to_contain_text("Spring coupon")
    expect(alice.locator("#mine-list li")).to_contain_text("¥5.00")
    alice.keyboard.press("Escape")

    alice.click("#coupon-pill")
    expect(alice.locator("#coupon-modal")).to_be_visible()
    alice.click("#coupon-claim")
    expect(alice.locator("#coupon-msg")).to_have_text("Already claimed")
    expect(console.locator("#coupons-body tr").first).to_contain_text("9/10", timeout=10_000)


def test_lottery_keyword_entry_draw_winners_and_verify(pages: Pages) -> None:
    alice = pages.viewer("alice", name="Alice")
    bob = pages.viewer("bob", name="Bob", viewport=DESKTOP)
    console = pages.console()
    form = console.locator("#lottery-form")
    form.locator('input[name="prize"]').fill("A tin of tea")
    form.locator('input[name="winners"]').fill("1")
    form.locator('input[name="keyword"]').fill("Longjing")
    form.locator('button[type="submit"]').click()
    expect(console.locator("#lottery-out")).to_contain_text("started")

    for page, text in ((alice, "longjing please!"), (bob, "I want the LONGJING")):
        expect(page.locator("#lottery")).to_be_visible()
        expect(page.locator("#lottery-how code")).to_have_text("Longjing")
        page.fill("#dm-input", text)
        page.press("#dm-input", "Enter")
        expect(page.locator("#lottery-enter")).to_have_text("You're in ✓")
    for page in (alice, bob):
        expect(page.locator("#lottery-entrants")).to_have_text("2", timeout=5_000)
    entry = console.locator("#lotteries li").first
    expect(entry).to_contain_text("2 in")
    entry.locator("button.draw").click()
    expect(console.locator("#lottery-out")).to_contain_text("Drawn")

    winners = []
    for page in (alice, bob):
        expect(page.locator("#winners-modal")).to_be_visible()
        expect(page.locator("#winners-prize")).to_have_text("Prize: A tin of tea")
        expect(page.locator("#winners-list li")).to_have_count(1)
        winners.append(page.locator("#winners-list li").get_attribute("data-user"))
        expect(page.locator("#lottery")).to_be_hidden()
    assert winners[0] == winners[1] and winners[0] in ("alice", "bob")
    winner, loser = (alice, bob) if winners[0] == "alice" else (bob, alice)
    expect(winner.locator("#winners-you")).to_have_text("🎉 You won!")
    expect(loser.locator("#winners-you")).to_contain_text("Not this time")

    for page in (alice, bob):
        page.click("#verify-btn")
        expect(page.locator("#verify-result")).to_have_attribute("data-ok", "true")
        expect(page.locator("#verify-result")).to_contain_text("Verified")
        expect(page.locator("#verify-steps li")).to_have_count(3)


def test_console_retracts_and_mutes_from_a_danmaku_line(pages: Pages) -> None:
    alice = pages.viewer("alice", name="Alice")
    bob = pages.viewer("bob", name="Bob")
    console = pages.console()
    alice.fill("#dm-input", "buy my stuff elsewhere")
    alice.press("#dm-input", "Enter")
    expect(bob.locator("#chat li", has_text="buy my stuff elsewhere")).to_have_count(1)
    line = console.locator("#feed li", has_text="buy my stuff elsewhere")
    line.locator("button", has_text="Retract").click()
    expect(bob.locator("#chat li", has_text="buy my stuff elsewhere")).to_have_count(0)
    expect(line).to_have_class(re.compile("retracted"))

    line.locator("button", has_text="Mute").click()
    expect(console.locator("#feed-out")).to_contain_text("muted for 5 minutes")
    alice.fill("#dm-input", "am I muted?")
    alice.press("#dm-input", "Enter")
    expect(alice.locator("#dm-error")).to_contain_text("You are muted until")
    expect(bob.locator("#chat li", has_text="am I muted?")).to_have_count(0)


def test_console_token_gate_poll_notice_and_a_read_only_guest(pages: Pages) -> None:
    from harness import token

    alice = pages.viewer("alice")
    guest = pages.viewer(None)
    expect(guest.locator("#whoami")).to_contain_text("guest")

    console = pages._page(f"{pages.node.http}/console/{pages.room}", DESKTOP)
    expect(console.locator("#gate")).to_be_visible()
    # A viewer's token is not a host token: the refusal is shown in words.
    console.fill("#gate-token", token("alice", "viewer"))
    console.click("#gate-form button[type=submit]")
    console.locator("#notice-form input").fill("hello")
    console.click("#notice-form button[type=submit]")
    expect(console.locator("#notice-out")).to_contain_text("Send notice failed. Not allowed: this needs a host token")

    console.fill("#gate-token", token("host-1", "host", room=pages.room))
    console.click("#gate-form button[type=submit]")
    expect(console.locator("#conn")).to_have_attribute("data-status", "open")
    console.locator("#notice-form input").fill("Welcome, everyone!")
    console.click("#notice-form button[type=submit]")
    expect(alice.locator(".notice")).to_contain_text("Welcome, everyone!")
    expect(guest.locator("#chat li.system", has_text="Welcome, everyone!")).to_have_count(1)

    form = console.locator("#poll-form")
    form.locator('input[name="question"]').fill("Tea or coffee?")
    form.locator('textarea[name="options"]').fill("Tea\nCoffee")
    form.locator('button[type="submit"]').click()
    expect(console.locator("#poll-out")).to_contain_text("started")
    expect(alice.locator("#poll-question")).to_have_text("Tea or coffee?")
    alice.click('#poll-options button[data-option="0"]')
    expect(alice.locator("#poll-msg")).to_have_text("Thanks for voting!")
    expect(guest.locator('#poll-options button[data-option="0"] .count')).to_have_text("1 · 100%", timeout=5_000)
    expect(console.locator("#polls li").first).to_contain_text("1 · 100%")
    alice.click('#poll-options button[data-option="1"]')
    expect(alice.locator("#poll-msg")).to_have_text("You already voted.")

    # A guest watches but cannot vote or chat; the reason is shown inline.
    guest.click('#poll-options button[data-option="1"]')
    expect(guest.locator("#poll-msg")).to_contain_text("Sign in first")
    guest.fill("#dm-input", "hi")
    guest.press("#dm-input", "Enter")
    expect(guest.locator("#dm-error")).to_contain_text("Sign in first")
