// The live video of the viewer page. It follows `state.media` (see protocol/README.md):
// live -> WHEP when the room offers it (lowest latency), else HLS (native where the browser
// plays it, else the vendored hls.js); offline -> the poster and an "Offline" label.
// Muted autoplay (what browsers allow) with a tap-to-unmute button; it reconnects when the
// connection drops while the room is still live, and when a new live starts.

const HLS_JS = "/static/vendor/hls.light.min.js";
const RETRY_MS = [1000, 2000, 4000, 8000];
const GATHER_MS = 2000;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

function waitGathered(pc) {
  // The media server takes no trickled candidates: send the offer once gathering is done.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MS);
  });
}

export class LivePlayer {
  /** @param {HTMLElement} box the `.video` area (holds the poster img and label) */
  constructor(box, { token = null, label = null } = {}) {
    this.box = box;
    this.token = token;
    this.poster = box.querySelector("img.poster");
    this.label = label || box.querySelector(".poster-label");
    this.defaultPoster = this.poster ? this.poster.getAttribute("src") : "";
    this.video = document.createElement("video");
    Object.assign(this.video, { muted: true, autoplay: true, playsInline: true });
    this.video.setAttribute("playsinline", "");
    this.video.className = "live-video";
    Object.assign(this.video.style, {
      position: "absolute", inset: "0", width: "100%", height: "100%", objectFit: "contain",
      background: "#000", display: "none",
    });
    this.unmute = document.createElement("button");
    this.unmute.type = "button";
    this.unmute.className = "pill live-unmute";
    this.unmute.textContent = "Tap to unmute";
    Object.assign(this.unmute.style, {
      position: "absolute", left: "12px", top: "64px", zIndex: "6", display: "none", padding: "6px 12px",
      border: "0", borderRadius: "999px", background: "rgba(0,0,0,.6)", color: "#fff", font: "600 13px system-ui, sans-serif",
      cursor: "pointer",
    });
    this.unmute.addEventListener("click", () => {
      this.video.muted = false;
      this.video.play().catch(() => {});
      this.unmute.style.display = "none";
    });
    box.append(this.video);
    // The stage, not the video box: the danmaku layer and the top bar stay above the video.
    (box.parentElement || box).append(this.unmute);
    this.media = null;
    this.liveId = null;
    this.pc = null;
    this.hls = null;
    this.session = null; // WHEP resource URL, DELETEd when we stop
    this.mode = "offline"; // offline | connecting | whep | hls
    this.attempt = 0;
    this.retryTimer = null;
    this.video.addEventListener("playing", () => {
      this.video.style.display = "block";
      if (this.poster) this.poster.style.visibility = "hidden";
      if (this.label) this.label.hidden = true;
      this.attempt = 0;
      if (this.video.muted && this._hasAudio()) this.unmute.style.display = "";
      this.box.dataset.playing = this.mode;
    });
    window.addEventListener("pagehide", () => this._teardown());
  }

  _hasAudio() {
    const src = this.video.srcObject;
    if (src instanceof MediaStream) return src.getAudioTracks().length > 0;
    if (this.hls) return (this.hls.audioTracks || []).length > 0 || !!(this.hls.levels || []).some((l) => l.audioCodec);
    return true; // native HLS: cannot tell cheaply, offer it
  }

  /** Follow `state.media`; call it on every welcome and batch (repeats are ignored). */
  update(media) {
    if (!media) return;
    const id = media.live ? `${media.id || ""}|${media.whep || ""}|${media.hls || ""}` : null;
    if (id === this.liveId && this.media) return;
    this.media = media;
    this.liveId = id;
    this.attempt = 0;
    if (media.live) this._start();
    else this._offline();
  }

  _offline() {
    this._teardown();
    this.mode = "offline";
    delete this.box.dataset.playing;
    this.video.style.display = "none";
    this.unmute.style.display = "none";
    if (this.poster) {
      this.poster.src = (this.media && this.media.poster) || this.defaultPoster;
      this.poster.style.visibility = "";
    }
    if (this.label) {
      this.label.hidden = false;
      this.label.textContent = "Offline · the live starts soon";
    }
    this.box.dataset.media = "offline";
  }

  _showConnecting() {
    if (this.label && this.video.style.display === "none") {
      this.label.hidden = false;
      this.label.textContent = "Connecting to the live…";
    }
    if (this.poster && this.media.poster) this.poster.src = this.media.poster;
    this.box.dataset.media = "live";
  }

  async _start() {
    this._teardown();
    this.mode = "connecting";
    this._showConnecting();
    const media = this.media;
    const useWhep = media.whep && window.RTCPeerConnection && !new URLSearchParams(location.search).has("hls");
    try {
      if (useWhep) {
        try {
          await this._whep(media.whep);
          return;
        } catch (err) {
          console.warn("WHEP failed, trying HLS:", err.message);
          this._teardown();
        }
      }
      if (media.hls) await this._hls(media.hls);
      else throw new Error("no playable source");
    } catch (err) {
      console.warn("live video:", err.message);
      this._retry();
    }
  }

  _retry() {
    if (!this.media || !this.media.live) return;
    clearTimeout(this.retryTimer);
    const wait = RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
    this.attempt += 1;
    const id = this.liveId;
    this.retryTimer = setTimeout(() => { if (this.liveId === id) this._start(); }, wait);
  }

  async _whep(url) {
    const pc = (this.pc = new RTCPeerConnection());
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      const stream = this.video.srcObject instanceof MediaStream ? this.video.srcObject : new MediaStream();
      stream.addTrack(ev.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        this._teardown();
        this._retry();
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathered(pc);
    const headers = { "Content-Type": "application/sdp" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const res = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
    if (res.status !== 201) throw new Error(`WHEP ${res.status}`);
    const loc = res.headers.get("Location");
    this.session = loc ? new URL(loc, url).href : null;
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    this.mode = "whep";
  }

  async _hls(url) {
    this.mode = "hls";
    const v = this.video;
    v.onerror = () => { if (this.mode === "hls") { this._teardown(); this._retry(); } };
    if (v.canPlayType("application/vnd.apple.mpegurl")) {
      v.src = url;
      v.play().catch(() => {});
      return;
    }
    if (!window.Hls) await loadScript(HLS_JS);
    if (!window.Hls || !window.Hls.isSupported()) throw new Error("this browser cannot play HLS");
    const hls = (this.hls = new window.Hls({ lowLatencyMode: true, liveSyncDurationCount: 2 }));
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (data.fatal && this.hls === hls) {
        this._teardown();
        this._retry();
      }
    });
    hls.loadSource(url);
    hls.attachMedia(v);
    v.play().catch(() => {});
  }

  _teardown() {
    clearTimeout(this.retryTimer);
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
    }
    if (this.session) {
      fetch(this.session, { method: "DELETE", keepalive: true }).catch(() => {});
      this.session = null;
    }
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.video.onerror = null;
    if (this.video.srcObject) this.video.srcObject = null;
    if (this.video.getAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }
}
