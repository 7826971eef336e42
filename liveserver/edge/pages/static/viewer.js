// The viewer live-room page. Everything it shows comes from the room websocket
// (welcome.state + batches) through LiveClient; the few HTTP reads are public ones
// (room title/products, lottery entrants for verification) and the viewer's own coupons.

import { LiveClient, yuan, clock, newKey, describeError } from "/protocol/js/liveclient.js";
import { verify as verifyDraw } from "/protocol/js/lottery_verify.js";
import { DanmakuLanes } from "/static/danmaku.js";
import { $, el, appendCapped } from "/static/dom.js";
import { LivePlayer } from "/static/player.js";
import { mountGroups } from "/static/groups.js";
import { couponPicker } from "/static/checkout.js";
import { badgeEl, legendEl } from "/static/badges.js";
import { setupLinkmic } from "/static/linkmic.js";

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "demo");
const token = params.get("token");
const client = new LiveClient({ room, token, codec: params.get("codec") === "msgpack" ? "msgpack" : "json" });
window.liveClient = client; // handy in devtools and for the browser tests

const view = {
  products: new Map(), // product id -> product (for images and list prices)
  names: new Map(), // user id -> name seen in danmaku
  sales: new Map(), // sale id -> the latest full sale map from events
  coupons: new Map(), // coupon id -> the latest coupon map from events
  shownCoupons: new Set(), // coupon ids that already popped up
  claimed: new Set(),
  entered: new Set(),
  hiddenLottery: null, // the lottery id whose chip the viewer closed
  results: new Map(), // lottery id -> lottery_result event
  voted: new Map(), // poll id -> option index
  couponId: null, // the coupon in the pop-up
  likesShown: 0,
  likesUnsent: 0,
  welcomed: false,
};

const lanes = new DanmakuLanes($("danmaku-layer"));
const player = (window.livePlayer = new LivePlayer($("video"), { token }));
client.on("welcome", () => player.update(client.state.media));
client.on("batch", () => player.update(client.state.media));
setupLinkmic({ client, stage: $("stage") });

// -- small DOM helpers ------------------------------------------------------------------
function setMsg(el, text, kind = "") {
  el.textContent = text;
  el.className = el.className.replace(/\b(ok|err)\b/g, "").trim() + (kind ? " " + kind : "");
}

function isMe(userId) {
  return client.user && client.user.id === userId;
}

function signedIn() {
  return client.user && client.user.role !== "guest";
}

// -- connection banner --------------------------------------------------------------------
client.on("status", ({ status, reason }) => {
  const banner = $("conn-banner");
  banner.classList.toggle("failed", status === "failed");
  if (status === "open" || status === "closed") banner.hidden = true;
  else {
    banner.hidden = false;
    banner.textContent =
      status === "failed" ? `Can't watch this room: ${reason}` :
      status === "reconnecting" ? "Reconnecting…" : "Connecting…";
  }
  document.body.dataset.conn = status;
});

// -- welcome and batches -------------------------------------------------------------------
client.on("welcome", ({ frame, recovered }) => {
  const first = !view.welcomed;
  view.welcomed = true;
  const who = frame.user;
  $("whoami").textContent = who.role === "guest"
    ? "Watching as a guest: open the link with your ?token= to chat, buy and claim."
    : `Signed in as ${who.name}${who.role !== "viewer" ? ` (${who.role})` : ""}`;
  if (!first) {
    systemLine(recovered ? "Reconnected." : "Reconnected (older messages may be missing).");
  }
  if (!recovered) {
    // Fresh state: the pop-ups for what is already running are shown as chips, not sprung on the viewer.
    for (const [id, c] of Object.entries(frame.state.coupons || {})) if (c.phase !== "live" || first) view.shownCoupons.add(id);
  }
  renderAll();
});

client.on("batch", ({ frame }) => {
  for (const ev of frame.events) onEvent(ev);
  renderAll();
});

