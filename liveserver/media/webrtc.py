"""aiortc peer connections for WHIP and WHEP: no STUN by default (host candidates are
what a server has), answers carry every candidate (OBS 30.2+ neither sends nor takes
trickled candidates)."""

from __future__ import annotations

from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from liveserver.media.settings import MediaSettings


def new_pc(settings: MediaSettings) -> RTCPeerConnection:
    servers = [RTCIceServer(settings.stun)] if settings.stun else []
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


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
