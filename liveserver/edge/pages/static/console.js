// The host console: the host API over fetch (every error shown in words) and the room
// websocket with the host token (live danmaku, state for stock/entrants/tallies).

import { LiveClient, yuan, toCents, clock, describeError } from "/protocol/js/liveclient.js";
import { Spark } from "/static/spark.js";
import { $, el, appendCapped } from "/static/dom.js";
import { badgeEl, legendEl } from "/static/badges.js";
import { setupGoLive } from "/static/golive.js";

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "demo");
const TOKEN_KEY = `liveserver.host.${room}`;
let token = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
let client = null;

const view = {
  products: [],
  results: new Map(), // lottery id -> result
  stats: null,
  feedCount: 0,
};

// -- helpers ------------------------------------------------------------------------------------
function say(out, text, kind = "") {
  out.textContent = text;
  out.className = "out" + (kind ? " " + kind : "");
}

function log(text, kind = "") {
  const li = el("li", { class: kind, text: `${new Date().toLocaleTimeString()} ${text}` });
  const list = $("log");
  list.prepend(li);
  while (list.children.length > 60) list.lastElementChild.remove();
}

const API_WORDS = {
  unauthorized: "The host token was refused",
  forbidden: "Not allowed",
  not_found: "Not found",
  bad_request: "Rejected",
  too_long: "Too long",
  not_started: "Not started yet",
  ended: "Already ended",
  sold_out: "Sold out",
  limit_reached: "Limit reached",
  already_claimed: "Already done",
  rate_limited: "Too many requests",
  internal: "Server error",
  network: "The server cannot be reached",
};

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
  get words() {
    const head = API_WORDS[this.code] || `Error (${this.code})`;
    return this.message && this.message !== head ? `${head}: ${this.message}` : head;
  }
}

async function api(method, path, body) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError("network", "check that liveserver is running", 0);
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(err?.code || "internal", err?.message || `HTTP ${res.status}`, res.status);
  }
  return data;
}

/** Run one host action: show progress, then the result or the error in words. */
async function act(out, label, fn) {
  say(out, `${label}…`);
  try {
    const text = await fn();
    say(out, text || `${label}: done`, "ok");
    log(text || `${label}: done`);
    return true;
  } catch (error) {
    const words = error instanceof ApiError ? error.words : describeError(error);
    say(out, `${label} failed. ${words}`, "err");
    log(`${label} failed. ${words}`, "err");
    // A refused or non-host token: ask for the right one.
    if (error instanceof ApiError && (error.code === "unauthorized" || error.code === "forbidden")) showGate(words);
    return false;
  }
}

function intField(form, name) {
  const v = form.elements[name].value.trim();
  if (!/^\d+$/.test(v)) throw new ApiError("bad_request", `${name.replace(/_/g, " ")} must be a whole number`, 0);
  return Number(v);
}

function centsField(form, name, label) {
  const cents = toCents(form.elements[name].value);
  if (!Number.isFinite(cents)) throw new ApiError("bad_request", `${label} must be an amount in yuan like 9.90`, 0);
  return cents;
}

// -- token gate ---------------------------------------------------------------------------------
function showGate(message = "") {
  $("gate").hidden = false;
  say($("gate-out"), message, message ? "err" : "");
}

$("gate-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("gate-token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("gate").hidden = true;
  start();
});

// -- websocket: live danmaku and state -------------------------------------------------------------
function connect() {
  if (client) client.close();
  client = new LiveClient({ room, token });
  window.liveClient = client;
  client.on("status", ({ status, reason }) => {
    const conn = $("conn");
    conn.dataset.status = status;
    conn.textContent = status === "open" ? "live" : status === "failed" ? `offline: ${reason}` : status;
    if (status === "failed") {
      log(`Websocket: ${reason}`, "err");
      if (/token/.test(reason)) showGate(`The live feed refused the token: ${reason}`);
    }
  });
  client.on("welcome", ({ frame }) => { renderPinned(frame.state.pin); renderState(); });
  client.on("batch", ({ frame }) => {
    for (const ev of frame.events) onEvent(ev);
    renderState();
  });
  client.connect();
}

