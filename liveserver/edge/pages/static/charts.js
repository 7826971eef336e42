// charts.js: small SVG charts drawn by our own module (no library, no build step):
// lineChart (online over time) and barChart (per-minute counts), with axes and labels.
// Both draw into an <svg> with a viewBox, so they scale and print crisply.

const SVG = "http://www.w3.org/2000/svg";
const W = 640, H = 220, L = 48, R = 12, T = 14, B = 30;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const tickFmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

function frame(svg, labels, max, fmt) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const g = el("g", { class: "axes" });
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    g.append(el("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    g.append(el("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "tick" }, fmt(max * i / 4)));
  }
  const n = labels.length;
  const every = Math.max(1, Math.ceil(n / 8));
  labels.forEach((label, i) => {
    if (i % every) return;
    const x = L + (W - L - R) * (n === 1 ? 0.5 : i / (n - 1));
    g.append(el("text", { x, y: H - 10, "text-anchor": "middle", class: "tick" }, label));
  });
  svg.append(g);
}

export function lineChart(svg, labels, values, { fmt = tickFmt, title = "" } = {}) {
  const max = niceMax(Math.max(0, ...values));
  frame(svg, labels, max, fmt);
  if (title) svg.append(el("title", {}, title));
  const n = values.length;
  const pts = values.map((v, i) => [L + (W - L - R) * (n === 1 ? 0.5 : i / (n - 1)), T + (H - T - B) * (1 - v / max)]);
  const line = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  if (pts.length) {
    const area = `${pts[0][0]},${H - B} ${line} ${pts[pts.length - 1][0]},${H - B}`;
    svg.append(el("polygon", { points: area, class: "area" }), el("polyline", { points: line, class: "line" }));
    if (pts.length < 40) pts.forEach(([x, y]) => svg.append(el("circle", { cx: x, cy: y, r: 2.5, class: "dot" })));
  }
}

export function barChart(svg, labels, values, { fmt = tickFmt, title = "" } = {}) {
  const max = niceMax(Math.max(0, ...values));
  frame(svg, labels, max, fmt);
  if (title) svg.append(el("title", {}, title));
  const n = Math.max(1, values.length);
  const slot = (W - L - R) / n;
  values.forEach((v, i) => {
    const h = (H - T - B) * (v / max);
    const x = L + slot * i + slot * 0.15;
    const bar = el("rect", { x, y: H - B - h, width: Math.max(1, slot * 0.7), height: h, class: "bar" });
    bar.append(el("title", {}, `${labels[i]}: ${fmt(v)}`));
    svg.append(bar);
  });
}

export function funnel(svg, steps) {
  // steps: [[label, value]], drawn as horizontal bars relative to the first
  svg.replaceChildren();
  const h = 34 * steps.length + 8;
  svg.setAttribute("viewBox", `0 0 ${W} ${h}`);
  const top = Math.max(1, steps[0]?.[1] || 1);
  steps.forEach(([label, value], i) => {
    const w = (W - 220) * (value / top);
    const y = 6 + i * 34;
    svg.append(el("rect", { x: 140, y, width: Math.max(2, w), height: 24, class: "bar" }));
    svg.append(el("text", { x: 132, y: y + 17, "text-anchor": "end", class: "label" }, label));
    const pct = i ? ` (${((value / top) * 100).toFixed(1)}%)` : "";
    svg.append(el("text", { x: 146 + Math.max(2, w), y: y + 17, class: "value" }, `${value}${pct}`));
  });
}
