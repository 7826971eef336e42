"""The viewer page survives a server restart: it says it is reconnecting, keeps showing
the room, then resumes with `since`/`epoch` and shows what it missed while down."""

from __future__ import annotations

from playwright.sync_api import expect

from browserkit import BROWSER_ENV, PRODUCTS, Pages, host_api
from harness import Node, RedisServer, create_room, free_port, node_env


def test_viewer_page_survives_a_server_restart(browser, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = node_env(redis_server.url, **BROWSER_ENV)
    nodes = [Node(port=port, env=env).start()]
    room = "restart-room"
    pages = Pages(browser, nodes[0], room)
    try:
        create_room(nodes[0], room, PRODUCTS)
        viewer = pages.viewer("alice", name="Alice")
        host_api(nodes[0], room)("POST", f"/rooms/{room}/cards", json={"product_id": "tea"})
        host_api(nodes[0], room)("POST", f"/rooms/{room}/notices", json={"text": "before the restart"})
        expect(viewer.locator("#chat li", has_text="before the restart")).to_have_count(1)

        nodes[0].stop()  # SIGTERM: a graceful stop, like a deploy
        expect(viewer.locator("body")).to_have_attribute("data-conn", "reconnecting")
        expect(viewer.locator("#conn-banner")).to_have_text("Reconnecting…")
        # Never a blank page: the room stays on screen while the socket is away.
        expect(viewer.locator("#card-title")).to_have_text("West Lake Longjing tea, 250 g")

        # Something happens while this node is down (another node on the same Redis).
        helper = Node(port=free_port(), env=env).start()
        nodes.append(helper)
        host_api(helper, room)("POST", f"/rooms/{room}/notices", json={"text": "while you were away"})
        host_api(helper, room)("POST", f"/rooms/{room}/cards", json={"product_id": "scarf"})

        nodes.append(Node(port=port, env=env).start())  # the same port, Redis and settings
        expect(viewer.locator("body")).to_have_attribute("data-conn", "open", timeout=15_000)
        expect(viewer.locator("#conn-banner")).to_be_hidden()
        expect(viewer.locator("#chat li", has_text="while you were away")).to_have_count(1)
        expect(viewer.locator("#chat li.system", has_text="Reconnected.")).to_have_count(1)  # recovered, no gap
        expect(viewer.locator("#card-title")).to_have_text("Silk scarf")

        # ...and carries on with new events, with nothing shown twice.
        host_api(nodes[-1], room)("POST", f"/rooms/{room}/notices", json={"text": "after the restart"})
        expect(viewer.locator("#chat li", has_text="after the restart")).to_have_count(1)
        expect(viewer.locator("#chat li", has_text="before the restart")).to_have_count(1)
        expect(viewer.locator("#chat li", has_text="while you were away")).to_have_count(1)
        viewer.fill("#dm-input", "still here")
        viewer.press("#dm-input", "Enter")
        expect(viewer.locator("#chat li", has_text="still here")).to_have_count(1)
        assert not pages.errors, pages.errors
    finally:
        pages.close()
        for node in nodes:
            node.kill()
