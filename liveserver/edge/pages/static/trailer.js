// The trailer page /rooms/{room}/trailer of a room in `preview`: title, host, start time
// with a countdown, the reserve button and count, a share link with `ref`. It polls the
// room every few seconds; when the room goes live it shows a banner (and a browser
// Notification if allowed) with the link to the live room. The merchant's reminders go
// out as the `room.live` webhook, listing every reservation.
const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "demo");
const token = params.get("token") || localStorage.getItem("liveserver.viewer") || "";
if (params.get("token")) localStorage.setItem("liveserver.viewer", token);
const $ = (id) => document.getElementById(id);
const api = (path, opts = {}) => fetch(`/api/v1/rooms/${encodeURIComponent(room)}${path}`, {
  ...opts, headers: token ? { Authorization: `Bearer ${token}` } : {},
}).then(async (r) => ({ ok: r.ok, body: await r.json() }));

let startMs = 0;
let reserved = false;
let announced = false;

function me() {
  try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub; } catch { return ""; }
}

function liveUrl() {
  const ref = params.get("ref");
  return `/rooms/${encodeURIComponent(room)}${ref ? `?ref=${encodeURIComponent(ref)}` : ""}`;
}

function showReserved(on, count) {
  reserved = on;
  $("reserve").textContent = on ? "✓ Reserved" : "Reserve";
  $("reserve").setAttribute("aria-pressed", String(on));
  if (count !== undefined) $("count").textContent = String(count);
}

function tickCountdown() {
  if (!startMs) { $("countdown").textContent = ""; return; }
  const left = Math.max(0, Math.floor((startMs - Date.now()) / 1000));
  const d = Math.floor(left / 86400), h = Math.floor(left / 3600) % 24, m = Math.floor(left / 60) % 60, s = left % 60;
  $("countdown").textContent = left ? `${d ? d + "d " : ""}${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : "starting…";
}

function goneLive() {
  if (announced) return;
  announced = true;
  $("banner").hidden = false;
  $("banner-link").href = liveUrl();
  if (reserved && "Notification" in window && Notification.permission === "granted") {
    new Notification("We are live!", { body: $("title").textContent });
  }
}

async function refresh() {
  const { ok, body } = await api("");
  if (!ok) { $("title").textContent = "No such room"; return; }
  $("title").textContent = body.title || room;
  document.title = `${body.title || room} · coming up live`;
  $("host").textContent = body.host_name || "host";
  $("desc").textContent = body.description || "";
  $("count").textContent = String(body.reservations);
  startMs = body.start_ms || 0;
  $("start").textContent = startMs ? new Date(startMs).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "Start time to be announced";
  tickCountdown();
  if (body.status === "live") goneLive();
  document.body.dataset.ready = "1";
}

$("reserve").addEventListener("click", async () => {
  const { ok, body } = await api("/reservations", { method: reserved ? "DELETE" : "POST" });
  if (!ok) { $("hint").textContent = body.error?.message || "could not reserve"; return; }
  showReserved(body.reserved, body.count);
  if (body.reserved && "Notification" in window && Notification.permission === "default") Notification.requestPermission();
});
$("copy").addEventListener("click", () => navigator.clipboard?.writeText($("share").value));

const share = new URL(location.href);
share.search = me() ? `?ref=${encodeURIComponent(me())}` : "";
$("share").value = share.toString();
if (token) {
  $("reserve").disabled = false;
  api("/reservation").then(({ ok, body }) => ok && showReserved(body.reserved, body.count));
} else {
  $("hint").textContent = "Sign in to reserve a reminder.";
}
refresh();
setInterval(refresh, 3000);
setInterval(tickCountdown, 1000);