function onEvent(ev) {
  if (ev.k === "danmaku") feedLine(ev);
  else if (ev.k === "retract") {
    const target = ev.target || ev.offset;
    const li = document.querySelector(`#feed li[data-offset="${CSS.escape(target)}"]`);
    if (li) li.classList.add("retracted");
  } else if (ev.k === "notice") feedSystem(`📣 ${ev.text}`);
  else if (ev.k === "pin") renderPinned(ev.pin);
  else if (ev.k === "lottery_result") {
    view.results.set(ev.lottery_id, ev);
    feedSystem(`🎁 winners: ${ev.winners.join(", ") || "none"}`);
  } else if (ev.k === "card" && ev.product) feedSystem(`🛍 card: ${ev.product.title}`);
}

function feedLine(ev) {
  view.feedCount += 1;
  const mute = el("button", { type: "button", class: "mini", text: "Mute 5m", title: `mute ${ev.user} for 5 minutes` });
  mute.addEventListener("click", () =>
    act($("feed-out"), `Mute ${ev.name || ev.user}`, async () => {
      await api("POST", `/rooms/${room}/mutes`, { user: ev.user, duration_s: 300 });
      return `${ev.name || ev.user} is muted for 5 minutes`;
    }));
  const retract = el("button", { type: "button", class: "mini warn", text: "Retract", title: "remove this danmaku from every screen" });
  retract.addEventListener("click", () =>
    act($("feed-out"), "Retract", async () => {
      await api("DELETE", `/rooms/${room}/danmaku/${encodeURIComponent(ev.offset)}`);
      return `Retracted “${ev.text}”`;
    }));
  const pin = el("button", { type: "button", class: "mini pin", text: "Pin", title: "pin above every viewer's chat" });
  pin.addEventListener("click", () =>
    act($("feed-out"), "Pin", async () => {
      await api("PUT", `/rooms/${room}/pin`, { offset: ev.offset });
      return `Pinned “${ev.text}”`;
    }));
  const isHost = ev.role === "host" || ev.role === "admin";
  const li = el("li", { "data-offset": ev.offset, "data-user": ev.user, class: isHost ? "host" : "" },
    el("span", { class: "t", text: new Date(ev.ts - (client?.clockOffset || 0)).toLocaleTimeString() }),
    ...(ev.badge ? [badgeEl(ev.badge)] : []),
    el("span", { class: "who", text: ev.name || ev.user, title: ev.user }),
    el("span", { class: "text", text: ev.text }),
    ...(isHost ? [pin, retract] : [pin, mute, retract]));
  appendFeed(li);
}

function renderPinned(pin) {
  const box = $("pinned");
  box.hidden = !pin;
  $("pinned-text").textContent = pin ? `Pinned: ${pin.name || pin.user}: ${pin.text}` : "";
}
$("unpin").addEventListener("click", () =>
  act($("feed-out"), "Unpin", async () => {
    await api("DELETE", `/rooms/${room}/pin`);
    return "Unpinned";
  }));
$("card-unpin").addEventListener("click", () =>
  act($("feed-out"), "Unpin card", async () => {
    await api("DELETE", `/rooms/${room}/cards`);
    return "Product card unpinned";
  }));
$("console-legend").replaceWith(legendEl());

function feedSystem(text) {
  appendFeed(el("li", { class: "system", text }));
}

function appendFeed(li) {
  appendCapped($("feed"), li, 200);
}

$("host-say").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = e.target.elements.text;
  const text = input.value.trim();
  if (!text || !client) return;
  input.value = ""; // now, not on the ack: the host may already be typing the next line
  try {
    await client.request("danmaku", { text });
    say($("feed-out"), "");
  } catch (error) {
    if (!input.value) input.value = text;
    say($("feed-out"), `Not sent. ${describeError(error)}`, "err");
  }
});