function onEvent(ev) {
  switch (ev.k) {
    case "danmaku":
      view.names.set(ev.user, ev.name);
      lanes.add(ev, isMe(ev.user));
      chatLine(ev);
      break;
    case "retract": {
      const target = ev.target || ev.offset; // `target` names the danmaku; `offset` is the retract's own
      lanes.retract(target);
      document.querySelectorAll(`#chat li[data-offset="${CSS.escape(target)}"]`).forEach((li) => li.remove());
      break;
    }
    case "pin":
      renderPin(ev.pin);
      break;
    case "follow":
      systemLine(`${ev.name} followed the host`);
      break;
    case "notice":
      showNotice(ev.text);
      systemLine(`📣 ${ev.text}`);
      break;
    case "card":
      if (ev.product) view.products.set(ev.product.id, { ...view.products.get(ev.product.id), ...ev.product });
      break;
    case "sale":
      if (ev.sale) view.sales.set(ev.sale.id, ev.sale);
      break;
    case "coupon":
      if (ev.coupon) view.coupons.set(ev.coupon.id, { ...view.coupons.get(ev.coupon.id), ...ev.coupon });
      if (ev.coupon && ev.coupon.phase === "live" && !view.shownCoupons.has(ev.coupon.id)) {
        view.shownCoupons.add(ev.coupon.id);
        openCoupon(ev.coupon.id);
      }
      break;
    case "lottery":
      if (ev.lottery && ev.lottery.phase === "live") view.hiddenLottery = null;
      break;
    case "lottery_result":
      view.results.set(ev.lottery_id, ev);
      showWinners(ev);
      break;
    default:
      break;
  }
}

// -- chat column ------------------------------------------------------------------------------
const CHAT_MAX = 80;

function chatLine(ev) {
  const li = el("li", { "data-offset": ev.offset, class: ev.role === "host" || ev.role === "admin" ? "host" : "" },
    ...(ev.badge ? [badgeEl(ev.badge)] : []),
    el("span", { class: "who", text: ev.name || ev.user }), el("span", { class: "text", text: ev.text }));
  appendChat(li);
}

function systemLine(text) {
  appendChat(el("li", { class: "system", text }));
}

function appendChat(li) {
  appendCapped($("chat"), li, CHAT_MAX);
}

function showNotice(text) {
  const box = $("notices");
  const n = el("div", { class: "notice", text: `📣 ${text}` });
  box.append(n);
  while (box.children.length > 2) box.firstElementChild.remove();
  setTimeout(() => n.remove(), 6000);
}

// -- danmaku input ------------------------------------------------------------------------------
$("compose").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("dm-input");
  const text = input.value.trim();
  if (!text) return;
  const err = $("dm-error");
  setMsg(err, "");
  // Cleared now, not on the ack: what the viewer types while the ack is on its way is theirs.
  input.value = "";
  try {
    await client.request("danmaku", { text });
    const lottery = currentLottery();
    if (lottery && lottery.keyword && text.toLowerCase().includes(lottery.keyword.toLowerCase())) {
      view.entered.add(lottery.id);
      renderLottery();
    }
  } catch (error) {
    if (!input.value) input.value = text; // give the refused text back to edit
    let words = describeError(error);
    if (error.code === "muted" && error.extra.until_ms) {
      words += ` until ${new Date(error.extra.until_ms - client.clockOffset).toLocaleTimeString()}`;
    }
    setMsg(err, words, "err");
  }
});

// -- likes --------------------------------------------------------------------------------------
$("like-btn").addEventListener("click", () => {
  view.likesUnsent += 1;
  view.likesShown += 1;
  $("like-count").textContent = compact(view.likesShown);
  burst();
  const btn = $("like-btn");
  btn.classList.add("pop");
  setTimeout(() => btn.classList.remove("pop"), 90);
});

setInterval(() => {
  // Likes are batched: one `like` frame with n per 300 ms however fast the taps.
  if (view.likesUnsent > 0 && client.status === "open") {
    const n = Math.min(50, view.likesUnsent);
    if (client.send("like", { n })) view.likesUnsent -= n;
  }
}, 300);

