"""Peer (e): Django Channels with channels_redis (RedisChannelLayer), served by uvicorn.

One consumer per websocket; every client is in group "room"; a text frame from any
client is `group_send` to the room. Usage: python -m uvicorn ... (see bench/peers.py);
the Redis URL comes from BENCH_REDIS_URL.
"""

import os

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                    "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]], "capacity": 1000}}},
    )
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class RoomConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add("room", self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard("room", self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send("room", {"type": "room.msg", "text": text_data})

    async def room_msg(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", RoomConsumer.as_asgi())])})