// -- live panel: stats polled + websocket state, charts -----------------------------------------------
const charts = {
  online: new Spark($("chart-online")),
  likes: new Spark($("chart-likes")),
  dm: new Spark($("chart-dm")),
  gmv: new Spark($("chart-gmv")),
};
let lastSample = null;

async function pollStats() {
  try {
    view.stats = await api("GET", `/rooms/${room}/stats`);
    say($("stats-out"), "");
  } catch (error) {
    say($("stats-out"), `Stats unavailable. ${error.words || error.message}`, "err");
  }
  try {
    // The cards' charts are the server's series (10 s steps, every node counted per tick),
    // so every console shows the same curves, whenever it was opened.
    view.live = await api("GET", `/rooms/${room}/live`);
  } catch {
    view.live = null;
  }
  sample();
  renderState();
}

function sample() {
  const s = client?.state || {};
  const st = view.stats || {};
  const now = performance.now();
  const likes = Math.max(s.likes || 0, st.likes || 0);
  const danmaku = st.danmaku ?? view.feedCount;
  const cur = { t: now, likes, danmaku };
  if (lastSample) {
    const dt = Math.max(0.2, (now - lastSample.t) / 1000);
    const likeRate = Math.max(0, (likes - lastSample.likes) / dt);
    const dmRate = Math.max(0, (danmaku - lastSample.danmaku) / dt);
    if (!view.live?.points?.length) {
      charts.likes.push(likeRate);
      charts.dm.push(dmRate);
    }
    $("kpi-likes-rate").textContent = likeRate.toFixed(1);
    $("kpi-dm-rate").textContent = dmRate.toFixed(1);
  }
  lastSample = cur;
  const pts = view.live?.points;
  if (pts?.length) {
    const perS = view.live.step_ms / 1000;
    charts.online.set(pts.map((p) => p.online));
    charts.likes.set(pts.map((p) => p.likes / perS));
    charts.dm.set(pts.map((p) => p.danmaku / perS));
    charts.gmv.set(pts.map((p) => p.gmv_cents / 100));
  } else {
    charts.online.push(s.online ?? st.online ?? 0);
    charts.gmv.push((st.gmv_cents || 0) / 100);
  }
  $("kpi-dm-total").textContent = danmaku;
}

function renderState() {
  const s = client?.state || {};
  const st = view.stats || {};
  $("kpi-online").textContent = s.online ?? st.online ?? 0;
  $("kpi-likes").textContent = Math.max(s.likes || 0, st.likes || 0);
  $("kpi-gmv").textContent = yuan(st.gmv_cents || 0);
  $("kpi-orders").textContent = st.orders_paid ?? 0;
  $("kpi-reserved").textContent = st.orders_reserved ?? 0;
  renderSales();
  renderCoupons();
  renderLotteries();
  renderPolls();
  renderGroups();
}

function renderGroups() {
  const body = $("groups-body");
  body.replaceChildren();
  for (const [id, g] of Object.entries(client?.state.groups || {}).reverse()) {
    const teams = Object.values(g.teams || {}).map((t) => (t.members || []).join("+")).join(" · ");
    body.append(el("tr", { "data-group": id },
      el("td", {}, el("div", { text: `${g.title || ""} ${yuan(g.price)} × ${g.size}` }), el("div", { class: "mono", text: id })),
      el("td", {}, phaseBadge(g.phase)),
      el("td", { text: `${g.stock ?? "?"}/${g.initial ?? "?"}` }),
      el("td", { text: `${g.teams_open ?? 0}${teams ? `: ${teams}` : ""}` })));
  }
}

function phaseBadge(phase) {
  return el("span", { class: `phase ${phase || ""}`, text: phase || "?" });
}

function salePhase(sale, now) {
  if (sale.phase === "ended" || now >= sale.end_ms) return "ended";
  if (sale.phase === "sold_out" || sale.stock <= 0) return "sold_out";
  if (now >= sale.start_ms) return "live";
  return "scheduled";
}