const HEARTS = ["❤️", "💖", "💗", "🧡", "💜", "✨"];
function burst() {
  const box = $("burst");
  for (let i = 0; i < 2; i++) {
    if (box.children.length > 24) box.firstElementChild.remove();
    const h = el("span", { class: "heart", text: HEARTS[Math.floor(Math.random() * HEARTS.length)] });
    h.style.setProperty("--dx", `${Math.round((Math.random() - 0.5) * 90)}px`);
    h.style.animationDelay = `${i * 80}ms`;
    h.addEventListener("animationend", () => h.remove());
    box.append(h);
  }
}

function compact(n) {
  if (n >= 1e8) return (n / 1e8).toFixed(1) + "亿";
  if (n >= 1e4) return (n / 1e4).toFixed(1) + "w";
  return String(n);
}

// -- rendering from state ----------------------------------------------------------------------
function renderAll() {
  const s = client.state;
  view.likesShown = Math.max(view.likesShown, s.likes || 0);
  $("like-count").textContent = compact(view.likesShown);
  $("likes-total").textContent = compact(view.likesShown);
  $("online-count").textContent = compact(s.online || 0);
  const dropped = s.danmaku_dropped || 0;
  $("dropped").hidden = !dropped;
  $("dropped").textContent = `${dropped} messages skipped in busy moments`;
  const follow = $("follow-btn");
  follow.textContent = `${view.following ? "Following" : "+ Follow"} · ${compact(s.followers || 0)}`;
  follow.classList.toggle("on", !!view.following);
  renderCard();
  renderSale();
  renderCoupon();
  renderLottery();
  renderPoll();
  tickClocks();
}

/** A sale's phase by the server clock (events may lag a tick behind the countdown). */
function salePhase(sale, now = client.serverNow()) {
  if (sale.phase === "ended" || now >= sale.end_ms) return "ended";
  if (sale.phase === "sold_out" || sale.stock <= 0) return "sold_out";
  if (now >= sale.start_ms) return "live";
  return "scheduled";
}

function allSales() {
  const out = [];
  const state = client.state.sales || {};
  const ids = new Set([...Object.keys(state), ...view.sales.keys()]);
  for (const id of ids) out.push({ ...view.sales.get(id), ...state[id], id });
  return out;
}

/** The sale to put in the banner: a live one, else the next scheduled, else a sold-out one. */
function currentSale() {
  const rank = { live: 0, scheduled: 1, sold_out: 2 };
  let best = null;
  for (const sale of allSales()) {
    const phase = salePhase(sale);
    if (!(phase in rank)) continue;
    if (!best || rank[phase] < rank[best.phase] || (rank[phase] === rank[best.phase] && sale.start_ms < best.sale.start_ms)) {
      best = { sale, phase };
    }
  }
  return best && best.sale;
}

function saleForProduct(productId) {
  let found = null;
  for (const sale of allSales()) {
    if (sale.product_id !== productId || salePhase(sale) === "ended") continue;
    if (!found || sale.start_ms > found.start_ms) found = sale;
  }
  return found;
}

function renderSale() {
  const sale = currentSale();
  const box = $("sale");
  box.hidden = !sale;
  if (!sale) return;
  box.dataset.sale = sale.id;
  const product = view.products.get(sale.product_id);
  $("sale-title").textContent = sale.title || product?.title || "Flash sale";
  $("sale-price").textContent = yuan(sale.price);
  $("sale-was").textContent = product && product.price > sale.price ? yuan(product.price) : "";
  const initial = sale.initial || sale.stock || 1;
  $("sale-stock").textContent = sale.stock;
  $("sale-initial").textContent = initial;
  $("sale-limit").textContent = sale.per_user_limit ?? 1;
  $("sale-stockbar").style.width = `${Math.max(0, Math.min(100, (100 * sale.stock) / initial))}%`;
}

function renderCard() {
  const product = client.state.card;
  const card = $("card");
  card.hidden = !product;
  if (!product) return;
  view.products.set(product.id, { ...view.products.get(product.id), ...product });
  card.dataset.product = product.id;
  const img = $("card-img");
  const src = product.image || "/static/products/placeholder.svg";
  if (img.getAttribute("src") !== src) img.src = src;
  img.alt = product.title;
  $("card-title").textContent = product.title;
  $("card-points").textContent = (product.points || []).join(" · ");
  const sale = saleForProduct(product.id);
  if (sale) {
    $("card-price").textContent = yuan(sale.price);
    $("card-stock").textContent = `${sale.stock} left`;
  } else {
    $("card-price").textContent = yuan(product.price);
    $("card-stock").textContent = "";
  }
}

