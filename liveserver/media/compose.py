"""The program picture of a link-mic: the host's frame with each guest's latest frame
drawn into it, composed on the live's encoder thread just before the one encode (so
viewers, HLS and WHEP get one program, and a guest costs a scale + a copy, not an encode).

Layouts (LIVESERVER_MEDIA_LINKMIC_LAYOUT):
- `pip` (default): the host full frame, guests as quarter-size pictures stacked up the
  right edge from the bottom (up to 4).
- `grid`: host and guests in equal cells, host first (2 -> 2x1, 3..4 -> 2x2, 5 -> 3x2).

Works on yuv420p planes with numpy: every rectangle has even coordinates and sizes, so
the chroma planes are exactly half of the luma rectangle."""

from __future__ import annotations

import math

import av
import numpy as np

LAYOUTS = ("pip", "grid")


def _even(x: float) -> int:
    return max(2, int(x) & ~1)


def views(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, U, V of a yuv420p frame as numpy views of its own buffers (no copy)."""
    out = []
    for i, plane in enumerate(frame.planes[:3]):
        w, h = (frame.width, frame.height) if i == 0 else (frame.width // 2, frame.height // 2)
        out.append(np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w])
    return out


def scaled(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    if frame.width == width and frame.height == height and frame.format.name == "yuv420p":
        return frame
    return frame.reformat(width=width, height=height, format="yuv420p", interpolation="FAST_BILINEAR")


def cells(layout: str, width: int, height: int, guests: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the host (first) and of each guest, all even."""
    if layout == "grid" and guests:
        n = guests + 1
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        w, h = _even(width / cols), _even(height / rows)
        return [(_even(i % cols * w) if i % cols else 0, _even(i // cols * h) if i // cols else 0, w, h) for i in range(n)]
    out = [(0, 0, width, height)]
    margin = _even(min(width, height) / 40)
    w, h = _even(width / 4 - margin), _even(height / 4 - margin)
    for i in range(guests):
        out.append((_even(width - w - margin), _even(height - (i + 1) * (h + margin)), w, h))
    return out


def paste(dst: list[np.ndarray], src: av.VideoFrame, x: int, y: int, w: int, h: int) -> None:
    sy, su, sv = views(scaled(src, w, h))
    dy, du, dv = dst
    dy[y:y + h, x:x + w] = sy
    du[y // 2:(y + h) // 2, x // 2:(x + w) // 2] = su
    dv[y // 2:(y + h) // 2, x // 2:(x + w) // 2] = sv


def compose(host: av.VideoFrame, guests: list[av.VideoFrame], width: int, height: int, layout: str = "pip") -> av.VideoFrame:
    """A new yuv420p frame width x height: the host and `guests` laid out by `layout`.
    (Decoded frames are never written to: their buffers can be the decoder's references.)"""
    boxes = cells(layout, width, height, len(guests))
    out = av.VideoFrame(width, height, "yuv420p")
    canvas = views(out)
    if layout == "grid" and guests:
        canvas[0][:] = 16  # black
        canvas[1][:] = 128
        canvas[2][:] = 128
        paste(canvas, host, *boxes[0])
    else:
        for d, s in zip(canvas, views(scaled(host, width, height))):
            d[:] = s
    for frame, box in zip(guests, boxes[1:]):
        paste(canvas, frame, *box)
    return out