/** Keep one child per id in `parent` (created once, updated in place, so buttons survive updates). */
function keyed(parent, ids, create, update) {
  const have = new Map([...parent.children].map((n) => [n.dataset.key, n]));
  ids.forEach((id, i) => {
    let node = have.get(id);
    if (!node) {
      node = create(id);
      node.dataset.key = id;
    }
    update(node, id);
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
    have.delete(id);
  });
  for (const node of have.values()) node.remove();
}

function renderSales() {
  const now = client ? client.serverNow() : Date.now();
  const fromStats = new Map((view.stats?.sales || []).map((x) => [x.id, x]));
  const state = client?.state.sales || {};
  const ids = [...new Set([...fromStats.keys(), ...Object.keys(state)])].sort((a, b) => b.localeCompare(a, "en", { numeric: true }));
  keyed($("sales-body"), ids, (id) => {
    const audit = el("button", { type: "button", class: "mini", text: "Audit" });
    audit.addEventListener("click", () =>
      act($("sale-out"), `Audit ${id}`, async () => {
        const a = await api("GET", `/sales/${encodeURIComponent(id)}/audit`);
        const line = `stock ${a.stock} + reserved ${a.reserved} + paid ${a.paid} = ${a.stock + a.reserved + a.paid} of ${a.initial}`;
        if (!a.ok) throw new ApiError("internal", `${id} does NOT check out: ${(a.problems || []).join("; ")} (${line})`, 200);
        return `${id} checks out: ${line}`;
      }));
    return el("tr", { "data-sale": id },
      el("td", {}, el("div", { class: "title" }), el("div", { class: "mono" })),
      el("td", { class: "ph" }),
      el("td", {}, el("span", { class: "stock" }, el("i")), el("span", { class: "n" })),
      el("td", { class: "reserved" }),
      el("td", { class: "paid" }),
      el("td", {}, audit));
  }, (tr, id) => {
    const sale = { ...fromStats.get(id), ...state[id], id };
    const phase = sale.start_ms ? salePhase(sale, now) : sale.phase;
    const extra = phase === "scheduled" ? ` ${clock(sale.start_ms - now)}` : phase === "live" ? ` ${clock(sale.end_ms - now)}` : "";
    const initial = sale.initial || 1;
    tr.querySelector(".title").textContent = sale.title || id;
    tr.querySelector(".mono").textContent = `${id} · ${yuan(sale.price)}`;
    tr.querySelector(".ph").replaceChildren(phaseBadge(phase), extra);
    tr.querySelector(".stock i").style.width = `${(100 * (sale.stock || 0)) / initial}%`;
    tr.querySelector(".n").textContent = `${sale.stock ?? "?"}/${initial}`;
    tr.querySelector(".reserved").textContent = String(sale.reserved ?? "–");
    tr.querySelector(".paid").textContent = String(sale.paid ?? "–");
  });
}

function renderCoupons() {
  const now = client ? client.serverNow() : Date.now();
  const body = $("coupons-body");
  body.replaceChildren();
  for (const [id, c] of Object.entries(client?.state.coupons || {}).reverse()) {
    const left = c.phase === "live" && c.end_ms ? ` ${clock(c.end_ms - now)}` : "";
    body.append(el("tr", { "data-coupon": id },
      el("td", {}, el("div", { text: `${yuan(c.amount)} ${c.title || ""}` }), el("div", { class: "mono", text: id })),
      el("td", {}, phaseBadge(c.phase), left),
      el("td", { text: `${c.left ?? "?"}/${c.quantity ?? "?"}` })));
  }
}