// Countdowns: recomputed from server-clock timestamps a few times a second (nothing is pushed per second).
function tickClocks() {
  const now = client.serverNow();
  const sale = currentSale();
  if (sale && !$("sale").hidden) {
    const phase = salePhase(sale, now);
    const label = $("sale-clock-label");
    const countdown = $("sale-countdown");
    if (phase === "scheduled") {
      label.textContent = "Starts in";
      countdown.textContent = clock(sale.start_ms - now);
    } else if (phase === "live") {
      label.textContent = "Ends in";
      countdown.textContent = clock(sale.end_ms - now);
    } else {
      label.textContent = "";
      countdown.textContent = phase === "sold_out" ? "Sold out" : "Ended";
    }
    $("sale").dataset.phase = phase;
    const buy = $("sale-buy");
    if (!view.buying) {
      buy.disabled = phase !== "live";
      buy.textContent = phase === "sold_out" ? "Sold out" : phase === "scheduled" ? "Soon" : "Buy now";
    }
  }
  const product = client.state.card;
  if (product && !view.buying) {
    const cardSale = saleForProduct(product.id);
    const cb = $("card-buy");
    if (cardSale) {
      const phase = salePhase(cardSale, now);
      cb.disabled = phase !== "live";
      cb.textContent = phase === "live" ? "Buy" : phase === "scheduled" ? clock(cardSale.start_ms - now) : "Sold out";
    } else {
      cb.disabled = false;
      cb.textContent = "Want it";
    }
  }
  const coupon = view.couponId && couponInfo(view.couponId);
  if (coupon) $("coupon-countdown").textContent = clock((coupon.end_ms || 0) - now);
  const lottery = currentLottery();
  if (lottery && !$("lottery").hidden) {
    $("lottery-countdown").textContent = now < lottery.end_ms ? clock(lottery.end_ms - now) : "drawing…";
  }
  const poll = currentPoll();
  if (poll && !$("poll").hidden) {
    $("poll-countdown").textContent = poll.phase === "ended" || now >= poll.end_ms ? "final" : clock(poll.end_ms - now);
  }
}
setInterval(tickClocks, 200);

// -- buying -------------------------------------------------------------------------------------
async function buy(saleId, msgEl) {
  if (!saleId) return;
  view.buying = true;
  $("sale-buy").disabled = true;
  $("card-buy").disabled = true;
  setMsg(msgEl, "Buying…");
  try {
    const coupon = coupons.selected();
    const r = await client.request("buy", { sale: saleId, qty: 1, key: newKey(), ...(coupon ? { coupon } : {}) });
    const payIn = r.pay_by_ms ? ` · pay within ${clock(r.pay_by_ms - client.serverNow())}` : "";
    const owed = r.coupon ? `${yuan(r.amount)} to pay (coupon −${yuan(r.discount)})` : `${r.qty} × ${yuan(r.amount / (r.qty || 1))}`;
    setMsg(msgEl, `Got it! Order ${r.order}: ${owed}${payIn}`, "ok");
    if (r.coupon) coupons.refresh();
    const sales = client.state.sales || {};
    if (sales[saleId] && typeof r.stock === "number") sales[saleId].stock = Math.min(sales[saleId].stock, r.stock);
  } catch (error) {
    setMsg(msgEl, error.extra && error.extra.coupon ? error.message : describeError(error), "err");
  } finally {
    view.buying = false;
    renderAll();
  }
}

$("sale-buy").addEventListener("click", () => buy($("sale").dataset.sale, $("sale-msg")));
$("card-buy").addEventListener("click", async () => {
  const product = client.state.card;
  if (!product) return;
  const sale = saleForProduct(product.id);
  client.request("click", { product: product.id }).catch(() => {});
  if (sale && salePhase(sale) === "live") return buy(sale.id, $("card-msg"));
  setMsg($("card-msg"), "No sale on this one yet: the host now knows you want it.", "ok");
});

