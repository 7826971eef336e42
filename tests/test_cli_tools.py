"""`liveserver audit`, `verify-lottery`, `token` and `worker` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from harness import ROOT, Client, Node, RedisServer, admin_headers, create_room, node_env
from liveserver.engine.commerce_keys import CommerceKeys

PRODUCTS = [{"id": "tea", "title": "Tea", "price": 12800}]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "liveserver", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


async def test_audit_command_catches_a_breach(node: Node, room_name: str, redis_server: RedisServer) -> None:
    create_room(node, room_name, PRODUCTS)
    sale = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/sales", headers=admin_headers(), timeout=10,
                      json={"product_id": "tea", "price": 100, "stock": 10, "duration_s": 60}).json()["sale"]
    c = await Client.connect(node, room_name, user="buyer")
    assert (await c.request("buy", sale=sale["id"], qty=1, key="k"))["ok"]
    await c.close()
    env = node_env(redis_server.url)
    good = cli("audit", sale["id"], env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["ok"] is True
    # an oversell written behind the script's back must be caught
    redis_server.client().hincrby(CommerceKeys(room_name).sale(sale["id"]), "stock", 1)
    bad = cli("audit", sale["id"], env=env)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["problems"]
    missing = cli("audit", f"{room_name}.s999", env=env)
    assert missing.returncode == 2


async def test_verify_lottery_command(node: Node, room_name: str, tmp_path) -> None:
    create_room(node, room_name, PRODUCTS)
    lottery = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/lotteries", headers=admin_headers(), timeout=10,
                         json={"prize": "p", "winners": 1, "duration_s": 60}).json()["lottery"]
    for user in ("x", "y", "z"):
        c = await Client.connect(node, room_name, user=user)
        assert (await c.request("enter", lottery=lottery["id"]))["ok"]
        await c.close()
    httpx.post(f"{node.http}/api/v1/rooms/{room_name}/lotteries/{lottery['id']}/draw", headers=admin_headers(), timeout=10)
    url = f"{node.http}/api/v1/rooms/{room_name}/lotteries/{lottery['id']}"
    ok = cli("verify-lottery", "--url", url, env=node_env(None))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = httpx.get(url, timeout=10).json()
    loser = next(u for u in data["entrants_list"] if u not in data["result"]["winners"])
    data["result"]["winners"] = [loser]  # a forged result
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(data))
    bad = cli("verify-lottery", "--file", str(forged), env=node_env(None))
    assert bad.returncode == 1


def test_token_command_mints_a_working_token(node: Node, room_name: str) -> None:
    create_room(node, room_name, PRODUCTS)
    out = cli("token", "--user", "h1", "--role", "host", "--room", room_name, env=node_env(None))
    assert out.returncode == 0, out.stderr
    r = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/notices", json={"text": "hi"},
                   headers={"Authorization": f"Bearer {out.stdout.strip()}"}, timeout=10)
    assert r.status_code == 201, r.text
    assert cli("token", "--user", "x", env={k: v for k, v in node_env(None).items() if k != "LIVESERVER_SECRET"}).returncode == 2


async def test_worker_runs_jobs_when_nodes_do_not(start_node, redis_server: RedisServer, room_name: str) -> None:
    node = start_node(LIVESERVER_SCHEDULER="0")
    create_room(node, room_name, PRODUCTS)
    viewer = await Client.connect(node, room_name, user="w")
    at_ms = int(time.time() * 1000) + 500
    coupon = httpx.post(f"{node.http}/api/v1/rooms/{room_name}/coupons", headers=admin_headers(), timeout=10,
                        json={"title": "t", "amount": 100, "quantity": 5, "duration_s": 60, "at_ms": at_ms}).json()["coupon"]
    worker = subprocess.Popen([sys.executable, "-m", "liveserver", "worker"], env=node_env(redis_server.url), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        event = await viewer.wait_event("coupon", lambda e: e["coupon"]["id"] == coupon["id"], timeout=10)
        assert event["coupon"]["phase"] == "live"
    finally:
        worker.terminate()
        try:
            assert worker.wait(timeout=10) == 0  # SIGTERM stops it cleanly and soon
        finally:
            if worker.poll() is None:  # a failed stop must not leave a worker running
                worker.kill()
                worker.wait(5)
            await viewer.close()