function renderLotteries() {
  const now = client ? client.serverNow() : Date.now();
  const lotteries = client?.state.lotteries || {};
  const ids = Object.keys(lotteries).reverse();
  keyed($("lotteries"), ids, (id) => {
    const draw = el("button", { type: "button", class: "mini draw", text: "Draw now" });
    draw.addEventListener("click", () =>
      act($("lottery-out"), `Draw ${id}`, async () => {
        const r = await api("POST", `/rooms/${room}/lotteries/${encodeURIComponent(id)}/draw`);
        const result = r.result || r;
        view.results.set(id, result);
        renderLotteries();
        return `Drawn: ${result.winners.join(", ") || "no entrants"} (of ${result.entrants})`;
      }));
    return el("li", { "data-lottery": id },
      el("div", { class: "head" }, el("b", { class: "prize" }), el("span", {}, el("span", { class: "ph" }), el("span", { class: "entrants" }), " ", draw)),
      el("div", { class: "sub" }));
  }, (li, id) => {
    const l = lotteries[id];
    const result = view.results.get(id);
    li.querySelector(".prize").textContent = l.prize;
    li.querySelector(".ph").replaceChildren(phaseBadge(l.phase));
    li.querySelector(".entrants").textContent = ` ${l.entrants ?? 0} in`;
    li.querySelector(".draw").disabled = l.phase !== "live";
    li.querySelector(".sub").textContent = `${id} · ` + (result
      ? `winners: ${result.winners.join(", ") || "none"} · seed ${result.seed.slice(0, 16)}…`
      : `keyword “${l.keyword || "—"}” · ${l.winners} winner(s)${l.phase === "live" ? " · " + clock(l.end_ms - now) + " left" : ""}`);
  });
}

function renderPolls() {
  const now = client ? client.serverNow() : Date.now();
  const list = $("polls");
  list.replaceChildren();
  for (const [id, p] of Object.entries(client?.state.polls || {}).reverse()) {
    const tallies = p.tallies || [];
    const total = tallies.reduce((a, b) => a + b, 0);
    const grid = el("div", { class: "tally" });
    (p.options || []).forEach((label, i) => {
      const n = tallies[i] || 0;
      const pct = total ? Math.round((100 * n) / total) : 0;
      grid.append(el("span", { text: label }), el("span", { text: `${n} · ${pct}%` }),
        el("span", { class: "tbar" }, Object.assign(el("i"), { style: `width:${pct}%` })));
    });
    // Quiz: mark the correct option (closes voting), then reward the correct voters with a coupon.
    const quiz = el("div", { class: "row quiz" });
    if (typeof p.correct === "number") {
      const reward = el("button", { type: "button", class: "mini", text: "Reward correct voters ¥5" });
      reward.addEventListener("click", () =>
        act($("poll-out"), "Reward", async () => {
          const r = await api("POST", `/rooms/${room}/polls/${encodeURIComponent(id)}/reward`, { title: "Quiz reward", amount: 500 });
          return `Rewarded ${r.rewarded.length}: ${r.rewarded.join(", ") || "nobody was right"}`;
        }));
      quiz.append(el("span", { text: `Answer: ${(p.options || [])[p.correct]} ` }), reward);
    } else {
      (p.options || []).forEach((label, i) => {
        const mark = el("button", { type: "button", class: "mini", text: `✓ ${label}`, title: "reveal as the correct answer" });
        mark.addEventListener("click", () =>
          act($("poll-out"), "Reveal", async () => {
            const r = await api("POST", `/rooms/${room}/polls/${encodeURIComponent(id)}/reveal`, { correct: i });
            return `Answer revealed: ${r.correct_voters.length} right`;
          }));
        quiz.append(mark);
      });
    }
    list.append(el("li", { "data-poll": id },
      el("div", { class: "head" }, el("b", { text: p.question }), el("span", {}, phaseBadge(p.phase), p.phase === "live" ? ` ${clock(p.end_ms - now)}` : "")),
      grid, quiz));
  }
}

