"""The program picture's layouts, on frames (no network): where each guest lands, that
decoded frames are never written to, and any input size/format is taken."""

from __future__ import annotations

import av
import numpy as np
import pytest

from liveserver.media.compose import cells, compose

COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (230, 230, 30), (200, 30, 200)]


def solid(rgb: tuple[int, int, int], w: int = 640, h: int = 360, fmt: str = "yuv420p") -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((h, w, 3), rgb, np.uint8), format="rgb24").reformat(format=fmt)


def near(px: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(px, rgb))


@pytest.mark.parametrize("layout", ["pip", "grid"])
@pytest.mark.parametrize("guests", [0, 1, 2, 4])
def test_every_guest_is_in_its_cell(layout: str, guests: int) -> None:
    host = solid(COLOURS[0], 1280, 720)
    before = host.to_ndarray().copy()
    frames = [solid(c, 320, 240, "yuv420p" if i % 2 else "rgb24") for i, c in enumerate(COLOURS[1:1 + guests])]
    out = compose(host, frames, 1280, 720, layout)
    assert (out.width, out.height, out.format.name) == (1280, 720, "yuv420p")
    rgb = out.to_ndarray(format="rgb24")
    boxes = cells(layout, 1280, 720, guests)
    assert len(boxes) == guests + 1
    for (x, y, w, h), colour in zip(boxes, COLOURS):
        assert near(rgb[y + h // 2, x + w // 2], colour), (layout, guests, (x, y, w, h))
        assert x % 2 == y % 2 == w % 2 == h % 2 == 0 and x + w <= 1280 and y + h <= 720
    if layout == "pip":  # the host stays full frame: its colour where no guest is
        assert near(rgb[10, 10], COLOURS[0])
    assert np.array_equal(host.to_ndarray(), before), "the host's decoded frame was written to"
