// A tiny SVG sparkline: the last N samples as a line with a filled area, scaled to fit.

const SVG = "http://www.w3.org/2000/svg";

export class Spark {
  constructor(svg, size = 90) {
    this.svg = svg;
    this.size = size;
    this.values = [];
    this.area = document.createElementNS(SVG, "polygon");
    this.line = document.createElementNS(SVG, "polyline");
    svg.append(this.area, this.line);
  }

  push(value) {
    this.values.push(Number.isFinite(value) ? value : 0);
    if (this.values.length > this.size) this.values.shift();
    this.draw();
  }

  /** Replace every sample (a series the server keeps), newest last. */
  set(values) {
    this.values = values.slice(-this.size).map((v) => (Number.isFinite(v) ? v : 0));
    this.draw();
  }

  draw() {
    const [w, h] = [120, 32];
    const vals = this.values;
    if (!vals.length) return;
    const max = Math.max(1e-9, ...vals);
    const min = Math.min(0, ...vals);
    const step = w / Math.max(1, this.size - 1);
    const x0 = w - step * (vals.length - 1);
    const pts = vals.map((v, i) => `${(x0 + i * step).toFixed(1)},${(h - 2 - ((v - min) / (max - min || 1)) * (h - 4)).toFixed(1)}`);
    this.line.setAttribute("points", pts.join(" "));
    this.area.setAttribute("points", `${x0.toFixed(1)},${h} ${pts.join(" ")} ${w},${h}`);
  }
}
