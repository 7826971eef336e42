"""aiortc peer connections for WHIP and WHEP: no STUN by default (host candidates are
what a server has), answers carry every candidate (OBS 30.2+ neither sends nor takes
trickled candidates)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpByePacket

from liveserver.media.decodequeue import bound_decoding, drop_waiting
from liveserver.media.settings import MediaSettings

log = logging.getLogger("liveserver.media")

PC_CLOSE_TIMEOUT_S = 2.0  # a healthy close takes milliseconds
_closing: set["asyncio.Task[None]"] = set()  # closes that outlived their wait, kept until done


def new_pc(settings: MediaSettings) -> RTCPeerConnection:
    servers = [RTCIceServer(settings.stun)] if settings.stun else []
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


def drop_pending_decodes(pc: RTCPeerConnection) -> int:
    """Empty each receiver's queue of frames waiting for its decoder thread; returns how
    many were dropped. aiortc's receiver stop puts its end marker behind that queue and
    joins the decoder thread *on the event loop's thread*: a decoder that fell behind (a
    busy box) stalled the whole media process, every live and viewer in it, until the
    backlog was decoded (seconds; a WHIP DELETE timed out in CI). At a close those frames
    are wanted by nobody. The queue is aiortc's private attribute (aiortc 1.16); if it
    is ever renamed this does nothing and tests/media/test_pc_close.py fails."""
    return sum(drop_waiting(receiver) for receiver in pc.getReceivers())


def guard_receivers(pc: RTCPeerConnection) -> None:
    """The same drop when the publisher ends the stream itself (closing without a
    DELETE): aiortc then stops the receiver on an RTCP BYE (`_handle_rtcp_packet`) or
    on the DTLS close (`_handle_disconnect`), each joining the decoder thread on the
    loop's thread too. Both methods of each receiver of `pc` (they exist once the offer
    is applied) are wrapped on the instance, to drop the queue first; nothing global is
    patched. The queue itself is bounded too (media/decodequeue.py)."""
    for receiver in pc.getReceivers():
        if getattr(receiver, "_drops_pending", False):
            continue
        bound_decoding(receiver)
        on_disconnect = receiver._handle_disconnect
        on_rtcp = receiver._handle_rtcp_packet

        def handle_disconnect(receiver: Any = receiver, original: Callable[[], None] = on_disconnect) -> None:
            drop_waiting(receiver)
            original()

        async def handle_rtcp_packet(packet: Any, receiver: Any = receiver,
                                     original: Callable[[Any], Awaitable[None]] = on_rtcp) -> None:
            if isinstance(packet, RtcpByePacket):
                drop_waiting(receiver)
            await original(packet)

        receiver._handle_disconnect = handle_disconnect
        receiver._handle_rtcp_packet = handle_rtcp_packet
        receiver._drops_pending = True


async def _close(pc: RTCPeerConnection) -> None:
    # in the task itself, so no datagram is queued for decoding between the drop and the close
    drop_pending_decodes(pc)
    await pc.close()


async def close_pc(pc: RTCPeerConnection, what: str) -> None:
    """Close `pc`, waiting at most PC_CLOSE_TIMEOUT_S. aiortc's close awaits every
    sender, DTLS and ICE transport in turn, and one can take long or never finish (a
    sender whose track stopped first, aiortc#283; ICE's pending STUN transactions): a
    live's end, a DELETE or a guest's leave must not hang on it. A close that takes
    longer goes on in the background. Frames still waiting to be decoded are dropped
    first (drop_pending_decodes: the close would otherwise block the loop on them)."""
    task = asyncio.ensure_future(_close(pc))
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
    guard_receivers(pc)
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


def add_opus_sender(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    """A send-only audio transceiver limited to Opus (the shared audio packets)."""
    caps = RTCRtpSender.getCapabilities("audio")
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType.lower() == "audio/opus"])
