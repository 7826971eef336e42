"""Baseline peer for `liveload bench joins`: a bare `websockets` server that answers every
connection with ONE binary frame of SIZE bytes (the size of liveserver's welcome), then
idles until the client goes. No auth, no Redis, no rooms: what a websocket handshake plus
one frame costs on this box. Usage: python ws_hello.py PORT SIZE
"""

import asyncio
import resource
import sys

from websockets.asyncio.server import serve


async def main(port: int, size: int) -> None:
    frame = b"w" * size

    async def handler(ws):
        await ws.send(frame)
        await ws.wait_closed()

    # backlog as uvicorn's (2048); asyncio's default of 100 would drop SYNs in a storm.
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=None, backlog=2048):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
