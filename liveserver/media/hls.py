"""HLS out with FFmpeg's `hls` muxer (through PyAV): MPEG-TS segments of ~`hls_time`,
cut at keyframes. A live window (`list_size` > 0, old segments deleted) or a whole
recording (`list_size` 0, `#EXT-X-ENDLIST` written at close). Packets are muxed as they
are: nothing is transcoded here."""

from __future__ import annotations

import logging
from pathlib import Path

import av

log = logging.getLogger("liveserver.media.hls")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"


class HlsWriter:
    def __init__(self, directory: Path, playlist: str, prefix: str, hls_time_s: float, list_size: int,
                 templates: list[av.stream.Stream] | None = None, width: int = 0, height: int = 0, fps: int = 30,
                 audio: av.stream.Stream | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.playlist = directory / playlist
        flags = ["independent_segments", "temp_file", "program_date_time"]
        options = {
            "hls_time": f"{hls_time_s:g}",
            "hls_list_size": str(list_size),
            "hls_segment_type": "mpegts",
            "hls_segment_filename": str(directory / f"{prefix}%d.ts"),
        }
        if list_size:
            flags += ["delete_segments", "omit_endlist"]
            options["hls_delete_threshold"] = "2"
        else:
            options["hls_playlist_type"] = "event"
        options["hls_flags"] = "+".join(flags)
        # Do not hold video back more than 0.5 s waiting for audio (a muted source).
        self.out = av.open(str(self.playlist), "w", format="hls", options=options,
                           container_options={"max_interleave_delta": "500000"})
        if templates:  # remux: the streams of the source, as they are
            self.streams = [self.out.add_stream_from_template(t) for t in templates]
        else:  # our own H.264 encode
            self.streams = [self.out.add_mux_stream("h264", rate=fps, width=width, height=height)]
            if audio is not None:  # our own AAC encode (stream 1)
                self.streams.append(self.out.add_stream_from_template(audio))
        self.packets = 0
        self.closed = False

    def write(self, packet: av.Packet, stream: int = 0) -> None:
        """Mux one packet (consumed: pass a copy if it is used elsewhere)."""
        packet.stream = self.streams[stream]
        self.out.mux(packet)
        self.packets += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.out.close()
        except Exception as exc:  # a live that ended before its first packet
            log.warning("closing %s: %s", self.playlist, exc)
