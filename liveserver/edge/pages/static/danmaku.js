// Danmaku lanes over the video: every comment flies right-to-left at one constant speed,
// so two comments in a lane never overlap once the second has waited for the first to
// fully enter. The number on screen is capped; a storm queues briefly, then drops the
// oldest waiting comments (the chat column still shows every one that arrived).

const GAP_PX = 24;
const MAX_ON_SCREEN = 36;
const MAX_WAITING = 30;

export class DanmakuLanes {
  constructor(layer) {
    this.layer = layer;
    this.waiting = [];
    this.onScreen = new Map(); // offset -> element
    this.laneFreeAt = []; // per lane: when (performance.now) its entry point is clear again
    this.timer = null;
  }

  laneCount() {
    const line = window.innerWidth >= 900 ? 32 : 26;
    return Math.max(1, Math.floor(this.layer.clientHeight / line));
  }

  add(ev, mine = false) {
    this.waiting.push({ ev, mine });
    if (this.waiting.length > MAX_WAITING) this.waiting.splice(0, this.waiting.length - MAX_WAITING);
    this.pump();
  }

  retract(offset) {
    this.waiting = this.waiting.filter((w) => w.ev.offset !== offset);
    const node = this.onScreen.get(offset);
    if (node) {
      node.remove();
      this.onScreen.delete(offset);
    }
  }

  pump() {
    clearTimeout(this.timer);
    this.timer = null;
    const width = this.layer.clientWidth;
    const lines = this.laneCount();
    const lineHeight = this.layer.clientHeight / lines;
    // Constant speed: a comment crosses the screen in about 7 s on a phone, a bit faster in px/s on desktop.
    const speed = Math.max(90, width / 7); // px per second
    while (this.waiting.length && this.onScreen.size < MAX_ON_SCREEN) {
      const now = performance.now();
      let lane = -1;
      for (let i = 0; i < lines; i++) {
        if ((this.laneFreeAt[i] || 0) <= now) {
          lane = i;
          break;
        }
      }
      if (lane < 0) break;
      const { ev, mine } = this.waiting.shift();
      const node = document.createElement("div");
      node.className = "dm" + (mine ? " mine" : "") + (ev.role === "host" || ev.role === "admin" ? " host" : "");
      node.textContent = ev.text;
      node.dataset.offset = ev.offset;
      node.style.top = `${lane * lineHeight}px`;
      node.style.transform = `translateX(${width}px)`;
      this.layer.append(node);
      const w = node.offsetWidth;
      const duration = ((width + w) / speed) * 1000;
      this.laneFreeAt[lane] = now + ((w + GAP_PX) / speed) * 1000;
      this.onScreen.set(ev.offset, node);
      const anim = node.animate([{ transform: `translateX(${width}px)` }, { transform: `translateX(${-w - 4}px)` }], {
        duration,
        easing: "linear",
        fill: "forwards",
      });
      anim.onfinish = () => {
        node.remove();
        if (this.onScreen.get(ev.offset) === node) this.onScreen.delete(ev.offset);
        if (this.waiting.length) this.pump();
      };
    }
    if (this.waiting.length && !this.timer) {
      const now = performance.now();
      const next = Math.min(...this.laneFreeAt.slice(0, lines).map((t) => t || 0));
      this.timer = setTimeout(() => this.pump(), Math.max(50, next - now));
    }
  }
}
