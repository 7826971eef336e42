// Link-mic on the viewer page: "Join on camera" asks the host (op `linkmic` request),
// "Cancel" leaves the queue; once the host accepts (state.linkmic.guests has me), the page
// asks for the camera, gets a one-time co-host token (op `linkmic` join) and publishes
// through WHIP with it. The program everyone watches then shows me; "Leave" ends it.

import { el } from "/static/dom.js";
import { publishWhip, cameraStream } from "/static/whip.js";

export function setupLinkmic({ client, stage }) {
  const box = el("div", { class: "linkmic-box" });
  Object.assign(box.style, { position: "absolute", right: "12px", top: "64px", zIndex: "7", display: "flex",
    flexDirection: "column", alignItems: "flex-end", gap: "6px" });
  const button = el("button", { type: "button", class: "pill linkmic-btn", text: "Join on camera" });
  Object.assign(button.style, { border: "0", borderRadius: "999px", padding: "6px 12px", cursor: "pointer",
    background: "rgba(0,0,0,.6)", color: "#fff", font: "600 13px system-ui, sans-serif" });
  const note = el("div", { class: "linkmic-note" });
  Object.assign(note.style, { font: "12px system-ui, sans-serif", color: "#fff", textShadow: "0 1px 2px #000", maxWidth: "180px", textAlign: "right" });
  const self = el("video", { autoplay: true, muted: true, playsInline: true });
  Object.assign(self.style, { width: "120px", borderRadius: "8px", display: "none", background: "#000" });
  box.append(button, note, self);
  stage.append(box);

  let phase = "idle"; // idle | queued | joining | on
  let session = null;
  let stream = null;
  let busy = false;
  let failed = false;

  const me = () => client.user?.id;
  function mine(lm) {
    if (!lm || !me()) return "idle";
    if (lm.guests.some((g) => g.user === me())) return "accepted";
    if (lm.queue.some((q) => q.user === me())) return "queued";
    return "idle";
  }

  async function publish() {
    phase = "joining";
    note.textContent = "The host accepted you: starting your camera…";
    try {
      stream = await cameraStream("", "", { width: 640, height: 360 });
      self.srcObject = stream;
      self.style.display = "";
      const reply = await client.request("linkmic", { action: "join" });
      session = await publishWhip(reply.whip, reply.token, stream, {
        onState: (s) => { if (s === "failed") leave("The connection dropped"); },
      });
      phase = "on";
      note.textContent = "You are on camera";
      box.dataset.phase = "on";
    } catch (err) {
      await leave(null);
      note.textContent = `Could not join: ${err.message}`;
      failed = true; // no automatic retry: leave the camera slot to the host's next guest
      await client.request("linkmic", { action: "cancel" }).catch(() => {});
    }
    render();
  }

  async function leave(message) {
    if (session) await session.stop();
    session = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    self.style.display = "none";
    delete box.dataset.phase;
    if (message) note.textContent = message;
    phase = "idle";
  }

  button.addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    try {
      const state = mine(client.state.linkmic);
      if (state === "idle" && phase === "idle") {
        await client.request("linkmic", { action: "request" });
        note.textContent = "Asked the host; waiting…";
      } else {
        await client.request("linkmic", { action: "cancel" }).catch(() => {});
        await leave(state === "queued" ? "Request cancelled" : "You left the camera");
      }
    } catch (err) {
      note.textContent = err.message;
    } finally {
      busy = false;
      render();
    }
  });

  function render() {
    const lm = client.state.linkmic;
    const state = mine(lm);
    const signed = client.user && client.user.role !== "guest";
    if (state !== "accepted") failed = false;
    if (state === "accepted" && phase === "idle" && !failed) publish();
    if (state !== "accepted" && (phase === "on" || phase === "joining") && session) leave("The link-mic has ended");
    box.hidden = !signed || (!lm?.allow && state === "idle" && phase === "idle");
    button.textContent = phase === "on" || phase === "joining" ? "Leave camera" : state === "queued" ? "Cancel request" : "Join on camera";
    box.dataset.state = state;
  }
  client.on("welcome", render);
  client.on("batch", render);
  window.linkmic = { render, get phase() { return phase; } };
}
