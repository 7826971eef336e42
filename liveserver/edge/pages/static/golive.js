// The console's "Go live" panel (camera + microphone through our own WHIP endpoint, with a
// device picker, preview, stop and the media process's ingest health) and its link-mic
// panel (open/close requests, the queue with names and badges, accept / end).
// It reads the room state from the console's LiveClient (window.liveClient).

import { $, el } from "/static/dom.js";
import { publishWhip, cameraStream } from "/static/whip.js";

export function setupGoLive({ room, token }) {
  const auth = { Authorization: `Bearer ${token}` };
  const api = async (method, path, body) => {
    const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}${path}`, {
      method,
      headers: { ...auth, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error(data?.error?.message || `HTTP ${res.status}`);
    return data;
  };
  const out = $("golive-out");
  const say = (node, text, kind = "") => { node.textContent = text; node.className = "out" + (kind ? " " + kind : ""); };
  let stream = null;
  let session = null;

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
    for (const [kind, id] of [["videoinput", "golive-camera"], ["audioinput", "golive-mic"]]) {
      const select = $(id);
      const keep = select.value;
      select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) =>
        el("option", { value: d.deviceId, text: d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}` })));
      if (keep) select.value = keep;
    }
  }

  async function preview() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    const [w, h] = $("golive-size").value.split("x").map(Number);
    stream = await cameraStream($("golive-camera").value, $("golive-mic").value, { width: w, height: h });
    $("golive-preview").srcObject = stream;
    await listDevices(); // labels appear once permission is given
    return stream;
  }

  async function goLive() {
    $("golive-start").disabled = true;
    try {
      say(out, "Starting camera…");
      if (!stream) await preview();
      say(out, "Connecting to the media server…");
      session = await publishWhip(`/api/v1/rooms/${encodeURIComponent(room)}/whip`, token, stream, {
        onState: (s) => {
          $("golive-state").textContent = s;
          if (s === "failed") say(out, "The connection to the media server failed", "err");
        },
      });
      say(out, "You are live", "ok");
      $("golive-panel").dataset.live = "1";
      $("golive-stop").disabled = false;
    } catch (err) {
      say(out, `Could not go live: ${err.message}`, "err");
      $("golive-start").disabled = false;
    }
  }

  async function stop() {
    $("golive-stop").disabled = true;
    if (session) await session.stop();
    session = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    $("golive-preview").srcObject = null;
    delete $("golive-panel").dataset.live;
    $("golive-start").disabled = false;
    say(out, "Stopped");
  }

  async function health() {
    try {
      const h = await api("GET", "/media/health");
      const s = h.sources?.[0];
      $("golive-health").textContent = s
        ? `${s.kind} · ${s.width}×${s.height} · ${s.fps} fps · ${Math.round(s.bitrate_bps / 1000)} kbit/s · dropped ${s.dropped_frames} · lost ${s.packets_lost} · ${h.whep_viewers ?? 0} WHEP viewers${h.guests?.length ? ` · ${h.guests.length} guest(s) on camera` : ""}`
        : "not live";
    } catch (err) {
      $("golive-health").textContent = `health: ${err.message}`;
    }
  }

  // -- link-mic -----------------------------------------------------------------------------
  const lmOut = $("linkmic-out");
  async function act(label, fn) {
    try {
      await fn();
      say(lmOut, label, "ok");
      return true;
    } catch (err) {
      say(lmOut, `${label} failed: ${err.message}`, "err");
      return false;
    }
  }
  let lastKey = "";
  let shownAllow = null;  // the server's `allow` last put in the checkbox
  function renderLinkmic() {
    const lm = window.liveClient?.state?.linkmic;
    if (!lm) return;
    // Only when the server's value changes: a state frame that comes while the host's
    // own click is on its way (still the old value) must not undo that click.
    if (lm.allow !== shownAllow) {
      shownAllow = lm.allow;
      $("linkmic-allow").checked = lm.allow;
    }
    const key = JSON.stringify(lm);
    if (key === lastKey) return;
    lastKey = key;
    const rows = [];
    for (const g of lm.guests) {
      const end = el("button", { type: "button", class: "ghost", text: "End" });
      end.addEventListener("click", () => act(`Ended ${g.name}`, () => api("POST", "/linkmic", { user: g.user, action: "end" })));
      rows.push(el("li", { class: "guest", "data-user": g.user }, el("span", { class: "phase live", text: "on camera" }), ` ${g.name} `, end));
    }
    for (const q of lm.queue) {
      const badge = window.liveClient?.linkmicBadges?.get(q.user);
      const accept = el("button", { type: "button", text: "Accept" });
      accept.addEventListener("click", () => act(`Accepted ${q.name}`, () => api("POST", "/linkmic", { user: q.user, action: "accept" })));
      const decline = el("button", { type: "button", class: "ghost", text: "Decline" });
      decline.addEventListener("click", () => act(`Declined ${q.name}`, () => api("POST", "/linkmic", { user: q.user, action: "end" })));
      rows.push(el("li", { class: "queued", "data-user": q.user }, el("span", { class: "phase scheduled", text: "waiting" }),
        ` ${q.name} `, ...(badge ? [el("span", { class: "badge", text: badge })] : []), " ", accept, " ", decline));
    }
    $("linkmic-queue").replaceChildren(...(rows.length ? rows : [el("li", { class: "empty", text: "Nobody has asked yet" })]));
  }
  $("linkmic-allow").addEventListener("change", async (e) => {
    const box = e.target;
    const want = box.checked;
    const ok = await act(want ? "Requests open" : "Requests closed", () => api("PUT", "/linkmic", { allow: want }));
    if (!ok && shownAllow !== null) box.checked = shownAllow;  // refused: show what the server has
  });

  async function stats() {
    try {
      const s = await api("GET", "/linkmic");
      $("linkmic-stats").textContent = `${s.stats.count} link-mic(s) · ${s.stats.minutes} min · up to ${s.max_guests} guest(s)`;
    } catch { /* shown by the actions */ }
  }

  $("golive-preview-btn").addEventListener("click", () => preview().catch((err) => say(out, `Camera: ${err.message}`, "err")));
  $("golive-start").addEventListener("click", goLive);
  $("golive-stop").addEventListener("click", stop);
  listDevices();
  setInterval(health, 1000);
  setInterval(stats, 3000);
  setInterval(() => {
    const c = window.liveClient;
    if (c && !c._linkmicHooked) { // badges come with the `requested` events
      c._linkmicHooked = true;
      c.linkmicBadges = new Map();
      c.on("batch", ({ frame }) => {
        for (const ev of frame.events) if (ev.k === "linkmic" && ev.phase === "requested" && ev.badge) c.linkmicBadges.set(ev.user, ev.badge);
      });
    }
    renderLinkmic();
  }, 300);
  stats();
  window.goLive = { goLive, stop, preview }; // for the browser tests
}
