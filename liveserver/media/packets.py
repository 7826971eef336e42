"""Encoded packets out to WHEP viewers: one shared `av.Packet` per encoded frame, handed
to every viewer's sender, which only packetizes it (`encoder.pack`), never encodes.

A viewer starts at a keyframe and has a bounded queue: when it is full, the queue is
emptied and the viewer waits for the next keyframe (never grows, never shows a broken
picture)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


@dataclass(frozen=True, slots=True)
class Encoded:
    packet: av.Packet
    keyframe: bool


class PacketTrack(MediaStreamTrack):
    """A track whose `recv()` returns pre-encoded packets (H.264 or Opus, like
    `MediaPlayer(decode=False)`), fed by `offer()` from the shared encoder."""

    def __init__(self, limit: int, kind: str = "video") -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[Encoded | None] = asyncio.Queue(maxsize=limit)
        self.waiting_key = True
        self.sent = 0
        self.dropped = 0
        self.resets = 0

    def offer(self, item: Encoded) -> None:
        if self.readyState != "live":
            return
        if self.waiting_key:
            if not item.keyframe:
                self.dropped += 1
                return
            self.waiting_key = False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Too slow: start again at the next keyframe rather than queue more.
            self.dropped += self._queue.qsize() + 1
            self.resets += 1
            while not self._queue.empty():
                self._queue.get_nowait()
            self.waiting_key = True

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            raise MediaStreamError
        self.sent += 1
        return item.packet

    def stop(self) -> None:
        if self.readyState == "live":
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        super().stop()


class Fanout:
    """The set of packet consumers of one rendition."""

    def __init__(self) -> None:
        self.tracks: set[PacketTrack] = set()

    def add(self, track: PacketTrack) -> None:
        self.tracks.add(track)

    def discard(self, track: PacketTrack) -> None:
        self.tracks.discard(track)

    def publish(self, item: Encoded) -> None:
        for track in self.tracks:
            track.offer(item)

    def close(self) -> None:
        for track in list(self.tracks):
            track.stop()
        self.tracks.clear()
