// The report page /rooms/{room}/report: headline cards, online-over-time and per-minute
// charts (charts.js, our own SVG), funnel, top products, lotteries and coupons. It reads
// GET /api/v1/rooms/{room}/report with the host token and refreshes while the room is live.
import { lineChart, barChart, funnel } from "/static/charts.js";

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "demo");
const TOKEN_KEY = `liveserver.host.${room}`;
let token = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
const $ = (id) => document.getElementById(id);
const money = (c) => (c / 100).toLocaleString(undefined, { style: "currency", currency: params.get("currency") || "CNY" });
const hhmm = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const dur = (s) => s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(1)} s`;

function row(cells, head = false) {
  const tr = document.createElement("tr");
  for (const [text, num] of cells) {
    const td = document.createElement(head ? "th" : "td");
    td.textContent = text;
    if (num) td.className = "n";
    tr.append(td);
  }
  return tr;
}

function render(r) {
  $("title").textContent = r.title || r.room;
  $("status").textContent = r.status;
  document.title = `Report · ${r.title || r.room}`;
  const h = r.headline;
  const cards = [
    ["Unique viewers", h.unique_viewers], ["Views (sessions)", h.views], ["Peak online", h.peak_online],
    ["Avg watch time", dur(h.avg_watch_s)], ["Danmaku", h.danmaku], ["Likes", h.likes], ["New follows", h.follows],
    ["Lottery entrants", h.lottery_entrants], ["Link-mic", `${h.linkmic} · ${h.linkmic_minutes ?? 0} min`], ["Product clicks", h.clicks],
    ["Orders", h.orders], ["Units", h.units], ["Paid orders", h.paid_orders], ["GMV (paid)", money(h.gmv_cents)],
    ["Buyers", h.buyers], ["Conversion", `${(h.conversion * 100).toFixed(2)}%`], ["Avg order value", money(h.aov_cents)],
  ];
  $("cards").replaceChildren(...cards.map(([k, v]) => {
    const d = document.createElement("div");
    d.className = "card";
    d.innerHTML = `<div class="k"></div><div class="v"></div>`;
    d.firstChild.textContent = k;
    d.lastChild.textContent = String(v);
    return d;
  }));
  const labels = r.series.map((s) => hhmm(s.minute_ms));
  const pts = r.online.points;
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: r.online.step_ms < 60000 ? "2-digit" : undefined });
  lineChart($("chart-online"), pts.map((p) => clock(p.ms)), pts.map((p) => p.online),
            { title: `online viewers (max per ${r.online.step_ms / 1000} s)` });
  barChart($("chart-danmaku"), labels, r.series.map((s) => s.danmaku));
  barChart($("chart-likes"), labels, r.series.map((s) => s.likes));
  barChart($("chart-orders"), labels, r.series.map((s) => s.orders));
  barChart($("chart-gmv"), labels, r.series.map((s) => s.gmv_cents), { fmt: (v) => (v / 100).toFixed(0) });
  funnel($("chart-funnel"), [["viewers", r.funnel.viewers], ["clicked", r.funnel.clickers],
                             ["ordered", r.funnel.buyers], ["paid", r.funnel.paid_buyers]]);
  $("products").replaceChildren(row([["Product"], ["Clicks", 1], ["Orders", 1], ["Units", 1], ["GMV", 1]], true),
    ...r.products.slice(0, 10).map((p) => row([[p.title], [p.clicks, 1], [p.orders, 1], [p.units, 1], [money(p.gmv_cents), 1]])));
  $("lotteries").replaceChildren(row([["Lottery"], ["Entrants", 1], ["Winners"]], true),
    ...r.lotteries.map((l) => row([[l.prize], [l.entrants, 1], [l.drawn ? (l.winners || []).join(", ") || "—" : "not drawn"]])));
  $("coupons").replaceChildren(row([["Coupon"], ["Claimed", 1], ["Quantity", 1]], true),
    ...r.coupons.map((c) => row([[c.title], [c.claimed, 1], [c.quantity, 1]])));
  $("foot").textContent = `Generated ${new Date(r.ts).toLocaleString()} · unique viewers: exact · watch time: union of each viewer's sessions on every node · follow-ups: ${r.followup.length} viewer(s)`;
}

async function load() {
  const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/report`, { headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error?.message || res.statusText);
  render(body);
  $("main").hidden = false;
  $("gate").hidden = true;
  document.body.dataset.ready = "1";
  return body;
}

function gate(message) {
  $("gate").hidden = false;
  $("main").hidden = true;
  $("gate-out").textContent = message || "";
}

$("gate-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("gate-token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  load().catch((err) => gate(err.message));
});
$("print").addEventListener("click", () => window.print());
$("csv").addEventListener("click", async (e) => {
  e.preventDefault();
  const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/report.csv`, { headers: { Authorization: `Bearer ${token}` } });
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: `${room}-report.csv` });
  a.click();
  URL.revokeObjectURL(url);
});

if (params.get("token")) sessionStorage.setItem(TOKEN_KEY, token);
if (!token) gate();
else load().catch((err) => gate(err.message));
setInterval(() => {
  if ($("auto").checked && token && !$("main").hidden && $("status").textContent !== "ended") load().catch(() => {});
}, 5000);
