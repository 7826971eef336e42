"""Decode once, encode once: the decoded frames of one source (aiortc decodes what it
receives) are encoded ONCE by one H.264 encoder, and each resulting packet goes to every
WHEP viewer (shared `av.Packet`s, see packets.py), to the live HLS window and to the
recording. Viewers never cost an encode.

Audio goes the same way (audio.py): decoded once, encoded once to Opus (for WHEP) and
once to AAC (for HLS).

Encoding and muxing run on one thread of their own per live, so the event loop (and
the aiortc transports on it) never waits for x264. Between the receiver and the encoder
sits a queue of 2 video frames (1 s of audio): when the encoder falls behind, the oldest
frame is dropped (and counted), nothing queues without bound.

Timestamps: aiortc gives each received track its own RTP clock with a random origin, so
each track is placed on one timeline by the arrival time of its first frame (audio and
video then line up to within the network jitter of that first frame).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Awaitable, Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from av.audio.resampler import AudioResampler

from liveserver.media.audio import RATE, AudioEncoders
from liveserver.media.compose import compose
from liveserver.media.encoder import H264Encoder, copy_packet, jpeg
from liveserver.media.health import IngestHealth
from liveserver.media.hls import HlsWriter
from liveserver.media.packets import Encoded, Fanout
from liveserver.media.server_deps import cancel_and_wait, timed
from liveserver.media.settings import MediaSettings

log = logging.getLogger("liveserver.media.pipeline")

FRAME_SLOTS = 2
AUDIO_SLOTS = 50  # 1 s of 20 ms frames
OnStart = Callable[[int, int], Awaitable[None]]
GUEST_STALE_S = 1.0  # a guest whose last frame is older is not drawn
GUEST_TIMEOUT_S = 2.5  # a guest silent this long is gone (removed well within 3 s)


GUEST_AUDIO_MAX = RATE * 2 // 5  # at most 200 ms of a guest's audio waits to be mixed (x2 channels)


class GuestSlot:
    """The latest decoded frame of one link-mic guest (drawn into every program frame) and
    its audio not yet mixed into the host's (s16 stereo 48 kHz, interleaved)."""

    __slots__ = ("frame", "at", "audio")

    def __init__(self) -> None:
        self.frame: av.VideoFrame | None = None
        self.at = 0.0
        self.audio = np.zeros(0, np.int16)


def s16_stereo(frame: av.AudioFrame) -> np.ndarray:
    """Interleaved s16 stereo samples of a decoded frame (aiortc's Opus decoder gives s16
    stereo 48 kHz; anything else is converted)."""
    if frame.format.name != "s16" or frame.layout.name != "stereo" or frame.sample_rate != RATE:
        frames = AudioResampler(format="s16", layout="stereo", rate=RATE).resample(frame)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames else np.zeros(0, np.int16)
    return frame.to_ndarray().reshape(-1)


def to_clock(frame: av.frame.Frame, rate: int) -> int | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return int(frame.pts * frame.time_base * rate)


