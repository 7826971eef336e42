"""The Cluster key layout and URL forms (no Redis needed), and a check on the session's
real Cluster that no command the layout builds crosses slots."""

from __future__ import annotations

import pytest
import redis

from harness import RedisClusterServers
from liveserver.engine.commerce_keys import JOBS_DUE, JOBS_LEASE, SWEEP_ROOMS, CommerceKeys, JobKeys
from liveserver.engine.connect import cluster_url
from liveserver.engine.keys import CLUSTER_BUCKETS, ROOMS_INDEX, Layout, RoomKeys


def test_cluster_urls() -> None:
    assert cluster_url("redis+cluster://10.0.0.5:7000") == "redis://10.0.0.5:7000"
    assert cluster_url("rediss+cluster://u:p@h:7000/0?x=1") == "rediss://u:p@h:7000/0?x=1"
    assert cluster_url("REDIS+CLUSTER://h:1") == "redis://h:1"
    for plain in ["redis://h:6380/0", "rediss://h:6380", "unix:///tmp/r.sock?db=0", "redis+cluster", ""]:
        assert cluster_url(plain) is None


def test_one_redis_keeps_the_old_global_keys() -> None:
    one = Layout()
    assert one.rooms_index("any") == ROOMS_INDEX and one.rooms_indexes() == [ROOMS_INDEX]
    assert JobKeys.of_room(one, "any") == JobKeys(JOBS_DUE, JOBS_LEASE, SWEEP_ROOMS)
    assert JobKeys.all(one) == [JobKeys(JOBS_DUE, JOBS_LEASE, SWEEP_ROOMS)]


def test_cluster_buckets_have_their_own_hash_tags() -> None:
    c = Layout.for_cluster()
    assert len(c.rooms_indexes()) == CLUSTER_BUCKETS == len(JobKeys.all(c))
    rooms = [f"room{i}" for i in range(200)]
    assert {c.bucket(r) for r in rooms} == set(range(CLUSTER_BUCKETS))  # spread over every bucket
    assert all(c.bucket(r) == c.bucket(r) for r in rooms)
    sched = JobKeys.of_room(c, "room7")
    b = c.bucket("room7")
    assert (sched.due, sched.lease, sched.sweep_rooms) == (f"lc:{{jobs:{b}}}:due", f"lc:{{jobs:{b}}}:lease",
                                                           f"lc:{{jobs:{b}}}:sweep-rooms")
    assert c.rooms_index("room7") == f"lc:{{rooms:{b}}}"


def test_keys_of_one_script_share_a_slot(redis_cluster: RedisClusterServers) -> None:
    r = redis_cluster.nodes[0].client()

    def slot(key: str) -> int:
        return int(r.execute_command("CLUSTER", "KEYSLOT", key))

    keys = CommerceKeys("shop-1")
    assert len({slot(k) for k in keys.buy_keys("shop-1.s1")}) == 1
    assert len({slot(k) for k in [RoomKeys("shop-1").events, RoomKeys("shop-1").meta, keys.claims("u")]}) == 1
    sched = JobKeys.of_room(Layout.for_cluster(), "shop-1")
    assert slot(sched.due) == slot(sched.lease)  # jobs_claim.lua's two keys
    # and the global buckets really land on different slots (and shards)
    assert len({slot(k) for k in Layout.for_cluster().rooms_indexes()}) == CLUSTER_BUCKETS
    assert isinstance(redis_cluster.client(), redis.RedisCluster)


async def test_cluster_transactions_run_in_the_callers_loop(redis_cluster: RedisClusterServers,
                                                            monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """redis-py 8's asyncio ClusterPipeline(transaction=True) runs each queued command in a
    new thread with its own event loop (and re-reads the slot map there, poisoning the
    client's locks for the real loop). Ours queues with redis-py's command methods and
    sends MULTI/EXEC on the slot's primary from the caller's loop, with the usual replies."""
    import threading

    from redis.asyncio import RedisCluster

    from liveserver.engine.transaction import transaction

    started: list[threading.Thread] = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self), real_start(self))[1])
    client = RedisCluster.from_url(redis_cluster.url.replace("redis+cluster", "redis"), decode_responses=True)
    try:
        key = "lc:{txtest}:h"
        tx = transaction(client)
        tx.delete(key, "lc:{txtest}:z")
        tx.hset(key, mapping={"a": "1", "b": "2"})
        tx.hsetnx(key, "a", "9")
        tx.zadd("lc:{txtest}:z", {"m": 5}, nx=True)
        tx.zadd("lc:{txtest}:z", {"m": 2}, incr=True)
        tx.hgetall(key)
        deleted, added, set_nx, zadded, score, everything = await tx.execute()
        assert (added, set_nx, zadded, score) == (2, False, 1, 7.0)
        assert everything == {"a": "1", "b": "2"}
        assert started == []  # no thread, no second event loop
        # A command that fails inside EXEC is raised (as redis-py's pipeline does).
        bad = transaction(client)
        bad.hincrby(key, "a", 1)
        bad.zadd(key, {"x": 1})  # WRONGTYPE: the key is a hash
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await bad.execute()
    finally:
        await client.aclose()
