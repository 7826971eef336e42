"""Peer (d): python-socketio with AsyncRedisManager, served by uvicorn (ASGI).

Every client joins one room; a `pub` event is emitted to the room through Redis.
Usage: python psio_server.py PORT REDIS_URL
"""

import sys

import socketio
import uvicorn

port, redis_url = int(sys.argv[1]), sys.argv[2]
sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(redis_url),
                           cors_allowed_origins="*", transports=["websocket"])
app = socketio.ASGIApp(sio)


@sio.event
async def connect(sid, environ):
    await sio.enter_room(sid, "room")


@sio.on("pub")
async def pub(sid, data):
    await sio.emit("msg", data, room="room")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", http="httptools",
                ws="websockets-sansio", ws_per_message_deflate=False)