// -- coupons ------------------------------------------------------------------------------------
/** What we know of a coupon: its event (title, amount…) overlaid with the live state (left, phase). */
function couponInfo(id) {
  const known = view.coupons.get(id);
  const live = (client.state.coupons || {})[id];
  if (!known && !live) return null;
  const merged = { ...known, id };
  for (const [k, v] of Object.entries(live || {})) if (v !== null && v !== undefined) merged[k] = v;
  return merged;
}

function renderCoupon() {
  // A coupon that went live after a scheduled drop pops up once.
  for (const [id, c] of Object.entries(client.state.coupons || {})) {
    if (c.phase === "live" && !view.shownCoupons.has(id)) {
      view.shownCoupons.add(id);
      openCoupon(id);
    }
  }
  if (view.couponId) fillCoupon(couponInfo(view.couponId) || { id: view.couponId });
  // A chip for the coupon still open, so a late joiner (or one who closed the pop-up) can claim.
  const live = Object.entries(client.state.coupons || {}).filter(([, c]) => c.phase === "live" && c.left !== 0);
  const pill = $("coupon-pill");
  pill.hidden = !live.length;
  if (live.length) {
    const [id, c] = live[live.length - 1];
    pill.dataset.coupon = id;
    $("coupon-pill-amount").textContent = yuan(c.amount);
  }
}
$("coupon-pill").addEventListener("click", () => {
  const id = $("coupon-pill").dataset.coupon;
  if (id) openCoupon(id);
});

function fillCoupon(c) {
  $("coupon-amount").textContent = yuan(c.amount);
  $("coupon-title").textContent = c.title || "Coupon";
  $("coupon-rule").textContent = c.min_spend ? `${yuan(c.amount)} off orders over ${yuan(c.min_spend)}` : `${yuan(c.amount)} off, no minimum`;
  $("coupon-left").textContent = c.left ?? "?";
  const claim = $("coupon-claim");
  claim.textContent = view.claimed.has(c.id) ? "Claimed ✓" : c.left === 0 ? "All gone" : c.phase === "ended" ? "Ended" : "Claim";
}

function openCoupon(id) {
  view.couponId = id;
  setMsg($("coupon-msg"), "");
  fillCoupon(couponInfo(id) || { id });
  openModal("coupon-modal");
}

$("coupon-claim").addEventListener("click", async () => {
  const id = view.couponId;
  if (!id) return;
  const msg = $("coupon-msg");
  setMsg(msg, "Claiming…");
  try {
    const r = await client.request("claim", { coupon: id });
    view.claimed.add(id);
    setMsg(msg, "Claimed! It is in My coupons.", "ok");
    coupons.refresh();
    const c = (client.state.coupons || {})[id];
    if (c && typeof r.left === "number") c.left = r.left;
  } catch (error) {
    if (error.code === "already_claimed") view.claimed.add(id);
    setMsg(msg, describeError(error), "err");
  }
  fillCoupon(couponInfo(id) || { id });
});

async function showMyCoupons() {
  openModal("mine-modal");
  const list = $("mine-list");
  const msg = $("mine-msg");
  list.replaceChildren();
  if (!token || !signedIn()) {
    setMsg(msg, "Sign in (open the page with your ?token=) to keep coupons.", "err");
    return;
  }
  setMsg(msg, "Loading…");
  try {
    const res = await fetch(`/api/v1/users/${encodeURIComponent(client.user.id)}/coupons`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error ? `${body.error.message} (${body.error.code})` : `HTTP ${res.status}`);
    const coupons = body.coupons || [];
    for (const c of coupons) {
      const rule = c.min_spend ? `over ${yuan(c.min_spend)}` : "no minimum";
      list.append(el("li", { "data-coupon": c.coupon_id },
        el("span", {}, el("b", { text: yuan(c.amount) }), ` ${c.title || c.coupon_id}`),
        el("span", { class: "muted", text: rule })));
    }
    setMsg(msg, coupons.length ? "" : "No coupons yet.");
  } catch (error) {
    setMsg(msg, `Could not load your coupons: ${error.message}`, "err");
  }
}
$("my-coupons-btn").addEventListener("click", showMyCoupons);
$("coupon-mine").addEventListener("click", showMyCoupons);

