"""Shared by the browser tests and tests/browser/screenshots.py: Chromium settings, the
demo products, a page opener, and a direct host-API caller for setting up scenes."""

from __future__ import annotations

import os
from typing import Callable

import httpx

from harness import Node, token

CHROMIUM = os.environ.get("LIVESERVER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Background tabs must keep their timers running: several pages are open at once.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
BROWSER_ENV = {"LIVESERVER_BLOCKED_WORDS": "badword"}

PRODUCTS = [
    {"id": "tea", "title": "West Lake Longjing tea, 250 g", "price": 12800,
     "image": "/static/products/tea.svg", "points": ["spring harvest", "hand roasted"]},
    {"id": "mug", "title": "Celadon mug", "price": 5900, "image": "/static/products/mug.svg", "points": ["dishwasher safe"]},
    {"id": "scarf", "title": "Silk scarf", "price": 19900, "image": "/static/products/scarf.svg", "points": ["mulberry silk"]},
]

class Pages:
    """Opens viewer pages and consoles in fresh browser contexts; closes them all at the end."""

    def __init__(self, browser, node: Node, room: str) -> None:  # type: ignore[no-untyped-def]
        self.browser = browser
        self.node = node
        self.room = room
        self.contexts: list = []
        self.errors: list[str] = []

    def _page(self, url: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
        context = self.browser.new_context(viewport=viewport, device_scale_factor=1)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{url}: {exc}"))
        page.goto(url)
        return page

    def viewer(self, user: str | None, viewport: dict[str, int] = PHONE, name: str | None = None, wait: bool = True,
               codec: str = "json"):  # type: ignore[no-untyped-def]
        query = [f"codec={codec}"] if codec != "json" else []
        if user is not None:
            query.append(f"token={token(user, 'viewer', name=name or user)}")
        url = f"{self.node.http}/rooms/{self.room}" + ("?" + "&".join(query) if query else "")
        page = self._page(url, viewport)
        if wait:
            page.wait_for_selector("body[data-conn=open]", timeout=10_000)
        return page

    def console(self, viewport: dict[str, int] = DESKTOP, wait: bool = True):  # type: ignore[no-untyped-def]
        url = f"{self.node.http}/console/{self.room}?token={token('host-1', 'host', name='Host', room=self.room)}"
        page = self._page(url, viewport)
        if wait:
            page.wait_for_selector("#conn[data-status=open]", timeout=10_000)
            page.wait_for_selector("#products-body tr", timeout=10_000)
        return page

    def close(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Exception:
                pass


def host_api(node: Node, room: str) -> Callable[..., httpx.Response]:
    """A host API caller for setting things up directly (the console is tested elsewhere)."""
    headers = {"Authorization": f"Bearer {token('host-1', 'host', room=room)}"}

    def call(method: str, path: str, **kw: object) -> httpx.Response:
        r = httpx.request(method, f"{node.http}/api/v1{path}", headers=headers, timeout=5, **kw)  # type: ignore[arg-type]
        assert r.status_code < 300, r.text
        return r

    return call
