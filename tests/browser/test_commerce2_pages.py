"""Commerce, second wave, in Chromium: a group-buy team opened on one page and completed
from two others (one through the share link); a buy with a coupon showing the discounted
amount. Screenshots go to a temp dir, or to $LIVESERVER_SHOTS (docs/screenshots to refresh them):

    LIVESERVER_SHOTS=docs/screenshots python -m pytest tests/browser/test_commerce2_pages.py
"""

from __future__ import annotations

import os
from pathlib import Path

from browserkit import DESKTOP, PHONE, Pages, host_api
from harness import token


def shots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("LIVESERVER_SHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_group_buy_team_completed_from_three_pages(pages: Pages, room: str, tmp_path: Path) -> None:
    console = pages.console()
    console.select_option("#group-product", "mug")
    console.fill("#group-form [name=price]", "39.90")
    console.fill("#group-form [name=size]", "3")
    console.fill("#group-form [name=stock]", "30")
    console.click("#group-form button[type=submit]")
    console.wait_for_function("document.querySelector('#group-out').textContent.includes('started')")
    ann = pages.viewer("ann", name="Ann")
    ann.wait_for_selector("#groups:not([hidden])")
    assert "39.90" in ann.inner_text("#group-price")
    ann.click("#group-open")
    ann.wait_for_selector("#group-teams li.team.mine")
    assert ann.inner_text("#group-teams li.team.mine .team-members") == "Ann"
    ann.click("#group-teams li.team.mine .team-share")
    ann.wait_for_function("document.querySelector('#group-msg').textContent.includes('team=')")
    link = ann.inner_text("#group-msg").split("Share this link: ", 1)[1].strip()
    assert "token=" not in link
    team = link.split("team=", 1)[1].split("&", 1)[0]
    # Bo opens the shared link (with his own token): the team is highlighted; he joins it
    bo = pages._page(f"{link}&token={token('bo', 'viewer', name='Bo')}", PHONE)
    bo.wait_for_selector(f"#group-teams li.team.wanted[data-team='{team}']")
    bo.click(f"#group-teams li[data-team='{team}'] .team-join")
    bo.wait_for_selector(f"#group-teams li.team.mine[data-team='{team}']")
    ann.wait_for_function(f"document.querySelector(\"#group-teams li[data-team='{team}'] .team-members\")"
                          ".textContent === 'Ann, Bo'")
    cy = pages.viewer("cy", name="Cy", viewport=DESKTOP)
    cy.wait_for_selector(f"#group-teams li[data-team='{team}']")
    out = shots_dir(tmp_path)
    cy.screenshot(path=str(out / "viewer-desktop-group.png"))
    cy.click(f"#group-teams li[data-team='{team}'] .team-join")
    cy.wait_for_function("document.querySelector('#group-msg').textContent.includes('Team complete')")
    # the pop-up on the first page: her team is complete
    ann.wait_for_function("[...document.querySelectorAll('#notices .notice')].some(n => n.textContent.includes('team is complete'))")
    ann.screenshot(path=str(out / "viewer-phone-group-complete.png"))
    console.wait_for_function("document.querySelector('#groups-body tr') && "
                              "document.querySelector('#groups-body tr').textContent.includes('27/30')")
    console.screenshot(path=str(out / "console-desktop-group.png"))


def test_buy_with_coupon_shows_discounted_amount(pages: Pages, room: str, tmp_path: Path) -> None:
    api = host_api(pages.node, room)
    api("POST", f"/rooms/{room}/sales", json={"product_id": "tea", "price": 9900, "stock": 20, "duration_s": 600})
    mei = pages.viewer("mei", name="Mei")
    coupon = api("POST", f"/rooms/{room}/coupons", json={"title": "Live ¥15 off", "amount": 1500, "min_spend": 5000,
                                                        "quantity": 10, "duration_s": 600}).json()["coupon"]
    mei.wait_for_selector("#coupon-modal:not([hidden])")
    mei.click("#coupon-claim")
    mei.wait_for_function("document.querySelector('#coupon-msg').textContent.includes('Claimed')")
    mei.click("#coupon-modal [data-close]")
    mei.wait_for_selector("#sale-coupon:not([hidden])")
    mei.select_option("#sale-coupon", coupon["id"])
    mei.wait_for_selector("#sale-buy:not([disabled])")
    mei.click("#sale-buy")
    mei.wait_for_function("document.querySelector('#sale-msg').textContent.includes('Got it')")
    text = mei.inner_text("#sale-msg")
    assert "¥84.00 to pay" in text and "−¥15.00" in text, text
    mei.screenshot(path=str(shots_dir(tmp_path) / "viewer-phone-coupon-checkout.png"))
    # the coupon is spent: the picker no longer offers it
    mei.wait_for_selector("#sale-coupon", state="hidden")


def test_pinned_danmaku_and_badges_on_both_pages(pages: Pages, room: str, tmp_path: Path) -> None:
    console = pages.console()
    vip = pages.viewer("mei", name="Mei")
    vip_token = token("mei", "viewer", name="Mei", badge="vip")
    vip.goto(f"{pages.node.http}/rooms/{room}?token={vip_token}")
    vip.wait_for_selector("body[data-conn=open]")
    fan = pages._page(f"{pages.node.http}/rooms/{room}?token={token('li', 'viewer', name='Li', badge='fan')}", DESKTOP)
    fan.wait_for_selector("body[data-conn=open]")
    vip.fill("#dm-input", "Is this year's harvest?")
    vip.click("#dm-send")
    # the badge next to the name, on the other viewer's chat and in the console feed, with a legend
    fan.wait_for_selector("#chat li .badge[data-badge=vip]")
    assert fan.inner_text("#chat li .badge[data-badge=vip]") == "VIP"
    assert "VIP member" in fan.inner_text("[data-legend=badges]")
    console.wait_for_selector("#feed li .badge[data-badge=vip]")
    assert "VIP member" in console.inner_text("[data-legend=badges]")
    # the host pins it from the console: it shows above every viewer's chat until unpinned
    console.click("#feed li:has(.badge[data-badge=vip]) button.pin")
    fan.wait_for_selector("#pinned:not([hidden])")
    assert "Is this year's harvest?" in fan.inner_text("#pinned")
    late = pages.viewer("tom", name="Tom")
    late.wait_for_selector("#pinned:not([hidden])")  # from the welcome state
    fan.screenshot(path=str(shots_dir(tmp_path) / "viewer-desktop-pinned-badges.png"))
    console.wait_for_selector("#pinned:not([hidden])")
    console.click("#unpin")
    fan.wait_for_selector("#pinned", state="hidden")
    late.wait_for_selector("#pinned", state="hidden")


def test_quiz_reveal_and_reward_and_lucky_bag_address_form(pages: Pages, room: str, tmp_path: Path) -> None:
    api = host_api(pages.node, room)
    console = pages.console()
    ann = pages.viewer("ann", name="Ann")
    api("POST", f"/rooms/{room}/polls", json={"question": "Where is Longjing from?",
                                              "options": ["Huangshan", "West Lake"], "duration_s": 120})
    ann.wait_for_selector("#poll:not([hidden]) .poll-option[data-option='1']")
    ann.click(".poll-option[data-option='1']")
    ann.wait_for_selector(".poll-option.voted[data-option='1']")
    console.wait_for_selector("#polls li .quiz button")
    console.click("#polls li .quiz button:has-text('West Lake')")
    ann.wait_for_selector(".poll-option.correct[data-option='1']")
    ann.wait_for_function("document.querySelector('#poll-msg').textContent.includes('Correct')")
    console.click("#polls li .quiz button:has-text('Reward')")
    console.wait_for_function("document.querySelector('#poll-out').textContent.includes('Rewarded 1: ann')")
    # a lucky bag with a coupon prize: the winner gets the address form
    lottery = api("POST", f"/rooms/{room}/lotteries", json={"prize": "A tin of tea", "winners": 1, "duration_s": 60,
                                                          "coupon": {"title": "Lucky", "amount": 300}}).json()["lottery"]
    ann.wait_for_selector("#lottery:not([hidden])")
    ann.click("#lottery-enter")
    ann.wait_for_function("document.querySelector('#lottery-enter').disabled")
    api("POST", f"/rooms/{room}/lotteries/{lottery['id']}/draw")
    ann.wait_for_selector("#winners-modal:not([hidden]) #claim-form:not([hidden])")
    assert "coupon is in My coupons" in ann.inner_text("#claim-msg")
    ann.fill("#claim-form [name=name]", "Ann Li")
    ann.fill("#claim-form [name=phone]", "13800000000")
    ann.fill("#claim-form [name=address]", "1 Lake Road, Hangzhou")
    ann.screenshot(path=str(shots_dir(tmp_path) / "viewer-phone-lucky-bag-claim.png"))
    ann.click("#claim-form button[type=submit]")
    ann.wait_for_function("document.querySelector('#claim-msg').textContent.includes('shipped')")
    claims = api("GET", f"/rooms/{room}/lotteries/{lottery['id']}/claims").json()
    assert claims["claims"][0]["address"] == "1 Lake Road, Hangzhou"
