"""One H.264 encoder (PyAV/libx264) per rendition: baseline, zerolatency, no B-frames,
SPS/PPS repeated before every keyframe (so a WHEP viewer or an HLS segment can start
at any keyframe), a keyframe every `keyint_s`."""

from __future__ import annotations

import fractions

import av
from av.video.frame import PictureType

TIME_BASE = fractions.Fraction(1, 90000)  # RTP video clock; also MPEG-TS's


class H264Encoder:
    def __init__(self, width: int, height: int, fps: int, keyint_s: float, bitrate: int, preset: str) -> None:
        self.width, self.height = width, height
        keyint = max(1, round(fps * keyint_s))
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = fractions.Fraction(fps, 1)
        ctx.gop_size = keyint
        ctx.max_b_frames = 0
        ctx.bit_rate = bitrate
        ctx.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "level": "31",
            # scenecut off: keyframes exactly every keyint, so HLS segments are even.
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:repeat-headers=1",
        }
        self.ctx = ctx
        self.frames = 0

    def encode(self, frame: av.VideoFrame, pts: int) -> list[av.Packet]:
        """Encode one frame (any size/format: it is scaled) with `pts` in 1/90000 s."""
        if frame.width != self.width or frame.height != self.height or frame.format.name != "yuv420p":
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        frame.pict_type = PictureType.NONE  # a decoder's I/P marks would force keyframes
        self.frames += 1
        return list(self.ctx.encode(frame))

    def flush(self) -> list[av.Packet]:
        try:
            return list(self.ctx.encode(None))
        except av.error.EOFError:
            return []


def copy_packet(packet: av.Packet) -> av.Packet:
    """An independent packet (muxing consumes the one it is given)."""
    out = av.Packet(bytes(packet))
    out.pts, out.dts = packet.pts, packet.dts
    out.time_base = packet.time_base
    out.is_keyframe = packet.is_keyframe
    return out


def jpeg(frame: av.VideoFrame, width: int = 640) -> bytes:
    """A JPEG poster of one frame (scaled to `width`, keeping the aspect)."""
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = fractions.Fraction(1, 1)
    small = frame.reformat(width=width, height=height, format="yuvj420p")
    small.pts = 0
    small.pict_type = PictureType.NONE
    return b"".join(bytes(p) for p in [*ctx.encode(small), *ctx.encode(None)])
