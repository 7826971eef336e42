// The replay page /rooms/{room}/replay: the room's archived events re-played in step with
// a time t (ms from the start of the recording, or of the first event when there is none).
// With a recording (HLS VOD from the media process) t is the video's currentTime; without
// one a local clock drives t (play / pause / speed). What is shown is a pure function of t
// (`render(t)`: binary search over the events sorted by time), so seeking works both ways.
import { LiveClient, newKey, describeError, yuan } from "/protocol/js/liveclient.js";

const params = new URLSearchParams(location.search);
const token = params.get("token") || localStorage.getItem("liveserver.viewer") || "";
if (params.get("token")) localStorage.setItem("liveserver.viewer", token);
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "demo");
const $ = (id) => document.getElementById(id);
const fmt = (ms) => { const s = Math.floor(ms / 1000); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; };
const money = (c) => (c / 100).toFixed(2);
const SHOWN = 500; // danmaku kept in the list (the count shows the total up to t)

let events = [];
let t0 = 0;
let duration = 0;
let t = 0;
let playing = false;
let speed = 1;
let last = 0;
let video = null;
let listings = {};
let client = null;

async function loadAll() {
  let after = "";
  let meta = null;
  for (;;) {
    const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/history${after ? `?after=${after}` : ""}`);
    const body = await res.json();
    if (!res.ok) throw new Error(body.error?.message || res.statusText);
    meta = meta || body;
    events.push(...body.events);
    if (!body.more || !body.events.length) break;
    after = body.events[body.events.length - 1].offset;
  }
  return meta;
}

function upto(ms) {
  // index of the first event with ts > t0 + ms
  let lo = 0, hi = events.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (events[mid].ts <= t0 + ms) lo = mid + 1; else hi = mid; }
  return lo;
}

function render(ms) {
  t = Math.max(0, Math.min(ms, duration));
  const n = upto(t);
  const retracted = new Set();
  let card = null, notice = null;
  const results = [];
  for (let i = 0; i < n; i++) {
    const e = events[i];
    if (e.k === "retract") retracted.add(e.target);
    else if (e.k === "card") card = e.product;
    else if (e.k === "notice") notice = e;
    else if (e.k === "lottery_result") results.push(e);
  }
  const danmaku = [];
  for (let i = 0; i < n; i++) if (events[i].k === "danmaku" && !retracted.has(events[i].offset)) danmaku.push(events[i]);
  const list = $("danmaku");
  const shown = danmaku.slice(-SHOWN);
  const key = shown.length ? `${danmaku.length}:${shown[shown.length - 1].offset}` : "0";
  if (list.dataset.key !== key) {
    list.dataset.key = key;
    list.replaceChildren(...shown.map((e) => {
      const li = document.createElement("li");
      li.dataset.offset = e.offset;
      const at = Object.assign(document.createElement("span"), { className: "at", textContent: fmt(e.ts - t0) });
      const who = Object.assign(document.createElement("span"), { className: "who", textContent: e.name || e.user });
      const text = Object.assign(document.createElement("span"), { className: "text", textContent: e.text });
      li.append(at, who, text);
      return li;
    }));
    list.parentElement.scrollTop = list.parentElement.scrollHeight;
    // the newest few fly over the picture
    $("overlay").replaceChildren(...danmaku.filter((e) => e.ts > t0 + t - 4000).slice(-8).map((e, i) => {
      const d = Object.assign(document.createElement("div"), { className: "fly", textContent: e.text });
      d.style.top = `${8 + i * 28}px`;
      return d;
    }));
  }
  $("count").textContent = String(danmaku.length);
  document.body.dataset.shown = String(danmaku.length);
  $("notice").hidden = !notice || notice.ts < t0 + t - 10000;
  if (notice) $("notice").textContent = notice.text;
  $("card").hidden = !card;
  if (card) {
    $("card-img").src = card.image || "/static/products/placeholder.svg";
    $("card-title").textContent = card.title;
    $("card-price").textContent = money(card.price);
    $("card-buy").href = `/rooms/${encodeURIComponent(room)}?product=${encodeURIComponent(card.id)}`;
    $("card-buy").dataset.product = card.id;
  }
  $("results").textContent = results.map((r) => `🎁 ${r.lottery_id}: ${r.winners.join(", ") || "no entrants"}`).join("  ");
  $("now").textContent = fmt(t);
  if (document.activeElement !== $("seek")) $("seek").value = String(Math.round(t));
  document.body.dataset.t = String(Math.round(t));
}

// the video's time in whole ms (events carry whole ms: no float rounding at a boundary)
const videoMs = () => Math.round(video.currentTime * 1000);

function frame(now) {
  if (playing && !video) {
    render(t + (now - last) * speed);
    if (t >= duration) { playing = false; $("play").textContent = "▶"; }
  } else if (video && !video.paused) {
    render(videoMs()); // smoother than timeupdate (4 a second)
  }
  last = now;
  requestAnimationFrame(frame);
}

$("play").addEventListener("click", () => {
  if (video) { video.paused ? video.play() : video.pause(); return; }
  if (t >= duration) render(0);
  playing = !playing;
  $("play").textContent = playing ? "❚❚" : "▶";
});
$("seek").addEventListener("input", () => {
  const ms = Number($("seek").value);
  if (video) video.currentTime = ms / 1000;
  render(ms);
});
$("speed").addEventListener("change", () => { speed = Number($("speed").value); if (video) video.playbackRate = speed; });

// A card in the replay buys at the list price through the same order path as the live
// (the `buy` op on the room's websocket, against the listing the room got when it ended).
$("card-buy").addEventListener("click", async (e) => {
  const sale = listings[$("card-buy").dataset.product];
  if (!sale) return; // no listing: the link opens the room page
  e.preventDefault();
  const msg = $("buy-msg");
  if (!token) { msg.className = "buy-msg err"; msg.textContent = "Sign in to buy (open this page with your token)."; return; }
  try {
    if (!client) {
      client = new LiveClient({ room, token });
      const open = new Promise((resolve) => client.on("welcome", resolve));
      client.connect();
      await open;
    }
    const data = await client.request("buy", { sale, qty: 1, key: newKey() });
    msg.className = "buy-msg ok";
    msg.dataset.order = data.order;
    msg.textContent = `Ordered ${yuan(data.amount)} · pay by ${new Date(data.pay_by_ms).toLocaleTimeString()}`;
  } catch (err) {
    msg.className = "buy-msg err";
    msg.textContent = describeError(err);
  }
});

window.replay = { seek: (ms) => { if (video) video.currentTime = ms / 1000; render(ms); }, get t() { return t; } };

const HLS_JS = "/static/vendor/hls.light.min.js";

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = Object.assign(document.createElement("script"), { src });
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

function setStart(ms) {
  // t0: when the video's time 0 happened (Redis-clock ms, like the events' `ts`)
  const now = t;
  t0 = ms;
  duration = Math.max(duration, (events.length ? events[events.length - 1].ts : t0) - t0 + 1000);
  $("seek").max = String(duration);
  $("total").textContent = fmt(duration);
  document.body.dataset.t0 = String(t0);
  render(video ? videoMs() : now);
}

// The recording (HLS VOD of the live) with the vendored hls.js, natively where there is no
// MSE. The video's currentTime drives t; its first #EXT-X-PROGRAM-DATE-TIME (hls.js reads
// it; the history API reads it too when it can) says when time 0 was.
async function startVideo(meta) {
  const v = $("video");
  if (meta.recording_poster) v.poster = meta.recording_poster;
  // hls.js wherever Media Source Extensions exist (it also gives us the playlist's
  // PROGRAM-DATE-TIME); the browser's own HLS (iOS Safari) otherwise.
  if (!window.Hls) await loadScript(HLS_JS).catch(() => {});
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ enableWorker: false });
    hls.on(window.Hls.Events.LEVEL_LOADED, (_e, data) => {
      const first = data.details && data.details.fragments && data.details.fragments[0];
      if (first && first.programDateTime) setStart(Math.round(first.programDateTime));
    });
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) $("source").textContent = `events (recording: ${data.details})`;
    });
    hls.loadSource(meta.recording);
    hls.attachMedia(v);
    document.body.dataset.player = "hls.js";
  } else if (v.canPlayType("application/vnd.apple.mpegurl")) {
    v.src = meta.recording;
    document.body.dataset.player = "native";
  } else {
    throw new Error("this browser cannot play HLS");
  }
  video = v;
  v.hidden = false;
  $("poster").hidden = true;
  v.playbackRate = speed;
  const follow = () => render(videoMs());
  v.addEventListener("timeupdate", follow);
  v.addEventListener("seeked", follow);
  v.addEventListener("seeking", follow);
  v.addEventListener("play", () => { $("play").textContent = "❚❚"; });
  v.addEventListener("pause", () => { $("play").textContent = "▶"; });
  v.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(v.duration)) { duration = Math.max(duration, v.duration * 1000); $("seek").max = String(duration); $("total").textContent = fmt(duration); }
    document.body.dataset.video = "1";
  });
  $("source").textContent = "recording + events";
  document.body.dataset.recording = meta.recording_id || "1";
}

loadAll().then((meta) => {
  $("title").textContent = meta.title || room;
  listings = meta.listings || {};
  document.title = `Replay · ${meta.title || room}`;
  events.sort((a, b) => a.ts - b.ts || (a.offset < b.offset ? -1 : 1));
  const first = events.length ? events[0].ts : Date.now();
  t0 = Number(meta.recording_start_ms) || first;
  duration = Math.max(0, (events.length ? events[events.length - 1].ts : t0) - t0) + 1000;
  if (meta.recording) {
    startVideo(meta).catch((err) => {
      video = null;
      $("video").hidden = true;
      $("poster").hidden = false;
      $("source").textContent = `events (cannot play the recording: ${err.message})`;
    });
  } else {
    $("source").textContent = "events timeline (no recording)";
  }
  $("seek").max = String(duration);
  $("total").textContent = fmt(duration);
  document.body.dataset.t0 = String(t0);
  render(0);
  document.body.dataset.ready = "1";
  requestAnimationFrame(frame);
}).catch((err) => { $("title").textContent = `cannot load the replay: ${err.message}`; });
