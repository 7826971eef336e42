"""Peer (b): a bare `websockets` server using `broadcast()`, fanned out over Redis pub/sub.

The floor for this machine: no rooms, no auth, no batching, one Redis PUBLISH per
message and one `broadcast()` per delivery. Usage: python ws_broadcast.py PORT REDIS_URL
"""

import asyncio
import sys

import redis.asyncio as aioredis
from websockets.asyncio.server import broadcast, serve

CHANNEL = "bench:room"
CLIENTS: set = set()


async def main(port: int, redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)

    async def handler(ws):
        CLIENTS.add(ws)
        try:
            async for message in ws:  # anything a client sends is published to the room
                await r.publish(CHANNEL, message)
        finally:
            CLIENTS.discard(ws)

    async def relay():
        pubsub = r.pubsub()
        await pubsub.subscribe(CHANNEL)
        async for item in pubsub.listen():
            if item["type"] == "message":
                broadcast(CLIENTS, item["data"].decode())

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=None):
        print("ready", flush=True)
        await relay()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