// -- lottery ------------------------------------------------------------------------------------
function allLotteries() {
  return Object.entries(client.state.lotteries || {}).map(([id, l]) => ({ id, ...l }));
}

function currentLottery() {
  let best = null;
  for (const l of allLotteries()) {
    if (l.phase !== "live") continue;
    if (!best || l.end_ms > best.end_ms) best = l;
  }
  return best;
}

function renderLottery() {
  const l = currentLottery();
  const chip = $("lottery");
  const hidden = !l || view.hiddenLottery === l.id;
  chip.hidden = hidden;
  $("lottery-mini").hidden = !(l && view.hiddenLottery === l.id);
  if (!l) return;
  chip.dataset.lottery = l.id;
  $("lottery-prize").textContent = l.prize || "A prize";
  const how = $("lottery-how");
  how.replaceChildren();
  const cond = l.conditions || {};
  if (cond.keyword) how.append("Send ", el("code", { text: l.keyword }), " in chat");
  else if (l.keyword) how.append("Send ", el("code", { text: l.keyword }), " in chat or tap Join");
  else how.append("Tap Join to enter");
  if (cond.follow) how.append(" · followers only");
  if (cond.watch_s) how.append(` · watch ${Math.ceil(cond.watch_s / 60)} min`);
  if (l.coupon) how.append(` · prize: ${yuan(l.coupon.amount)} coupon`);
  how.append(` · ${l.winners || 1} winner${l.winners === 1 ? "" : "s"}`);
  $("lottery-entrants").textContent = l.entrants ?? 0;
  const enter = $("lottery-enter");
  enter.textContent = view.entered.has(l.id) ? "You're in ✓" : "Join";
  enter.disabled = view.entered.has(l.id);
}

$("lottery-enter").addEventListener("click", async () => {
  const l = currentLottery();
  if (!l) return;
  try {
    const r = await client.request("enter", { lottery: l.id });
    view.entered.add(l.id);
    const st = (client.state.lotteries || {})[l.id];
    if (st && typeof r.entrants === "number") st.entrants = Math.max(st.entrants || 0, r.entrants);
    setMsg($("lottery-msg"), "");
  } catch (error) {
    setMsg($("lottery-msg"), error.code === "forbidden" ? error.message : describeError(error), "err");
  }
  renderLottery();
});
$("lottery-close").addEventListener("click", () => {
  view.hiddenLottery = currentLottery()?.id || null;
  renderLottery();
});
$("lottery-mini").addEventListener("click", () => {
  view.hiddenLottery = null;
  renderLottery();
});

function showWinners(result) {
  const lottery = (client.state.lotteries || {})[result.lottery_id] || {};
  const modal = $("winners-modal");
  modal.dataset.lottery = result.lottery_id;
  $("winners-prize").textContent = lottery.prize ? `Prize: ${lottery.prize}` : "";
  const me = client.user && result.winners.includes(client.user.id);
  const you = $("winners-you");
  you.textContent = me ? "🎉 You won!" : signedIn() && view.entered.has(result.lottery_id) ? "Not this time. Thanks for joining!" : "";
  you.classList.toggle("won", !!me);
  $("claim-form").hidden = !me;
  setMsg($("claim-msg"), lottery.coupon && me ? `Your ${yuan(lottery.coupon.amount)} coupon is in My coupons.` : "");
  const list = $("winners-list");
  list.replaceChildren();
  for (const user of result.winners) {
    const name = view.names.get(user);
    list.append(el("li", { class: isMe(user) ? "me" : "", "data-user": user, text: name && name !== user ? `${name} (${user})` : user }));
  }
  if (!result.winners.length) list.append(el("li", { text: "No one entered." }));
  $("winners-meta").textContent = `${result.entrants} entrant${result.entrants === 1 ? "" : "s"}`;
  $("verify").hidden = true;
  $("verify-result").textContent = "";
  openModal("winners-modal");
}

