"""The JS modules in protocol/js, run in Chromium: the msgpack codec against the shared
protocol vectors, and the lottery check against liveserver's own draw."""

from __future__ import annotations

import base64
import json
import secrets

import msgpack
import pytest

from harness import ROOT, Node
from liveserver.commerce import lottery_verify

VECTORS = ROOT / "protocol" / "vectors"


@pytest.fixture
def js_page(browser, live_node: Node):  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_node.http}/healthz")  # any page of the server: modules load from its origin
    yield page
    context.close()


def test_msgpack_module_decodes_every_server_vector_and_encodes_client_frames(js_page) -> None:  # type: ignore[no-untyped-def]
    server = [v for v in json.loads((VECTORS / "server_frames.json").read_text()) if v["codec"] == "lc1.msgpack"]
    client = [v for v in json.loads((VECTORS / "client_frames.json").read_text())
              if v["codec"] == "lc1.msgpack" and isinstance(v.get("expect"), dict) and "op" in v["expect"]]
    assert server and client
    decoded = js_page.evaluate(
        """async (inputs) => {
            const m = await import('/protocol/js/msgpack.js');
            const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            return inputs.map((b64) => m.decode(bytes(b64)));
        }""",
        [v["input"] for v in server],
    )
    for vector, got in zip(server, decoded):
        assert got == vector["expect"], vector["name"]
    encoded = js_page.evaluate(
        """async (frames) => {
            const m = await import('/protocol/js/msgpack.js');
            return frames.map((f) => btoa(String.fromCharCode(...m.encode(f))));
        }""",
        [v["expect"] for v in client],
    )
    for vector, b64 in zip(client, encoded):
        assert msgpack.unpackb(base64.b64decode(b64), raw=False) == vector["expect"], vector["name"]


def test_lottery_verify_module_matches_the_server_draw(js_page) -> None:  # type: ignore[no-untyped-def]
    seed = lottery_verify.new_seed()
    entrants = [f"user-{secrets.token_hex(3)}" for _ in range(40)] + ["ünïcødé-用户"]
    winners = lottery_verify.draw(seed, entrants, 5)
    commit = lottery_verify.commit_of(seed)
    result = js_page.evaluate(
        """async ({seed, commit, entrants, winners}) => {
            const v = await import('/protocol/js/lottery_verify.js');
            const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
            const enc = new TextEncoder();
            const good = await v.verify({seed, commit, entrants, n: 5, winners});
            const bad = await v.verify({seed, commit, entrants, n: 5, winners: [...winners].reverse()});
            const ticket = await v.ticketer(seed);
            return {
                good, bad,
                // the pure-JS fallback (for pages outside a secure context) agrees with WebCrypto
                sha: hex(v.sha256(enc.encode(seed))) === await v.sha256Hex(seed),
                hmac: hex(v.hmacSha256(enc.encode(seed), enc.encode(entrants[0]))) === await ticket(entrants[0]),
                longKey: hex(v.hmacSha256(enc.encode(seed.repeat(3)), enc.encode('x'))),
            };
        }""",
        {"seed": seed, "commit": commit, "entrants": entrants, "winners": winners},
    )
    assert result["good"]["ok"] is True and result["good"]["expected"] == winners
    assert result["bad"]["ok"] is False and result["bad"]["commitOk"] is True
    assert result["sha"] is True and result["hmac"] is True
    assert result["longKey"] == lottery_verify.ticket(seed * 3, "x")
