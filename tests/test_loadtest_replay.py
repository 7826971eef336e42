"""`liveload record` (a recording proxy) captures a room's inbound ops; `liveload replay`
plays them back with time compression and user multiplication, and the server sees the
recorded op counts times the scale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from harness import ROOT, SECRET, Client, Node, create_room, free_port, host_headers
from waiting import wait_until, wait_until_sync

PRODUCTS = [{"id": "mug", "title": "Mug", "price": 1299}]


def start_recorder(upstream: str, out: Path) -> tuple[subprocess.Popen[bytes], Node]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.cli", "record", "--upstream", upstream, "--out", str(out),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proxy = Node(port=port, env={})

    def ready() -> bool:
        try:
            return httpx.get(proxy.http + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until_sync(ready, timeout=15, interval=0.05, what="the recorder's /readyz")
    except AssertionError as e:
        proc.kill()
        raise RuntimeError("recorder did not start: " + proc.stderr.read().decode() if proc.stderr else "") from e
    return proc, proxy


async def test_replay_reproduces_recorded_op_counts(node: Node, room_name: str, tmp_path: Path) -> None:
    create_room(node, room_name, PRODUCTS)
    recording = tmp_path / "room.jsonl"
    proc, proxy = start_recorder(node.http, recording)
    try:
        r = httpx.post(f"{proxy.http}/api/v1/rooms/{room_name}/sales", headers=host_headers(),
                       json={"product_id": "mug", "price": 999, "stock": 100, "per_user_limit": 1, "start_in_s": 0, "duration_s": 600})
        assert r.status_code == 201, r.text
        sale = r.json()["sale"]["id"]
        clients = [await Client.connect(proxy, room_name, user=f"rec-{i}") for i in range(3)]
        for i, c in enumerate(clients):
            for j in range(2):
                assert (await c.request("danmaku", text=f"hi {i}.{j}"))["ok"]
            for _ in range(3):
                await c.send({"op": "like", "n": 2})
            reply = await c.request("buy", sale=sale, qty=1, key=f"k{i}")
            assert reply["ok"], reply
        for c in clients:
            await c.close()
        # the proxy writes `leave` when it sees the close: wait for all three
        await wait_until(lambda: recording.read_text().count('"kind":"leave"') >= 3, timeout=5, interval=0.05,
                         what="three `leave` lines in the recording")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    lines = [json.loads(x) for x in recording.read_text().splitlines()]
    ops = [x["frame"]["op"] for x in lines if x["kind"] == "op"]
    assert sorted(ops) == sorted(["danmaku"] * 6 + ["like"] * 9 + ["buy"] * 3)
    assert sum(1 for x in lines if x["kind"] == "host") == 1

    target = room_name[:40] + "-rp"
    create_room(node, target, PRODUCTS)
    result = subprocess.run([sys.executable, "-m", "loadtest.cli", "replay", str(recording), "--target", node.http,
                             "--speed", "4", "--scale", "2", "--room", target],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "LIVESERVER_SECRET": SECRET})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["recorded_ops"] == {"danmaku": 6, "like": 9, "buy": 3}
    assert summary["sent_ops"] == summary["expected_ops"] == {"danmaku": 12, "like": 18, "buy": 6}
    assert summary["replies"] == {"danmaku:ok": 12, "buy:ok": 6}
    assert summary["errors"] == 0 and summary["connections"] == 6
    # the buys went to the sale the replay created, not the recorded one
    assert summary["id_map"] and sale in summary["id_map"] and summary["id_map"][sale].startswith(target + ".")
    # ... and the server saw exactly the scaled counts
    def stats_once_liked() -> dict | None:  # likes are added per tick
        got = httpx.get(f"{node.http}/api/v1/rooms/{target}/stats", headers=host_headers(), timeout=5).json()
        return got if got["likes"] >= 36 else None

    stats = await wait_until(stats_once_liked, timeout=5, interval=0.1, what="the replayed likes to be counted")
    assert stats["likes"] == 2 * 9 * 2
    assert stats["danmaku"] == 12
    assert sum(s["reserved"] + s["paid"] for s in stats["sales"]) == 6
