// Publish a MediaStream through our own WHIP endpoint (RFC 9725): one offer with every
// candidate (the media server takes no trickle), H.264 preferred (the server takes H.264),
// Bearer token (a host token for "Go live", a co-host token for link-mic). stop() DELETEs
// the session.

const GATHER_MS = 2000;

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MS);
  });
}

export class WhipError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function publishWhip(url, token, stream, { onState = () => {} } = {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    if (track.kind === "video" && RTCRtpSender.getCapabilities && tr.setCodecPreferences) {
      const codecs = RTCRtpSender.getCapabilities("video").codecs;
      const h264 = codecs.filter((c) => /h264|rtx/i.test(c.mimeType));
      if (h264.length) tr.setCodecPreferences(h264);
    }
  }
  pc.addEventListener("connectionstatechange", () => onState(pc.connectionState));
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) {
    pc.close();
    const body = await res.json().catch(() => null);
    throw new WhipError(res.status, body?.error?.code || "internal", body?.error?.message || `HTTP ${res.status}`);
  }
  const location = res.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  return {
    pc,
    location,
    async stop() {
      pc.close();
      if (location) await fetch(location, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
    },
  };
}

export async function cameraStream(videoId = "", audioId = "", { width = 1280, height = 720 } = {}) {
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
  if (videoId) video.deviceId = { exact: videoId };
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  return navigator.mediaDevices.getUserMedia({ video, audio });
}