// -- products -------------------------------------------------------------------------------------
function productRow(p = { id: "", title: "", price: 0, image: "" }) {
  const tr = el("tr", { "data-product": p.id },
    el("td", {}, el("input", { name: "id", value: p.id, placeholder: "tea" })),
    el("td", {}, el("input", { name: "title", value: p.title, placeholder: "Product title" })),
    el("td", {}, el("input", { name: "price", value: p.price ? (p.price / 100).toFixed(2) : "", inputmode: "decimal", placeholder: "12.80" })),
    el("td", {}, el("input", { name: "image", value: p.image || "", placeholder: "/static/products/tea.svg" })));
  tr._points = p.points || [];
  const push = el("button", { type: "button", class: "mini push", text: "Push card" });
  push.addEventListener("click", () => {
    const id = tr.querySelector('[name="id"]').value.trim();
    act($("products-out"), `Push card ${id}`, async () => {
      const r = await api("POST", `/rooms/${room}/cards`, { product_id: id });
      return `Card pushed: ${r.card?.title || id}`;
    });
  });
  const sale = el("button", { type: "button", class: "mini", text: "Sale…" });
  sale.addEventListener("click", () => {
    const id = tr.querySelector('[name="id"]').value.trim();
    $("sale-product").value = id;
    $("sale-form").scrollIntoView({ behavior: "smooth", block: "center" });
  });
  const remove = el("button", { type: "button", class: "mini warn", text: "×", title: "remove (then Save list)" });
  remove.addEventListener("click", () => tr.remove());
  tr.append(el("td", {}, push, " ", sale, " ", remove));
  return tr;
}

function renderProducts() {
  const body = $("products-body");
  body.replaceChildren(...view.products.map(productRow));
  const select = $("sale-product");
  const chosen = select.value;
  select.replaceChildren(...view.products.map((p) => el("option", { value: p.id, text: `${p.title} (${yuan(p.price)})` })));
  if (chosen) select.value = chosen;
  const groupSelect = $("group-product");
  const groupChosen = groupSelect.value;
  groupSelect.replaceChildren(...view.products.map((p) => el("option", { value: p.id, text: `${p.title} (${yuan(p.price)})` })));
  if (groupChosen) groupSelect.value = groupChosen;
}

async function loadRoom() {
  try {
    const info = await api("GET", `/rooms/${room}`);
    view.products = info.products || [];
    $("room-title").value = info.title || "";
    $("room-status").value = info.status || "preview";
    renderProducts();
  } catch (error) {
    say($("products-out"), `Could not load the room. ${error.words || error.message}`, "err");
  }
}

$("product-add").addEventListener("click", () => $("products-body").append(productRow()));
$("products-save").addEventListener("click", () =>
  act($("products-out"), "Save products", async () => {
    const products = [...$("products-body").children].map((tr, i) => {
      const get = (n) => tr.querySelector(`[name="${n}"]`).value.trim();
      const price = toCents(get("price"));
      if (!get("id")) throw new ApiError("bad_request", `row ${i + 1}: id is empty`, 0);
      if (!get("title")) throw new ApiError("bad_request", `row ${i + 1}: title is empty`, 0);
      if (!Number.isFinite(price)) throw new ApiError("bad_request", `row ${i + 1}: price must be in yuan like 12.80`, 0);
      const p = { id: get("id"), title: get("title"), price };
      if (get("image")) p.image = get("image");
      if (tr._points.length) p.points = tr._points;
      return p;
    });
    const r = await api("PUT", `/rooms/${room}/products`, { products });
    view.products = r.products || products;
    renderProducts();
    return `Saved ${view.products.length} products`;
  }));

// -- forms -----------------------------------------------------------------------------------------
function onSubmit(id, out, label, fn) {
  $(id).addEventListener("submit", (e) => {
    e.preventDefault();
    const button = e.target.querySelector("button[type=submit]");
    button.disabled = true;
    act($(out), label, () => fn(e.target)).finally(() => (button.disabled = false));
  });
}

onSubmit("sale-form", "sale-out", "Start sale", async (f) => {
  const body = {
    product_id: f.elements.product_id.value,
    price: centsField(f, "price", "price"),
    stock: intField(f, "stock"),
    per_user_limit: intField(f, "per_user_limit"),
    start_in_s: intField(f, "start_in_s"),
    duration_s: intField(f, "duration_s"),
  };
  if (!body.product_id) throw new ApiError("bad_request", "add a product first", 0);
  const { sale } = await api("POST", `/rooms/${room}/sales`, body);
  return `Sale ${sale.id} created: ${sale.stock} × ${yuan(sale.price)}, starts in ${clock(sale.start_ms - client.serverNow())}`;
});

