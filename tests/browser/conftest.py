"""Browser fixtures: Debian's Chromium driven by Playwright (sync API), and one real
liveserver node (on the session's private Redis) shared by the tests of a module.

Each test gets its own room, so tests sharing the node do not see each other.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

import pytest

from browserkit import BROWSER_ENV, CHROMIUM, CHROMIUM_ARGS, PRODUCTS, Pages
from harness import Node, RedisServer, create_room, free_port, node_env

_rooms = itertools.count(1)

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


# Module scope, not session: the sync API keeps an event loop marked running while it is
# alive, and the asyncio tests that run after this folder need it gone.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_instance):  # type: ignore[no-untyped-def]
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def live_node(redis_server: RedisServer) -> Iterator[Node]:
    """One node for a module's browser tests (the blocked word is `badword`)."""
    node = Node(port=free_port(), env=node_env(redis_server.url, **BROWSER_ENV)).start()
    yield node
    node.kill()


@pytest.fixture
def room(live_node: Node) -> str:
    name = f"b{next(_rooms)}-{os.getpid()}"
    create_room(live_node, name, PRODUCTS)
    return name


@pytest.fixture
def pages(browser, live_node: Node, room: str) -> Iterator[Pages]:  # type: ignore[no-untyped-def]
    p = Pages(browser, live_node, room)
    yield p
    p.close()
    assert not p.errors, f"JavaScript errors on the pages: {p.errors}"
