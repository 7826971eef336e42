"""Checks on SDP offers before aiortc sees them (WHIP and WHEP)."""

from __future__ import annotations

from aiortc.sdp import SessionDescription

MAX_SDP = 64 * 1024


class OfferError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_offer(raw: bytes, want_video_direction: tuple[str, ...]) -> tuple[str, list[str]]:
    """The offer as text and its media kinds; OfferError(400) for garbage, for more than
    one audio or video m-line, or for no video m-line in a usable direction."""
    if len(raw) > MAX_SDP:
        raise OfferError(413, f"SDP offer over {MAX_SDP} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferError(400, "SDP offer is not UTF-8") from None
    if not text.lstrip().startswith("v=0"):
        raise OfferError(400, "not an SDP offer (must start with v=0)")
    try:
        desc = SessionDescription.parse(text)
    except Exception as exc:
        raise OfferError(400, f"bad SDP: {exc}") from None
    kinds = [m.kind for m in desc.media]
    if not kinds:
        raise OfferError(400, "SDP offer has no media")
    if kinds.count("video") > 1 or kinds.count("audio") > 1:
        raise OfferError(400, "at most one audio and one video track")
    videos = [m for m in desc.media if m.kind == "video"]
    if not videos:
        raise OfferError(400, "SDP offer has no video")
    if videos[0].direction not in want_video_direction:
        raise OfferError(400, f"video direction must be one of {', '.join(want_video_direction)}")
    if not videos[0].rtp.codecs:
        raise OfferError(400, "video m-line lists no codec")
    return text, kinds