$("claim-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  try {
    await client.request("prize_claim", {
      lottery: $("winners-modal").dataset.lottery,
      name: f.elements.name.value.trim(), phone: f.elements.phone.value.trim(), address: f.elements.address.value.trim(),
    });
    f.hidden = true;
    setMsg($("claim-msg"), "Thanks! The prize will be shipped to you.", "ok");
  } catch (error) {
    setMsg($("claim-msg"), error.code === "ended" || error.code === "already_claimed" ? error.message : describeError(error), "err");
  }
});

async function runVerify() {
  const lotteryId = $("winners-modal").dataset.lottery;
  const result = view.results.get(lotteryId);
  const box = $("verify");
  box.hidden = false;
  const out = $("verify-result");
  const steps = $("verify-steps");
  steps.replaceChildren();
  out.className = "verify-result";
  delete out.dataset.ok;
  out.textContent = "Checking…";
  try {
    const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/lotteries/${encodeURIComponent(lotteryId)}`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error ? body.error.message : `HTTP ${res.status}`);
    const published = body.result || result;
    // The commit to trust is the one announced at the start (kept in state), not the one sent with the seed.
    const announced = (client.state.lotteries || {})[lotteryId]?.commit || body.lottery?.commit || published.commit;
    const n = body.lottery?.winners ?? (client.state.lotteries || {})[lotteryId]?.winners ?? published.winners.length;
    const entrants = body.entrants_list || [];
    $("verify-commit").textContent = announced;
    $("verify-seed").textContent = published.seed;
    const check = await verifyDraw({ seed: published.seed, commit: announced, entrants, n, winners: published.winners });
    steps.append(
      el("li", { text: `${check.commitOk ? "✔" : "✘"} sha256(seed) equals the commit published at the start` }),
      el("li", { text: `${entrants.length === published.entrants ? "✔" : "✘"} ${entrants.length} entrants listed (${published.entrants} announced)` }),
      el("li", { text: `${check.winnersOk ? "✔" : "✘"} recomputed winners: ${check.expected.join(", ") || "none"}` }),
    );
    const ok = check.ok && entrants.length === published.entrants;
    out.dataset.ok = String(ok);
    out.classList.add(ok ? "ok" : "bad");
    out.textContent = ok ? "Verified: this browser recomputed the same winners." : `Does not check out: ${check.problems.join("; ") || "entrant count differs"}`;
  } catch (error) {
    out.dataset.ok = "false";
    out.classList.add("bad");
    out.textContent = `Could not verify: ${error.message}`;
  }
}
$("verify-btn").addEventListener("click", runVerify);

// -- poll ---------------------------------------------------------------------------------------
function currentPoll() {
  let best = null;
  const now = client.serverNow();
  for (const [id, p] of Object.entries(client.state.polls || {})) {
    const recent = p.phase === "live" || now < (p.end_ms || 0) + 60000; // a finished poll stays a minute
    if (!recent || !p.options) continue;
    if (!best || (p.end_ms || 0) > (best.end_ms || 0)) best = { id, ...p };
  }
  return best;
}

function renderPoll() {
  const p = currentPoll();
  const box = $("poll");
  box.hidden = !p;
  if (!p) return;
  box.dataset.poll = p.id;
  $("poll-question").textContent = p.question || "Poll";
  const tallies = p.tallies || [];
  const total = tallies.reduce((a, b) => a + b, 0);
  const options = $("poll-options");
  const ended = p.phase === "ended" || client.serverNow() >= p.end_ms;
  if (options.children.length !== p.options.length || options.dataset.poll !== p.id) {
    options.replaceChildren();
    options.dataset.poll = p.id;
    p.options.forEach((label, i) => {
      const b = el("button", { type: "button", class: "poll-option", "data-option": String(i) },
        el("div", { class: "bar" }), el("span", { class: "label", text: label }), el("span", { class: "count" }));
      b.addEventListener("click", () => vote(p.id, i));
      options.append(b);
    });
  }
  [...options.children].forEach((b, i) => {
    const n = tallies[i] || 0;
    const pct = total ? Math.round((100 * n) / total) : 0;
    b.querySelector(".bar").style.width = `${pct}%`;
    b.querySelector(".count").textContent = `${n} · ${pct}%`;
    b.classList.toggle("voted", view.voted.get(p.id) === i);
    b.classList.toggle("correct", p.correct === i); // a quiz, once the host revealed the answer
    b.disabled = ended;
  });
  if (typeof p.correct === "number" && view.voted.has(p.id) && !view.quizTold?.has(p.id)) {
    (view.quizTold ||= new Set()).add(p.id);
    setMsg($("poll-msg"), view.voted.get(p.id) === p.correct ? "Correct!" : "Not this time: the answer is highlighted.",
      view.voted.get(p.id) === p.correct ? "ok" : "err");
  }
}

async function vote(pollId, option) {
  try {
    const r = await client.request("vote", { poll: pollId, option });
    view.voted.set(pollId, option);
    const st = (client.state.polls || {})[pollId];
    if (st && Array.isArray(r.tallies)) st.tallies = r.tallies;
    setMsg($("poll-msg"), "Thanks for voting!", "ok");
  } catch (error) {
    setMsg($("poll-msg"), error.code === "already_claimed" ? "You already voted." : describeError(error), "err");
  }
  renderPoll();
}

// -- modals -------------------------------------------------------------------------------------
function openModal(id) {
  const layer = $("modal-layer");
  for (const m of layer.querySelectorAll(".modal")) m.hidden = m.id !== id;
  layer.hidden = false;
}

function closeModal() {
  $("modal-layer").hidden = true;
  for (const m of document.querySelectorAll(".modal")) m.hidden = true;
  view.couponId = null;
}
document.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", closeModal));
$("modal-layer").addEventListener("click", (e) => {
  if (e.target === e.currentTarget) closeModal();
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") closeModal();
});

// -- start ------------------------------------------------------------------------------------------
async function loadRoom() {
  try {
    const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}`);
    if (!res.ok) return;
    const info = await res.json();
    $("room-title").textContent = info.title || room;
    document.title = `${info.title || room} · live`;
    for (const p of info.products || []) view.products.set(p.id, p);
    $("poster-label").textContent = info.status === "live" ? "● LIVE" : info.status === "ended" ? "The live has ended" : "Live video starts soon";
    renderAll();
  } catch {
    // the websocket status banner already says what is wrong
  }
}

