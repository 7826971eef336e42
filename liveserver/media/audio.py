"""Audio, encoded once like the video: the decoded WHIP audio becomes one Opus stream
(its packets go to every WHEP viewer's audio sender, `pack` only) and one AAC stream (its
packets go to the HLS live window and the recording). Runs on the live's encoder thread."""

from __future__ import annotations

import fractions
import io

import av
from av.audio.resampler import AudioResampler

from liveserver.media.hls import HlsWriter
from liveserver.media.packets import Encoded

RATE = 48000
TIME_BASE = fractions.Fraction(1, RATE)


def adts(packet: av.Packet, channels: int = 2, rate_index: int = 3) -> av.Packet:
    """The raw AAC-LC frame with its 7-byte ADTS header (48 kHz = index 3), which is what
    MPEG-TS carries; FFmpeg's AAC encoder emits raw frames."""
    data = bytes(packet)
    n = len(data) + 7
    header = bytes([
        0xFF, 0xF1,  # sync, MPEG-4, layer 0, no CRC
        (1 << 6) | (rate_index << 2) | (channels >> 2),  # profile LC (object type 2 - 1)
        ((channels & 3) << 6) | (n >> 11),
        (n >> 3) & 0xFF,
        ((n & 7) << 5) | 0x1F,  # buffer fullness 0x7FF (VBR)
        0xFC,  # ... and one raw data block
    ])
    out = av.Packet(header + data)
    out.pts, out.dts, out.time_base = packet.pts, packet.dts, packet.time_base
    out.is_keyframe = True
    return out


class AudioEncoders:
    def __init__(self, opus_bitrate: int = 64000, aac_bitrate: int = 128000) -> None:
        self.opus = av.CodecContext.create("libopus", "w")
        self.opus.sample_rate, self.opus.layout, self.opus.format = RATE, "stereo", "s16"
        self.opus.time_base = TIME_BASE
        self.opus.bit_rate = opus_bitrate
        self.opus_rs = AudioResampler(format="s16", layout="stereo", rate=RATE, frame_size=960)  # 20 ms
        # The AAC encoder lives in a stream of a throw-away container: that stream is the
        # template the HLS writers copy (codec parameters + AudioSpecificConfig).
        self._holder = av.open(io.BytesIO(), "w", format="mpegts")
        self.aac_stream = self._holder.add_stream("aac", rate=RATE)
        self.aac_stream.layout = "stereo"
        self.aac_stream.bit_rate = aac_bitrate
        self.aac_stream.codec_context.time_base = TIME_BASE
        self.aac_stream.codec_context.open()
        self.aac = self.aac_stream.codec_context
        self.aac_rs = AudioResampler(format="fltp", layout="stereo", rate=RATE, frame_size=self.aac.frame_size or 1024)

    def encode(self, frame: av.AudioFrame, pts: int, writers: list[HlsWriter]) -> list[Encoded]:
        """One decoded frame (pts in 1/48000 s) -> Opus packets for viewers; AAC into `writers`."""
        frame.pts, frame.time_base = pts, TIME_BASE
        out = []
        for f in self.opus_rs.resample(frame):
            for p in self.opus.encode(f):
                out.append(Encoded(p, True))
        for f in self.aac_rs.resample(frame):
            for p in self.aac.encode(f):
                for writer in writers:
                    writer.write(adts(p), 1)
        return out
