"""The lives this media process runs: per room, one source (WHIP or RTMP), its pipeline,
its WHEP viewers; ownership of the room in Redis (heartbeated), `state.media` + the
`media` event when the live starts and stops, the recording when it ends."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aiortc import RTCPeerConnection

from liveserver.engine.linkmic_store import LinkmicStore
from liveserver.engine.media_store import MediaStore, offline_state

from liveserver.media.decodequeue import dropped_frames
from liveserver.media.health import IngestHealth
from liveserver.media.packets import PacketTrack
from liveserver.media.pipeline import Pipeline
from liveserver.media.sdp import OfferError
from liveserver.media.server_deps import Cohost, cancel_and_wait, timed
from liveserver.media.settings import MediaSettings
from liveserver.media.webrtc import add_h264_sender, add_opus_sender, answer, close_pc, new_pc

log = logging.getLogger("liveserver.media")

RESTART_WAIT_S = 15.0  # a new publish of a room waits this long for its old live's teardown


class Busy(Exception):
    """The room already has a live source (here or on another media process)."""


class NotLive(Exception):
    pass


class Refused(Exception):
    """A co-host token that was used already, or revoked (the host ended the link-mic)."""


@dataclass(eq=False)
class GuestSession:
    """A link-mic guest publishing through WHIP with its co-host token."""

    id: str
    room: str
    user: str
    name: str
    pc: RTCPeerConnection
    started: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class WhepViewer:
    id: str
    pc: RTCPeerConnection
    track: PacketTrack
    audio: PacketTrack | None = None


@dataclass(eq=False)
class Live:
    room: str
    id: str  # also the folder of its live segments and of its recording
    session: str  # the WHIP/RTMP session id (unguessable: the resource URL)
    kind: str
    health: IngestHealth
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    pc: RTCPeerConnection | None = None
    pipeline: Pipeline | None = None
    stopper: Callable[[], Any] | None = None  # RTMP: stops the remux
    viewers: dict[str, WhepViewer] = field(default_factory=dict)
    media: dict[str, Any] = field(default_factory=dict)  # state.media while live
    ended: "asyncio.Task[None] | None" = None  # the end's teardown (MediaRooms.end), once started
    guests: dict[str, GuestSession] = field(default_factory=dict)  # link-mic guests by user

    @property
    def ending(self) -> bool:
        return self.ended is not None


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ending a live failed", exc_info=task.exception())


class MediaRooms:
    def __init__(self, settings: MediaSettings, store: MediaStore, linkmic: LinkmicStore | None = None) -> None:
        self.settings = settings
        self.store = store
        self.linkmic = linkmic
        self.lives: dict[str, Live] = {}
        self.sessions: dict[str, Live] = {}
        self.guest_sessions: dict[str, GuestSession] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return self.settings.public_url

    def room_dir(self, room: str) -> Path:
        return self.settings.media_dir / room

    def live_dir(self, room: str, live_id: str) -> Path:
        return self.room_dir(room) / "live" / live_id

    def rec_dir(self, room: str, live_id: str) -> Path:
        return self.room_dir(room) / "rec" / live_id

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._beat(), name="media-heartbeat")

    async def stop(self) -> None:
        await cancel_and_wait(self._heartbeat)
        await asyncio.gather(*(self.end(room, "shutdown") for room in list(self.lives)), return_exceptions=True)

    async def _beat(self) -> None:
        period = self.settings.owner_ttl_ms / 3000
        while True:
            await asyncio.sleep(min(1.0, period))
            for live in list(self.lives.values()):
                live.health.sample()
                if live.pc is not None:
                    await self._poll_stats(live)
                try:
                    if not await self.store.refresh(live.room, self.url, self.settings.owner_ttl_ms):
                        log.warning("lost the ownership of %s", live.room)
                    if live.guests and self.linkmic is not None:  # the host ended a link-mic
                        accepted = await self.linkmic.guests(live.room)
                        for guest in [g for u, g in live.guests.items() if u not in accepted]:
                            await self.remove_guest(guest, "ended", announce=False)
                except Exception as exc:
                    log.warning("heartbeat for %s failed: %s", live.room, exc)

    async def _poll_stats(self, live: Live) -> None:
        assert live.pc is not None
        try:
            report = await live.pc.getStats()
        except Exception:
            return
        received = lost = 0
        for stats in report.values():
            if stats.type == "transport":
                received += int(getattr(stats, "bytesReceived", 0) or 0)
            elif stats.type == "inbound-rtp":
                lost += int(getattr(stats, "packetsLost", 0) or 0)
        live.health.bytes_in, live.health.packets_lost = received, lost
        live.health.decode_dropped = dropped_frames(live.pc.getReceivers())

    # -- a source starts --------------------------------------------------------------------
    async def _reserve(self, room: str, kind: str) -> Live:
        previous = self.lives.get(room)
        if previous is not None and previous.ended is not None:
            # A publisher that stops and starts again at once: its new live waits for the
            # old one's teardown (a DELETE answers before that may be done).
            await asyncio.wait([previous.ended], timeout=RESTART_WAIT_S)
        if room in self.lives:
            raise Busy("this room is already live")
        owner = await self.store.claim(room, self.url, self.settings.owner_ttl_ms)
        if owner != self.url or room in self.lives:
            raise Busy("this room is already live on another media process")
        live = Live(room, secrets.token_hex(6), secrets.token_urlsafe(24), kind, IngestHealth(kind))
        self.lives[room] = live
        self.sessions[live.session] = live
        return live

    async def start_whip(self, room: str, offer: str) -> tuple[Live, str]:
        live = await self._reserve(room, "whip")
        try:
            pc = live.pc = new_pc(self.settings)
            live.pipeline = Pipeline(self.settings, self.live_dir(room, live.id), self.rec_dir(room, live.id),
                                     live.health, lambda w, h: self._announce(live, w, h))

            @pc.on("track")
            def on_track(track: Any) -> None:
                assert live.pipeline is not None
                live.pipeline.consume(track, lambda reason: self._end_soon(room, live, f"track {reason}"))

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self._end_soon(room, live, f"connection {pc.connectionState}")

            sdp = await answer(pc, offer)
            return live, sdp
        except Exception as exc:
            await self.end(room, "bad offer")
            raise OfferError(400, f"cannot answer this offer: {exc}") from None

    async def start_rtmp(self, room: str, stopper: Callable[[], Any]) -> Live:
        live = await self._reserve(room, "rtmp")
        live.stopper = stopper
        return live

    def hls_url(self, room: str) -> str:
        return f"{self.url}/media/{room}/live.m3u8"

    async def _announce(self, live: Live, width: int, height: int) -> None:
        if live.ending or self.lives.get(live.room) is not live:
            return  # ended before its first frame came out of the encoder
        live.media = {
            "live": True,
            "hls": self.hls_url(live.room),
            "whep": f"{self.url}/api/v1/rooms/{live.room}/whep" if live.kind == "whip" else None,
            "poster": f"{self.url}/media/{live.room}/poster.jpg?v={live.id}",
            "width": width,
            "height": height,
            "source": live.kind,
            "id": live.id,
            "started_ms": live.started_ms,
        }
        await self.store.set_state(live.room, live.media)

    async def announce_rtmp(self, live: Live, width: int, height: int) -> None:
        await self._announce(live, width, height)

    # -- a source ends ------------------------------------------------------------------------
    def _end_soon(self, room: str, live: Live, reason: str) -> None:
        if self.lives.get(room) is live:
            self._start_end(room, reason)  # a no-op when its end has started already

    def _start_end(self, room: str, reason: str) -> "tuple[Live, bool] | None":
        """The live of `room` and whether this call started its end (None: no live).
        The teardown runs as a task of its own: a caller that goes away (a DELETE whose
        client hung up, a request timeout) cannot cut it half way."""
        live = self.lives.get(room)
        if live is None:
            return None
        if live.ended is not None:
            return live, False
        live.ended = asyncio.ensure_future(self._end(room, live, reason))
        live.ended.add_done_callback(_log_failure)
        return live, True

    async def end(self, room: str, reason: str) -> bool:
        """End the live of `room` and wait for its teardown; True if this call ended it."""
        started = self._start_end(room, reason)
        if started is None:
            return False
        live, first = started
        assert live.ended is not None
        await asyncio.shield(live.ended)
        return first

    async def end_within(self, room: str, reason: str, seconds: float) -> bool:
        """End the live of `room`, waiting at most `seconds` for its teardown (which goes
        on in the background); True when it is done."""
        started = self._start_end(room, reason)
        if started is None:
            return True
        live = started[0]
        assert live.ended is not None
        done, _ = await asyncio.wait([live.ended], timeout=seconds)
        if not done:
            log.warning("the end of live %s of %s takes over %.0f s; answering now, it goes on", live.id, room, seconds)
        return bool(done)

    async def _end(self, room: str, live: Live, reason: str) -> None:
        log.info("live %s of %s ends: %s", live.id, room, reason)
        try:
            await self._stop_sources(room, live)
        finally:  # even after an error: the room must not stay taken by a live that is gone
            if self.lives.get(room) is live:
                del self.lives[room]
            self.sessions.pop(live.session, None)
        try:
            rec = self.rec_dir(room, live.id)
            poster = f"{self.url}/media/{room}/rec/{live.id}/poster.jpg" if (rec / "poster.jpg").exists() else None
            if live.media:
                await timed(f"ending {room}: storing the recording", self.store.add_recording(room, {
                    "id": live.id,
                    "source": live.kind,
                    "started_ms": live.started_ms,
                    "ended_ms": int(time.time() * 1000),
                    "width": live.media.get("width", 0),
                    "height": live.media.get("height", 0),
                    "hls": f"{self.url}/media/{room}/rec/{live.id}/index.m3u8",
                    "poster": poster,
                }))
                await timed(f"ending {room}: announcing it", self.store.set_state(room, offline_state(poster)))
            await timed(f"ending {room}: releasing the room", self.store.release(room, self.url))
        finally:
            shutil.rmtree(self.live_dir(room, live.id), ignore_errors=True)

    async def _stop_sources(self, room: str, live: Live) -> None:
        for guest in list(live.guests.values()):
            await timed(f"ending {room}: removing guest {guest.user}", self.remove_guest(guest, "ended", announce=True))
        # together: each close may take up to webrtc.PC_CLOSE_TIMEOUT_S
        await timed(f"ending {room}: closing the WHEP viewers",
                    asyncio.gather(*(self._close_viewer(live, viewer) for viewer in list(live.viewers.values()))))
        if live.pipeline is not None:
            await timed(f"ending {room}: closing the pipeline", live.pipeline.close())
        if live.stopper is not None:
            await timed(f"ending {room}: stopping the remux", asyncio.get_running_loop().run_in_executor(None, live.stopper))
        if live.pc is not None:
            await timed(f"ending {room}: closing the publisher", close_pc(live.pc, f"the publisher of {room}"))

    async def end_session(self, session: str) -> bool:
        live = self.sessions.get(session)
        return live is not None and await self.end(live.room, "deleted")

    # -- link-mic guests ----------------------------------------------------------------------
    async def add_guest(self, room: str, cohost: Cohost, offer: str) -> tuple[GuestSession, str]:
        """A co-host publishes: its token is consumed (once), its picture joins the program."""
        live = self.lives.get(room)
        if live is None or live.ending or live.pipeline is None or not live.pipeline.started.is_set():
            raise NotLive(room)
        if self.linkmic is None or not (await self.linkmic.consume_token(room, cohost.user, cohost.jti)).ok:
            raise Refused("this co-host token was used already or revoked")
        if cohost.user in live.guests:
            raise Busy("this guest is already on camera")
        if len(live.guests) >= self.settings.linkmic_max_guests:
            raise Busy("the link-mic is full")
        pc = new_pc(self.settings)
        guest = GuestSession(secrets.token_urlsafe(24), room, cohost.user, cohost.name, pc)
        pipeline = live.pipeline

        def gone(reason: str) -> None:
            self._later(self.remove_guest(guest, reason, announce=True))

        @pc.on("track")
        def on_track(track: Any) -> None:
            pipeline.add_guest(cohost.user, track, gone)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                gone("dropped")

        try:
            sdp = await answer(pc, offer)
        except Exception as exc:
            await close_pc(pc, f"a refused guest of {room}")
            raise OfferError(400, f"cannot answer this offer: {exc}") from None
        live.guests[cohost.user] = guest
        self.guest_sessions[guest.id] = guest
        return guest, sdp

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def remove_guest(self, guest: GuestSession, reason: str, announce: bool) -> None:
        """Take a guest out of the picture; `announce`: it left or dropped (not ended by the
        host), so end its link-mic in Redis and tell the room."""
        live = self.lives.get(guest.room)
        if self.guest_sessions.pop(guest.id, None) is None:
            return
        if live is not None and live.guests.get(guest.user) is guest:
            del live.guests[guest.user]
            if live.pipeline is not None:
                live.pipeline.drop_guest(guest.user)
        log.info("link-mic guest %s of %s leaves: %s", guest.user, guest.room, reason)
        await close_pc(guest.pc, f"guest {guest.user} of {guest.room}")
        if announce and self.linkmic is not None and self.store.publisher is not None:
            got = await self.linkmic.end(guest.room, guest.user, int(time.time() * 1000))
            if got.ok:
                await self.store.publisher.publish(guest.room, "linkmic", {
                    "phase": "ended", "user": guest.user, "name": got.name, "reason": reason, "ms": got.ms})

    # -- WHEP viewers ------------------------------------------------------------------------
    async def add_viewer(self, room: str, offer: str) -> tuple[WhepViewer, str]:
        live = self.lives.get(room)
        if live is None or live.ending or live.pipeline is None or not live.pipeline.started.is_set():
            raise NotLive(room)
        if sum(len(lv.viewers) for lv in self.lives.values()) >= self.settings.max_viewers:
            raise Busy("this media process has its maximum of WHEP viewers")
        pc = new_pc(self.settings)
        track = PacketTrack(self.settings.viewer_queue)
        viewer = WhepViewer(secrets.token_urlsafe(24), pc, track)
        if live.pipeline.has_audio and "m=audio" in offer:
            viewer.audio = PacketTrack(self.settings.viewer_queue, "audio")
        try:
            add_h264_sender(pc, track)
            if viewer.audio is not None:
                add_opus_sender(pc, viewer.audio)
            sdp = await answer(pc, offer)
        except Exception as exc:
            await close_pc(pc, f"a refused WHEP viewer of {room}")
            raise OfferError(400, f"cannot answer this offer (H.264 is needed): {exc}") from None
        live.viewers[viewer.id] = viewer
        live.pipeline.fanout.add(track)
        if viewer.audio is not None:
            live.pipeline.audio_fanout.add(viewer.audio)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close_viewer(live, viewer)

        return viewer, sdp

    async def _close_viewer(self, live: Live, viewer: WhepViewer) -> None:
        if live.viewers.pop(viewer.id, None) is None:
            return
        if live.pipeline is not None:
            live.pipeline.fanout.discard(viewer.track)
            if viewer.audio is not None:
                live.pipeline.audio_fanout.discard(viewer.audio)
                viewer.audio.stop()
        viewer.track.stop()
        await close_pc(viewer.pc, f"WHEP viewer {viewer.id[:8]}")

    async def remove_viewer(self, room: str, viewer_id: str) -> bool:
        live = self.lives.get(room)
        viewer = live.viewers.get(viewer_id) if live else None
        if live is None or viewer is None:
            return False
        await self._close_viewer(live, viewer)
        return True

    def viewer_count(self) -> int:
        return sum(len(live.viewers) for live in self.lives.values())
