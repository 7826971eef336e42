"""RTMP ingest for older encoders and phone apps: `rtmp://host:PORT/live/{room}` with the
host token of the room as stream key. H.264/AAC is remuxed to HLS (live window +
recording) as it comes: never decoded for the picture, never transcoded (one frame is
decoded once, for the poster).

pyrtmp speaks the protocol (handshake, chunks, AMF commands); its audio/video messages
are FLV tag bodies, written as an FLV stream into a bounded queue that a PyAV demuxer
on a thread of its own reads from and remuxes."""

from __future__ import annotations

import asyncio
import logging
import queue
import struct
import threading
from typing import Any

import av

from liveserver.media.encoder import copy_packet, jpeg
from liveserver.media.health import IngestHealth
from liveserver.media.hls import HlsWriter
from liveserver.media.live import Busy, Live, MediaRooms
from liveserver.media.server_deps import AuthError, valid_room, verify
from liveserver.media.settings import MediaSettings

from pyrtmp import StreamClosedException  # noqa: E402  (after ours: pyrtmp's loggers are tamed below)
from pyrtmp.messages.audio import AudioMessage  # noqa: E402
from pyrtmp.messages.command import NCConnect, NCCreateStream, NSCloseStream, NSDeleteStream, NSPublish  # noqa: E402
from pyrtmp.messages.data import MetaDataMessage  # noqa: E402
from pyrtmp.messages.factory import MessageFactory  # noqa: E402
from pyrtmp.messages.protocol_control import SetChunkSize, SetPeerBandwidth, WindowAcknowledgementSize  # noqa: E402
from pyrtmp.messages.user_control import StreamBegin  # noqa: E402
from pyrtmp.messages.video import VideoMessage  # noqa: E402
from pyrtmp.session_manager import SessionManager  # noqa: E402

for _name in list(logging.root.manager.loggerDict):
    if _name.startswith("pyrtmp"):
        logging.getLogger(_name).setLevel(logging.ERROR)  # it warns on every releaseStream/FCPublish

log = logging.getLogger("liveserver.media.rtmp")

FLV_HEADER = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
QUEUE_LIMIT = 3000  # FLV tags (~30 s of 30 fps video + audio); a publisher this far behind is dropped


def flv_tag(kind: int, timestamp: int, payload: bytes) -> bytes:
    size = len(payload)
    head = struct.pack(">B", kind) + size.to_bytes(3, "big") + (timestamp & 0xFFFFFF).to_bytes(3, "big")
    head += struct.pack(">B", (timestamp >> 24) & 0xFF) + b"\x00\x00\x00"
    return head + payload + struct.pack(">I", 11 + size)