class Pipeline:
    def __init__(self, settings: MediaSettings, live_dir: Path, rec_dir: Path, health: IngestHealth, on_start: OnStart) -> None:
        self.settings = settings
        self.live_dir = live_dir
        self.rec_dir = rec_dir
        self.health = health
        self.on_start = on_start
        self.fanout = Fanout()
        self.audio_fanout = Fanout()
        self.has_audio = False
        self.audio: AudioEncoders | None = None
        self.encoder: H264Encoder | None = None
        self.live_hls: HlsWriter | None = None
        self.rec_hls: HlsWriter | None = None
        self.started = asyncio.Event()
        self._slots: asyncio.Queue[tuple[av.VideoFrame, int] | None] = asyncio.Queue(maxsize=FRAME_SLOTS + 1)
        self._audio_slots: asyncio.Queue[tuple[av.AudioFrame, int] | None] = asyncio.Queue(maxsize=AUDIO_SLOTS + 1)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="media-encode")
        self._origin: float | None = None  # arrival time of the first frame of any track
        self._base: dict[str, int] = {}  # per kind: output pts - input pts
        self._last_pts = {"video": -1, "audio": -1}
        self._encode_task = asyncio.create_task(self._encode_loop(), name="media-encode")
        self._audio_task = asyncio.create_task(self._audio_loop(), name="media-encode-audio")
        self._tasks: set[asyncio.Task[None]] = set()
        self.guests: dict[str, GuestSlot] = {}  # link-mic guests by user
        self.composed_frames = 0
        self.compose_seconds = 0.0

    # -- input --------------------------------------------------------------------------
    def consume(self, track: MediaStreamTrack, on_end: Callable[[str], None]) -> None:
        """Read `track` until it ends; video is encoded, audio is read and dropped."""
        if track.kind == "audio":
            self.has_audio = True
        coro = self._read_video(track, on_end) if track.kind == "video" else self._read_audio(track)
        task = asyncio.create_task(coro, name=f"media-read-{track.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- link-mic guests ----------------------------------------------------------------------
    def add_guest(self, user: str, track: MediaStreamTrack, on_end: Callable[[str], None]) -> None:
        """Read a guest's track: video frames become its picture in the program; audio is
        mixed into the host's audio (when the host sends audio)."""
        coro = self._read_guest(user, track, on_end) if track.kind == "video" else self._read_guest_audio(user, track)
        task = asyncio.create_task(coro, name=f"media-guest-{track.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_guest_audio(self, user: str, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                slot = self.guests.get(user)
                if slot is None or not self.has_audio:
                    continue  # not (yet) in the picture, or no host audio to mix into
                slot.audio = np.concatenate([slot.audio, s16_stereo(frame)])[-GUEST_AUDIO_MAX:]
        except MediaStreamError:
            pass

    def _mix(self, frame: av.AudioFrame) -> av.AudioFrame:
        """The host's audio frame with every guest's waiting audio added (clipped)."""
        slots = [g for g in self.guests.values() if len(g.audio)]
        if not slots:
            return frame
        host = s16_stereo(frame)
        mixed = host.astype(np.int32)
        for slot in slots:
            take = slot.audio[:len(host)]
            slot.audio = slot.audio[len(take):]
            mixed[:len(take)] += take
        out = av.AudioFrame.from_ndarray(np.clip(mixed, -32768, 32767).astype(np.int16).reshape(1, -1),
                                         format="s16", layout="stereo")
        out.sample_rate = RATE
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    async def _read_guest(self, user: str, track: MediaStreamTrack, on_end: Callable[[str], None]) -> None:
        slot = self.guests[user] = GuestSlot()
        reason = "left"
        try:
            while self.guests.get(user) is slot:
                try:
                    frame = await asyncio.wait_for(track.recv(), GUEST_TIMEOUT_S)
                except (asyncio.TimeoutError, TimeoutError):
                    reason = "dropped"
                    break
                slot.frame, slot.at = frame, time.monotonic()
        except MediaStreamError:
            pass
        if self.guests.get(user) is slot:
            del self.guests[user]
            on_end(reason)

    def drop_guest(self, user: str) -> None:
        self.guests.pop(user, None)

    def _guest_frames(self) -> list[av.VideoFrame]:
        now = time.monotonic()
        return [g.frame for g in list(self.guests.values()) if g.frame is not None and now - g.at < GUEST_STALE_S]

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        # Every received track must be read, or aiortc's decoded frames pile up.
        try:
            while True:
                frame = await track.recv()
                if self.guests:  # link-mic: the guests' voices join the host's
                    frame = self._mix(frame)
                pts = self._stamp("audio", frame, RATE)
                if pts is None or self.encoder is None:  # no video yet: nothing to go with
                    continue
                while self._audio_slots.qsize() >= AUDIO_SLOTS:
                    self._audio_slots.get_nowait()
                self._audio_slots.put_nowait((frame, pts))
        except MediaStreamError:
            pass

    def _stamp(self, kind: str, frame: av.frame.Frame, rate: int) -> int | None:
        """The frame's pts on the live's timeline (`rate` Hz), increasing; None to skip it."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = now
        pts = to_clock(frame, rate)
        if pts is None:
            return None
        if kind not in self._base:
            self._base[kind] = round((now - self._origin) * rate) - pts
        out = pts + self._base[kind]
        if out <= self._last_pts[kind]:  # never go backwards (a source restarting its clock)
            out = self._last_pts[kind] + 1
        self._last_pts[kind] = out
        return out

    async def _read_video(self, track: MediaStreamTrack, on_end: Callable[[str], None]) -> None:
        reason = "ended"
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(track.recv(), self.settings.ingest_timeout_s)
                except (asyncio.TimeoutError, TimeoutError):
                    reason = "timeout"
                    break
                self.put(frame)
        except MediaStreamError:
            pass
        on_end(reason)

    def put(self, frame: av.VideoFrame) -> None:
        """Queue one decoded frame for the encoder, dropping the oldest if it is behind."""
        self.health.frame(frame.width, frame.height, bool(getattr(frame, "key_frame", False)))
        pts = self._stamp("video", frame, 90000)
        if pts is None:
            pts = self._last_pts["video"] + 90000 // self.settings.fps
            self._last_pts["video"] = pts
        while self._slots.qsize() >= FRAME_SLOTS:
            self._slots.get_nowait()
            self.health.dropped_frames += 1
        self._slots.put_nowait((frame, pts))

    # -- encode once ----------------------------------------------------------------------
    async def _encode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._slots.get()
            if job is None:
                break
            try:
                items, size = await loop.run_in_executor(self._pool, self._encode, *job)
            except Exception:
                log.exception("encoding a frame failed")
                continue
            for item in items:
                self.fanout.publish(item)
            if size is not None and not self.started.is_set():
                self.started.set()
                try:
                    await self.on_start(*size)
                except Exception:
                    log.exception("announcing the live failed")

    async def _audio_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._audio_slots.get()
            if job is None:
                break
            try:
                items = await loop.run_in_executor(self._pool, self._encode_audio, *job)
            except Exception:
                log.exception("encoding audio failed")
                continue
            for item in items:
                self.audio_fanout.publish(item)

    def _encode_audio(self, frame: av.AudioFrame, pts: int) -> list[Encoded]:
        if self.audio is None:
            return []
        writers = [w for w in (self.live_hls, self.rec_hls) if w is not None and len(w.streams) > 1]
        return self.audio.encode(frame, pts, writers)

    def _encode(self, frame: av.VideoFrame, pts: int) -> tuple[list[Encoded], tuple[int, int] | None]:
        """On the encoder thread: encode one frame, mux its packets, return them."""
        started = None
        if self.encoder is None:
            width, height = frame.width & ~1, frame.height & ~1
            s = self.settings
            self.encoder = H264Encoder(width, height, s.fps, s.keyint_s, s.bitrate, s.preset)
            if self.has_audio:
                self.audio = AudioEncoders()
            aac = self.audio.aac_stream if self.audio is not None else None
            self.live_hls = HlsWriter(self.live_dir, "live.m3u8", f"{self.live_dir.name}-seg", s.hls_time_s, s.hls_list_size,
                                      width=width, height=height, fps=s.fps, audio=aac)
            self.rec_hls = HlsWriter(self.rec_dir, "index.m3u8", "rec", s.hls_time_s, 0,
                                     width=width, height=height, fps=s.fps, audio=aac)
            poster = jpeg(frame)
            (self.rec_dir / "poster.jpg").write_bytes(poster)
            (self.live_dir / "poster.jpg").write_bytes(poster)
            started = (width, height)
        guests = self._guest_frames()
        if guests:  # link-mic: the program picture is host + guests, still one encode
            t = time.perf_counter()
            frame = compose(frame, guests, self.encoder.width, self.encoder.height, self.settings.linkmic_layout)
            self.compose_seconds += time.perf_counter() - t
            self.composed_frames += 1
        t0 = time.perf_counter()
        packets = self.encoder.encode(frame, pts)
        self.health.encode_seconds += time.perf_counter() - t0
        self.health.encoded_frames += 1
        return self._mux(packets), started

    def _mux(self, packets: list[av.Packet]) -> list[Encoded]:
        out = []
        for packet in packets:
            shared = copy_packet(packet)  # the one object every viewer's sender packs
            out.append(Encoded(shared, bool(packet.is_keyframe)))
            assert self.live_hls is not None and self.rec_hls is not None
            self.live_hls.write(copy_packet(packet))
            self.rec_hls.write(packet)
        return out

    def _finish(self) -> None:
        if self.encoder is not None:
            self._mux(self.encoder.flush())
        for writer in (self.live_hls, self.rec_hls):
            if writer is not None:
                writer.close()

    # -- end -------------------------------------------------------------------------------
    async def close(self) -> None:
        # The track readers first, through cancel_and_wait, which repeats its cancel:
        # Python 3.11's wait_for loses a cancel that comes as a frame arrives (often, at
        # 30 fps), and a reader then read on until the publisher left (25 s in CI, after
        # the DELETE). Only then the end markers: a reader still running could drop them.
        await timed("the pipeline's readers ending", cancel_and_wait(*self._tasks))
        for slots in (self._slots, self._audio_slots):
            while not slots.empty():
                slots.get_nowait()
            slots.put_nowait(None)  # type: ignore[arg-type]
        await timed("the pipeline's encoders ending",
                    asyncio.gather(self._encode_task, self._audio_task, return_exceptions=True))
        self.fanout.close()
        self.audio_fanout.close()
        await timed("flushing the encoder and closing HLS",
                    asyncio.get_running_loop().run_in_executor(self._pool, self._finish))
        self._pool.shutdown(wait=False)