const coupons = couponPicker({ client, token, room });
mountGroups({ client, showNotice, systemLine });

// -- pinned danmaku ---------------------------------------------------------------------------
function renderPin(pin) {
  const box = $("pinned");
  box.hidden = !pin;
  if (!pin) return;
  box.dataset.offset = pin.offset;
  box.replaceChildren(el("span", { class: "pin-tag", text: "PINNED" }), ...(pin.badge ? [badgeEl(pin.badge)] : []),
    el("span", { class: "who", text: pin.name || pin.user }), el("span", { class: "text", text: pin.text }));
}
client.on("welcome", ({ frame }) => renderPin(frame.state.pin));
$("badge-legend").replaceWith(legendEl());

// -- invites: the share link carries ?ref=<me>; a new viewer arriving through it counts once --
$("share-btn").addEventListener("click", async () => {
  const url = new URL(location.href);
  url.searchParams.delete("token");
  url.searchParams.delete("team");
  if (signedIn()) url.searchParams.set("ref", client.user.id);
  try { await navigator.clipboard.writeText(url.toString()); } catch { /* shown below anyway */ }
  systemLine(`Share this link: ${url}`);
});
let inviteSent = false;
client.on("welcome", async () => {
  const ref = params.get("ref");
  if (!ref || inviteSent || !signedIn() || isMe(ref)) return;
  inviteSent = true;
  try {
    await client.request("invite", { ref });
    systemLine("Welcome! Your friend earned a coupon for inviting you.");
  } catch {
    // not new here, no invite reward in this room, or the inviter is capped: nothing to show
  }
});

$("follow-btn").addEventListener("click", async () => {
  try {
    const r = await client.request("follow", { on: !view.following });
    view.following = r.following;
    client.state.followers = r.followers;
  } catch (error) {
    systemLine(describeError(error));
  }
  renderAll();
});

$("room-title").textContent = room;
loadRoom();
client.connect();
