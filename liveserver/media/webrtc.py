"""aiortc peer connections for WHIP and WHEP: no STUN by default (host candidates are
what a server has), answers carry every candidate (OBS 30.2+ neither sends nor takes
trickled candidates)."""

from __future__ import annotations

import asyncio
import logging

from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from liveserver.media.settings import MediaSettings

log = logging.getLogger("liveserver.media")

PC_CLOSE_TIMEOUT_S = 2.0  # a healthy close takes milliseconds
_closing: set["asyncio.Task[None]"] = set()  # closes that outlived their wait, kept until done


def new_pc(settings: MediaSettings) -> RTCPeerConnection:
    servers = [RTCIceServer(settings.stun)] if settings.stun else []
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


async def close_pc(pc: RTCPeerConnection, what: str) -> None:
    """Close `pc`, waiting at most PC_CLOSE_TIMEOUT_S. aiortc's close awaits every
    sender, DTLS and ICE transport in turn, and one can take long or never finish (a
    sender whose track stopped first, aiortc#283; ICE's pending STUN transactions): a
    live's end, a DELETE or a guest's leave must not hang on it. A close that takes
    longer goes on in the background."""
    task = asyncio.ensure_future(pc.close())
    try:
        await asyncio.wait_for(asyncio.shield(task), PC_CLOSE_TIMEOUT_S)
    except asyncio.TimeoutError:
        log.warning("closing the peer connection of %s takes over %.0f s; not waiting for it", what, PC_CLOSE_TIMEOUT_S)
        _closing.add(task)
        task.add_done_callback(_closing.discard)


def add_h264_sender(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    """A send-only video transceiver limited to H.264 (+ RTX), created before the
    remote offer is applied so the negotiation honours the preference (the shared
    packets are H.264: a viewer that cannot take H.264 gets an error, not a transcode)."""
    caps = RTCRtpSender.getCapabilities("video")
    h264 = [c for c in caps.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(h264)


async def answer(pc: RTCPeerConnection, offer: str) -> str:
    """Apply the offer and return the answer SDP with all local candidates gathered
    (aiortc's setLocalDescription waits for gathering to complete)."""
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


def add_opus_sender(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    """A send-only audio transceiver limited to Opus (the shared audio packets)."""
    caps = RTCRtpSender.getCapabilities("audio")
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType.lower() == "audio/opus"])