class ChunkClock:
    """Message timestamps per chunk stream, by the RTMP spec (5.3.1.2). pyrtmp gives a
    message whose first chunk is type 3 the previous message's timestamp; the spec (and
    FFmpeg, which sends audio this way) means "previous + the last delta"."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[int, int, int]] = {}  # cs id -> (pyrtmp's ts, fixed ts, delta)

    def fix(self, chunk_id: int, chunk_type: int, ts: int) -> int:
        prev = self.last.get(chunk_id)
        if chunk_type == 0 or prev is None:
            fixed, delta = ts, ts if chunk_type == 0 else 0
        elif chunk_type in (1, 2):
            delta = ts - prev[0]
            fixed = prev[1] + delta
        else:
            delta = prev[2]
            fixed = prev[1] + delta
        self.last[chunk_id] = (ts, fixed, delta)
        return fixed


class TagPipe:
    """A blocking file-like `read()` for PyAV over a bounded queue of FLV bytes."""

    def __init__(self) -> None:
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self.buf = b""
        self.eof = False

    def put(self, data: bytes) -> bool:
        try:
            self.q.put_nowait(data)
            return True
        except queue.Full:
            return False

    def close(self) -> None:
        try:
            self.q.put_nowait(None)
        except queue.Full:
            self.eof = True

    def read(self, n: int = -1) -> bytes:
        while not self.buf and not self.eof:
            item = self.q.get()
            if item is None:
                self.eof = True
            else:
                self.buf += item
        if n < 0:
            n = len(self.buf)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Remux:
    """On its own thread: FLV in, the same packets out to the live HLS window and the recording."""

    def __init__(self, rooms: MediaRooms, live: Live, loop: asyncio.AbstractEventLoop) -> None:
        self.rooms, self.live, self.loop = rooms, live, loop
        self.pipe = TagPipe()
        self.thread = threading.Thread(target=self._run, name=f"rtmp-remux-{live.room}", daemon=True)
        self.done = threading.Event()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.pipe.close()
        self.done.wait(10)

    def _run(self) -> None:
        s: MediaSettings = self.rooms.settings
        room, live = self.live.room, self.live
        writers: list[HlsWriter] = []
        try:
            with av.open(self.pipe, mode="r", format="flv", options={"analyzeduration": "2000000", "probesize": "1000000"}) as src:
                video = src.streams.video[0] if src.streams.video else None
                if video is None or video.codec_context.name != "h264":
                    log.warning("RTMP %s: no H.264 video; ending", room)
                    return
                streams = [video] + [a for a in src.streams.audio[:1] if a.codec_context.name == "aac"]
                width, height = video.codec_context.width, video.codec_context.height
                live_hls = HlsWriter(self.rooms.live_dir(room, live.id), "live.m3u8", f"{live.id}-seg", s.hls_time_s,
                                     s.hls_list_size, templates=streams)
                rec_hls = HlsWriter(self.rooms.rec_dir(room, live.id), "index.m3u8", "rec", s.hls_time_s, 0, templates=streams)
                writers = [live_hls, rec_hls]
                index = {st.index: i for i, st in enumerate(streams)}
                announced = False
                for packet in src.demux(*streams):
                    if packet.dts is None or packet.size == 0:
                        continue
                    i = index[packet.stream.index]
                    if i == 0:
                        live.health.frame(width, height, bool(packet.is_keyframe))
                        live.health.bytes_in += packet.size
                        if not announced and packet.is_keyframe:
                            announced = self._poster(video, packet, width, height)
                    else:
                        live.health.bytes_in += packet.size
                    copy = copy_packet(packet)
                    live_hls.write(copy, i)
                    rec_hls.write(packet, i)
        except Exception as exc:
            log.warning("RTMP remux of %s stopped: %s", room, exc)
        finally:
            for w in writers:
                w.close()
            self.done.set()
            asyncio.run_coroutine_threadsafe(self.rooms.end(room, "RTMP publisher left"), self.loop)

    def _poster(self, video: Any, packet: av.Packet, width: int, height: int) -> bool:
        try:
            dec = av.CodecContext.create("h264", "r")
            dec.extradata = video.codec_context.extradata
            frames = dec.decode(copy_packet(packet))
            if frames:
                poster = jpeg(frames[0])
                (self.rooms.rec_dir(self.live.room, self.live.id) / "poster.jpg").write_bytes(poster)
                (self.rooms.live_dir(self.live.room, self.live.id) / "poster.jpg").write_bytes(poster)
        except Exception as exc:
            log.warning("RTMP poster: %s", exc)
        asyncio.run_coroutine_threadsafe(self.rooms.announce_rtmp(self.live, width, height), self.loop)
        return True


class RtmpServer:
    def __init__(self, settings: MediaSettings, rooms: MediaRooms, secret: str) -> None:
        self.settings, self.rooms, self.secret = settings, rooms, secret
        self.server: asyncio.AbstractServer | None = None
        self.port = settings.rtmp_port

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, self.settings.host, self.settings.rtmp_port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("RTMP ingest on %s:%s", self.settings.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _room(self, app: str) -> str | None:
        parts = [p for p in app.strip("/").split("/") if p]
        if len(parts) == 2 and parts[0] == "live" and valid_room(parts[1]):
            return parts[1]
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = SessionManager(reader=reader, writer=writer)
        room: str | None = None
        live: Live | None = None
        remux: Remux | None = None
        clock = ChunkClock()
        try:
            await asyncio.wait_for(session.handshake(), 10)
            async for chunk in session.read_chunks_from_stream():
                chunk.timestamp = clock.fix(chunk.chunk_id, chunk.chunk_type, chunk.timestamp)
                try:
                    message = MessageFactory.from_chunk(chunk)
                except NotImplementedError:
                    continue
                if isinstance(message, NCConnect):
                    room = self._room(str(message.command_object.get("app", "")))
                    if room is None:
                        log.warning("RTMP connect to an app that is not live/<room>: %r", message.command_object.get("app"))
                        break
                    session.write_chunk_to_stream(WindowAcknowledgementSize(ack_window_size=5000000))
                    session.write_chunk_to_stream(SetPeerBandwidth(ack_window_size=5000000, limit_type=2))
                    session.write_chunk_to_stream(StreamBegin(stream_id=0))
                    session.write_chunk_to_stream(SetChunkSize(chunk_size=8192))
                    session.writer_chunk_size = 8192
                    session.write_chunk_to_stream(message.create_response())
                    await session.drain()
                elif isinstance(message, SetChunkSize):
                    session.reader_chunk_size = message.chunk_size
                elif isinstance(message, NCCreateStream):
                    session.write_chunk_to_stream(message.create_response())
                    await session.drain()
                elif isinstance(message, NSPublish):
                    if room is None or not self._authorized(room, str(message.publishing_name)):
                        log.warning("RTMP publish refused for %s: the stream key is not a host token of the room", room)
                        break
                    try:
                        remux_ref: dict[str, Remux] = {}
                        live = await self.rooms.start_rtmp(room, lambda: remux_ref["r"].stop())
                    except Busy:
                        log.warning("RTMP publish refused for %s: already live", room)
                        break
                    remux = remux_ref["r"] = Remux(self.rooms, live, asyncio.get_running_loop())
                    remux.pipe.put(FLV_HEADER)
                    remux.start()
                    session.write_chunk_to_stream(StreamBegin(stream_id=1))
                    session.write_chunk_to_stream(message.create_response())
                    await session.drain()
                elif isinstance(message, (VideoMessage, AudioMessage, MetaDataMessage)) and remux is not None:
                    kind = 9 if isinstance(message, VideoMessage) else 8 if isinstance(message, AudioMessage) else 18
                    if not remux.pipe.put(flv_tag(kind, message.timestamp, bytes(message.payload))):
                        log.warning("RTMP %s: remux is %d tags behind; dropping the publisher", room, QUEUE_LIMIT)
                        break
                elif isinstance(message, (NSCloseStream, NSDeleteStream)):
                    break
        except (StreamClosedException, asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            pass
        except Exception:
            log.exception("RTMP session failed")
        finally:
            if live is not None:
                await self.rooms.end(live.room, "RTMP publisher left")
            writer.close()

    def _authorized(self, room: str, key: str) -> bool:
        try:
            return verify(self.secret, key).can_host(room)
        except AuthError:
            return False


__all__ = ["RtmpServer", "IngestHealth"]
