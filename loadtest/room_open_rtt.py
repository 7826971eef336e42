"""Redis round trips for one viewer joining a room that no node has open yet.

    python -m loadtest.room_open_rtt [--objects 50]

Starts a private redis-server and one node in this process (uvicorn), creates a room
with `--objects` commerce objects (sales, coupons, lotteries, polls in turn), then
counts every request the node sends to Redis (a pipeline or a script call is one round
trip) from the websocket connect until the welcome arrives. The tick and the scheduler
are held back so that only the join is counted. It imports the server by either
layout, so the same file measures the code before and after the redesign.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import httpx
import jwt
import websockets
from redis.asyncio.connection import AbstractConnection

SECRET = "rtt-secret-rtt-secret-rtt-secret-32"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _import(*names: str):  # type: ignore[no-untyped-def]
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(names)


def _token(role: str, user: str) -> str:
    return jwt.encode({"sub": user, "name": user, "role": role, "exp": 2**31}, SECRET, algorithm="HS256")


async def _measure(objects: int) -> dict[str, object]:
    import uvicorn

    app_module = _import("liveserver.edge.app", "liveserver.app")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app_module.create_app(), port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    base, room = f"http://127.0.0.1:{port}", "rtt"
    admin = {"Authorization": f"Bearer {_token('admin', 'admin')}"}
    async with httpx.AsyncClient(base_url=base + "/api/v1", headers=admin, timeout=10) as http:
        (await http.put(f"/rooms/{room}", json={"title": "rtt", "status": "live"})).raise_for_status()
        (await http.put(f"/rooms/{room}/products", json={"products": [{"id": "p1", "title": "Mug", "price": 100}]})).raise_for_status()
        bodies = [
            ("sales", {"product_id": "p1", "price": 100, "stock": 10, "duration_s": 600}),
            ("coupons", {"title": "5 off", "amount": 500, "quantity": 10, "duration_s": 600}),
            ("lotteries", {"prize": "TV", "winners": 1, "duration_s": 600}),
            ("polls", {"question": "?", "options": ["a", "b"], "duration_s": 600}),
        ]
        for i in range(objects):
            path, body = bodies[i % 4]
            (await http.post(f"/rooms/{room}/{path}", json=body)).raise_for_status()
    # A fresh node must open the room: restart the app so nothing is cached.
    server.should_exit = True
    await task
    server = uvicorn.Server(uvicorn.Config(app_module.create_app(), port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)

    counted: collections.Counter[str] = collections.Counter()
    original = AbstractConnection.send_packed_command

    async def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        first = command[0] if isinstance(command, (list, tuple)) else command
        raw = bytes(first)[:200]
        # The command name is the second bulk string of the first command.
        parts = raw.split(b"\r\n")
        name = parts[2].decode(errors="replace").upper() if len(parts) > 2 else "?"
        multi = isinstance(command, (list, tuple)) and len(command) > 1
        counted[f"{name}{' (pipeline)' if multi else ''}"] += 1
        return await original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/rooms/{room}?token={_token('viewer', 'v1')}",
                                      subprotocols=["lc1.json"]) as ws:  # type: ignore[list-item]
            welcome = await asyncio.wait_for(ws.recv(), 10)
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    assert '"welcome"' in str(welcome)
    server.should_exit = True
    await task
    return {"objects": objects, "round_trips": sum(counted.values()), "by_first_command": dict(counted)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=50)
    args = ap.parse_args()
    embedded = _import("liveserver.engine.embedded", "liveserver.embedded")
    tmp = Path(tempfile.mkdtemp(prefix="rtt-"))
    sock = tmp / "redis.sock"
    proc = subprocess.Popen([embedded.redis_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    os.environ.update(LIVESERVER_REDIS_URL=f"unix://{sock}?db=0", LIVESERVER_SECRET=SECRET,
                      LIVESERVER_TICK_MS="600000", LIVESERVER_SCHEDULER="0", LIVESERVER_DEMO="0")
    try:
        for _ in range(100):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        print(await _measure(args.objects))
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    asyncio.run(main())
