"""Real WebRTC peers for the media tests: an aiortc WHIP publisher of a lavfi test
pattern and an aiortc WHEP viewer that decodes what it gets. Every wait is bounded."""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack, rtcrtpreceiver
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def h264_only(transceiver: Any) -> None:
    caps = RTCRtpSender.getCapabilities("video")
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")])


def sdp_headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@dataclass
class Publisher:
    pc: RTCPeerConnection
    response: httpx.Response
    player: MediaPlayer | None = None

    @property
    def location(self) -> str:
        return self.response.headers["location"]

    async def close(self) -> None:
        await self.pc.close()
        if self.player is not None and self.player.video is not None:
            self.player.video.stop()


async def offer_sdp(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


def without_candidates(sdp: str) -> str:
    """The offer as OBS 30.2+ sends it: no candidates (and it takes none trickled)."""
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith(("a=candidate:", "a=end-of-candidates")))


async def publish(url: str, token: str | None, size: str = "640x360", audio: bool = True,
                  like_obs: bool = False) -> Publisher:
    """WHIP-publish testsrc (+ a sine) through `url` (307s followed); raises on non-201.
    `like_obs`: send the offer without any candidate."""
    pc = new_pc()
    player = MediaPlayer(f"testsrc=size={size}:rate=30", format="lavfi")
    h264_only(pc.addTransceiver(player.video, direction="sendonly"))
    if audio:
        tone = MediaPlayer("sine=frequency=440:sample_rate=48000", format="lavfi")
        pc.addTransceiver(tone.audio, direction="sendonly")
    sdp = await offer_sdp(pc)
    if like_obs:
        sdp = without_candidates(sdp)
        assert "a=candidate" not in sdp
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as http:
        r = await http.post(url, content=sdp, headers=sdp_headers(token))
    if r.status_code != 201:
        await pc.close()
        player.video.stop()
        raise AssertionError(f"WHIP POST: {r.status_code} {r.text}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return Publisher(pc, r, player)


@dataclass
class Viewer:
    pc: RTCPeerConnection
    response: httpx.Response
    frames: int = 0
    audio_frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    want: int = 60
    first_frame_at: float | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _read(self, track: Any) -> None:
        loop = asyncio.get_running_loop()
        if track.kind == "audio":
            try:
                while True:
                    await track.recv()
                    self.audio_frames += 1
            except MediaStreamError:
                return
        try:
            while True:
                frame = await track.recv()
                if self.first_frame_at is None:
                    self.first_frame_at = loop.time()
                self.frames += 1
                self.sizes.add((frame.width, frame.height))
                if self.frames >= self.want:
                    self.got.set()
        except MediaStreamError:
            pass

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()


async def watch(url: str, token: str | None = None, want: int = 60, audio: bool = False) -> Viewer:
    """WHEP-watch through `url`; raises on non-201."""
    pc = new_pc()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    sdp = await offer_sdp(pc)
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as http:
        r = await http.post(url, content=sdp, headers=sdp_headers(token))
    if r.status_code != 201:
        await pc.close()
        raise AssertionError(f"WHEP POST: {r.status_code} {r.text}")
    viewer = Viewer(pc, r, want=want)

    @pc.on("track")
    def on_track(track: Any) -> None:
        viewer.tasks.append(asyncio.ensure_future(viewer._read(track)))

    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return viewer


class ColourTrack(VideoStreamTrack):
    """Solid-colour frames (cheap for a publisher that only needs to exist)."""

    def __init__(self, width: int = 320, height: int = 180) -> None:
        super().__init__()
        self.width, self.height = width, height

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


def decode_segment(data: bytes) -> list[tuple[int, int]]:
    """(width, height) of every frame decoded from one MPEG-TS segment."""
    import io

    with av.open(io.BytesIO(data), format="mpegts") as container:
        return [(f.width, f.height) for f in container.decode(video=0)]


def segment_codec(data: bytes) -> dict[str, Any]:
    import io

    with av.open(io.BytesIO(data), format="mpegts") as container:
        s = container.streams.video[0]
        return {"codec": s.codec_context.name, "width": s.codec_context.width, "height": s.codec_context.height,
                "profile": s.codec_context.profile, "time_base": fractions.Fraction(s.time_base)}


def segment_audio(data: bytes) -> str | None:
    """The codec of the audio of one MPEG-TS segment (None: no audio), once it decodes."""
    import io

    with av.open(io.BytesIO(data), format="mpegts") as container:
        if not container.streams.audio:
            return None
        assert len(list(container.decode(audio=0))) >= 30  # ~47 AAC frames a second
        return container.streams.audio[0].codec_context.name


class SlowDecoder:
    """aiortc's own decoder, 100 ms a frame: a receiver on a box too busy to keep up."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.errors = 0

    def decode(self, frame: Any) -> Any:
        time.sleep(0.1)
        try:
            return self.real.decode(frame)
        except av.FFmpegError:
            self.errors += 1
            raise


def slow_decoders(monkeypatch: Any) -> list[SlowDecoder]:
    """Make every aiortc receiver's decoder a SlowDecoder from now on; the list fills with them."""
    made: list[SlowDecoder] = []
    real_get_decoder = rtcrtpreceiver.get_decoder

    def slow(codec: Any) -> SlowDecoder:
        made.append(SlowDecoder(real_get_decoder(codec)))
        return made[-1]

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", slow)
    return made


@dataclass
class LocalPair:
    """An aiortc publisher of testsrc and a server-side peer answered by the media
    process's own `webrtc.answer`, in this process; `frames` holds (time, keyframe,
    size) of each frame the server decoded."""

    publisher: RTCPeerConnection
    server: RTCPeerConnection
    player: MediaPlayer
    frames: list[tuple[float, bool, tuple[int, int]]] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(cls) -> "LocalPair":
        from liveserver.media import webrtc

        player = MediaPlayer("testsrc=size=320x240:rate=30", format="lavfi")
        pair = cls(new_pc(), new_pc(), player)
        h264_only(pair.publisher.addTransceiver(player.video, direction="sendonly"))
        pair.server.on("track", pair._on_track)
        sdp = await webrtc.answer(pair.server, await offer_sdp(pair.publisher))
        await pair.publisher.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        return pair

    def _on_track(self, track: Any) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    self.frames.append((time.monotonic(), bool(frame.key_frame), (frame.width, frame.height)))
                    self.first.set()
            except MediaStreamError:
                self.ended.set()

        asyncio.ensure_future(read())

    async def close(self) -> None:
        await self.publisher.close()
        await self.server.close()
        self.player.video.stop()