onSubmit("coupon-form", "coupon-out", "Drop coupon", async (f) => {
  const body = {
    title: f.elements.title.value.trim(),
    amount: centsField(f, "amount", "amount"),
    min_spend: centsField(f, "min_spend", "min spend"),
    quantity: intField(f, "quantity"),
    per_user: intField(f, "per_user"),
    duration_s: intField(f, "duration_s"),
  };
  const at = f.elements.at.value;
  if (at) {
    const local = new Date(at).getTime();
    if (!Number.isFinite(local)) throw new ApiError("bad_request", "drop time is not a valid time", 0);
    body.at_ms = Math.round(local + (client?.clockOffset || 0)); // the host's wall clock -> server clock
  }
  const { coupon } = await api("POST", `/rooms/${room}/coupons`, body);
  return at
    ? `Coupon ${coupon.id} will drop at ${new Date(coupon.start_ms - (client?.clockOffset || 0)).toLocaleTimeString()}`
    : `Coupon ${coupon.id} dropped: ${coupon.quantity} × ${yuan(coupon.amount)}`;
});

onSubmit("group-form", "group-out", "Start group buy", async (f) => {
  const body = {
    product_id: f.elements.product_id.value,
    price: centsField(f, "price", "price"),
    size: intField(f, "size"),
    stock: intField(f, "stock"),
    per_user_limit: intField(f, "per_user_limit"),
    team_window_s: intField(f, "team_window_s"),
    duration_s: intField(f, "duration_s"),
  };
  if (!body.product_id) throw new ApiError("bad_request", "add a product first", 0);
  const { group } = await api("POST", `/rooms/${room}/groups`, body);
  return `Group buy ${group.id} started: teams of ${group.size} at ${yuan(group.price)}, ${group.stock} units`;
});

onSubmit("lottery-form", "lottery-out", "Start lottery", async (f) => {
  const body = { prize: f.elements.prize.value.trim(), winners: intField(f, "winners"), duration_s: intField(f, "duration_s") };
  const keyword = f.elements.keyword.value.trim();
  if (keyword) body.keyword = keyword;
  const { lottery } = await api("POST", `/rooms/${room}/lotteries`, body);
  return `Lottery ${lottery.id} started${keyword ? `: viewers enter by sending “${keyword}”` : ""}`;
});

onSubmit("poll-form", "poll-out", "Start poll", async (f) => {
  const options = f.elements.options.value.split("\n").map((s) => s.trim()).filter(Boolean);
  const { poll } = await api("POST", `/rooms/${room}/polls`, {
    question: f.elements.question.value.trim(), options, duration_s: intField(f, "duration_s"),
  });
  return `Poll ${poll.id} started`;
});

onSubmit("notice-form", "notice-out", "Send notice", async (f) => {
  const text = f.elements.text.value.trim();
  await api("POST", `/rooms/${room}/notices`, { text });
  if (f.elements.text.value.trim() === text) f.elements.text.value = ""; // keep an edit made meanwhile
  return "Notice sent";
});

onSubmit("room-form", "room-out", "Save room", async (f) => {
  const body = { status: f.elements.status.value };
  if (f.elements.title.value.trim()) body.title = f.elements.title.value.trim();
  await api("PUT", `/rooms/${room}`, body);
  return `Room saved (${body.status})`;
});

// -- start ------------------------------------------------------------------------------------------
let started = false;
function start() {
  if (!token) {
    showGate();
    return;
  }
  $("main").hidden = false;
  $("viewer-link").href = `/rooms/${encodeURIComponent(room)}`;
  if (started) {
    connect();
    return;
  }
  started = true;
  setupGoLive({ room, token });
  loadRoom();
  connect();
  pollStats();
  setInterval(pollStats, 1000);
  setInterval(() => {
    // countdowns in the lists
    if (client && client.status === "open") {
      renderSales();
      renderCoupons();
      renderLotteries();
    }
  }, 1000);
}

$("room-name").textContent = room;
document.title = `Console · ${room}`;
if (params.get("token")) sessionStorage.setItem(TOKEN_KEY, token);
start();
